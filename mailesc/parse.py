"""Raw bytes -> Message, from the headers alone (fast, never raises on odd headers)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailesc.errors import ParseError
from mailesc.headertext import readable, clean, decode
from mailesc.model import DEFAULT_MAILBOX, Message, RawMessage, with_header_index

_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


def parse_message(raw: RawMessage, seen_at: datetime, mailbox: str = DEFAULT_MAILBOX) -> Message:
    """Parse what mailesc needs. Without an arrival time from the source, the Date header stands in for it,
    unless it lies after `seen_at` (a sender's clock in the future): then `seen_at` is the arrival. `mailbox`:
    the configured mailbox it was read from (policies may match on it)."""
    data = readable_line_endings(raw.data)
    if not data or data.isspace():  # what `not data.strip()` says, without copying a big message
        raise ParseError("the message is empty")
    fields = header_fields(data)
    if not fields:
        raise ParseError("no RFC 5322 header found")
    by_name = header_index(fields)
    get = by_name.get
    sender_name, sender = first_address(get("from", ()))
    date = parse_date(_first(get("date")))
    message = Message(
        key=raw.key,
        folder=raw.folder,
        message_id=next(iter(message_ids(_first(get("message-id")))), None) or derived_message_id(data),
        parents=_parents(get("references"), get("in-reply-to")),
        subject=clean(decode(_first(get("subject")) or "")),
        sender=sender,
        sender_name=sender_name,
        recipients=tuple(address for _, address in addresses(get("to", []) + get("cc", []))),
        date=date,
        arrived=raw.arrived or (date if date is not None and date <= seen_at else seen_at),
        headers=tuple(fields),  # decoded when read
        size=raw.full_size,
        mailbox=mailbox,
    )
    return with_header_index(message, by_name)  # classification looks many names up: the index is made once


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def readable_line_endings(data: bytes) -> bytes:
    """`data` with line endings the parser reads. It reads LF, CRLF and bare CR, also mixed line by line; it
    does not read CR CR LF (a CRLF file converted once more) or LF CR (reversed): each is two line breaks
    to it, a blank line after the first header that ends the header and loses the rest. Those become LF."""
    if b"\r\r\n" in data:
        data = data.replace(b"\r\r\n", b"\n")
    first = data.find(b"\n")
    after = data[first + 1:first + 3]
    if 0 < first and data[first - 1:first] != b"\r" and after[:1] == b"\r" and after != b"\r\n":
        data = data.replace(b"\n\r", b"\n")  # the first line ends in LF CR: the whole message does
    return data


def header_items(data: bytes) -> list[tuple[str, str]]:
    """The header fields of `data` as (name, raw value) pairs, in order, exactly as the stdlib's header parser
    (compat32) gives them: the value with its folds and without the line end, 8-bit bytes as surrogate escapes.

    The stdlib's parser was half of parsing a message (BENCHMARKS.md, initial sync), so the common shape is
    split here with one regular expression: a header block ended by an empty line, CRLF or LF line ends,
    every line a `Name: value` field or its continuation. Anything else (a bare CR or another character
    that ends a line for the stdlib, a From_ line, a line that is neither field nor continuation, no empty
    line) goes to the stdlib itself. tests/unit/test_header_split.py checks both give the same on every corpus
    message and on a table of odd shapes."""
    items = _split_header_block(data)
    if items is None:
        return list(_HEADER_PARSER.parsebytes(data).raw_items())
    return items


# A field with its continuation lines, from the start of a line: the name, then the value without the blanks
# after the colon (its line end is stripped after: a CRLF's CR is still in it).
_FIELD = re.compile(r"^([!-9;-~]+):[ \t]*(.*(?:\n[ \t].*)*)\n", re.MULTILINE)


def _split_header_block(data: bytes) -> list[tuple[str, str]] | None:
    """The fields of the common shape of header block (see header_items), or None for anything else."""
    end = data.find(b"\n\n")
    crlf_end = data.find(b"\n\r\n", 0, len(data) if end == -1 else end)
    if crlf_end != -1 and (end == -1 or crlf_end < end):
        end = crlf_end
    if end == -1 or data[:1] in (b" ", b"\t"):
        return None  # no empty line (the stdlib decides where the header ends), or a continuation first
    block = data[:end + 1]
    if block.count(b"\r") != block.count(b"\r\n") or any(odd in block for odd in _ODD_LINE_ENDS):
        return None  # a bare CR, or a character that str.splitlines breaks lines at
    text = block.decode("ascii", "surrogateescape")
    items = _FIELD.findall(text)
    # Every field starts a line and takes its continuations; so when there are as many fields as lines that
    # are not continuations, no line was left out (a From_ line, a line without a colon, a space in a name).
    if len(items) != text.count("\n") - text.count("\n ") - text.count("\n\t"):
        return None
    return [(name, value.rstrip("\r\n")) for name, value in items]


_ODD_LINE_ENDS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")


def header_fields(data: bytes) -> list[tuple[str, str]]:
    """The header fields of `data` as Message.headers holds them: (lower-case name, value as text), in order;
    the values as header_items() gives them, raw 8-bit bytes read as UTF-8, still RFC 2047-encoded."""
    items = _split_header_block(data)
    if items is None:
        items = [(name, value if isinstance(value, str) else str(value))
                 for name, value in _HEADER_PARSER.parsebytes(data).raw_items()]
    # ASCII text holds no surrogate escapes: readable() (a regular expression search) only for the rest
    return [(name.lower(), value if value.isascii() else readable(value)) for name, value in items]


def header_index(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Lower-case name -> its values in order: what Message looks headers up by (model.with_header_index)."""
    by_name: dict[str, list[str]] = {}
    for name, value in fields:
        values = by_name.get(name)
        if values is None:
            by_name[name] = [value]
        else:
            values.append(value)
    return by_name


def message_ids(value) -> list[str]:
    return [f"<{token}>" for token in _MESSAGE_ID.findall(str(value or ""))]


def _parents(references: list[str] | None, in_reply_to: list[str] | None) -> tuple[str, ...]:
    """References then In-Reply-To, oldest first, without repeats."""
    found = message_ids(" ".join(references)) if references else []
    if in_reply_to:
        found += message_ids(" ".join(in_reply_to))
    return tuple(dict.fromkeys(found)) if len(found) > 1 else tuple(found)


def derived_message_id(data: bytes) -> str:
    """A stable stand-in for a missing Message-ID: the same message (whatever its line endings) always
    gets the same one, and different messages different ones."""
    digest = hashlib.sha256(b"\n".join(data.splitlines()))
    return f"<{digest.hexdigest()[:32]}@mailesc.invalid>"


def addresses(values) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs; unparseable entries are left out."""
    texts = [str(value) for value in values]
    pairs = _plain_addresses(texts)
    if pairs is None:
        pairs = getaddresses(texts)
    return [(clean(decode(name)), address.strip().lower()) for name, address in pairs if "@" in address]


_PLAIN_ADDRESS = re.compile(r"\s*(?:([^<>@]*?)\s*<([^<>\s@]+@[^<>\s@]+)>|([^<>\s@]+@[^<>\s@]+))\s*")
_NOT_PLAIN = re.compile(r'["()\\;:\[\]]')  # quoting, comments, groups, domain literals: the library's job


def _plain_addresses(texts: list[str]) -> list[tuple[str, str]] | None:
    """The common forms (`addr`, `Name <addr>`, comma-separated) read with one regular expression, a
    fast path in front of getaddresses (the slowest part of reading headers); None for anything else.
    tests/unit/test_parse.py checks it gives what getaddresses gives."""
    if any(_NOT_PLAIN.search(text) for text in texts):
        return None
    pairs = []
    for text in texts:
        for part in text.split(","):
            if not part.strip():
                continue
            match = _PLAIN_ADDRESS.fullmatch(part)
            if match is None:
                return None
            name, angled, bare = match.groups()
            pairs.append((" ".join(name.split()) if angled else "", angled or bare))
    return pairs


def first_address(values) -> tuple[str, str]:
    found = addresses(values)
    if found:
        return found[0]
    return "", clean(decode(values[0])).lower() if values else ""


def parse_date(value) -> datetime | None:
    """The Date header as an aware datetime; None when missing or unparseable (-0000 means UTC)."""
    if not value:
        return None
    text = str(value)
    common = _COMMON_DATE.fullmatch(text)
    if common is not None:
        return _common_date(common)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# The shape nearly every mailer writes (RFC 5322 3.3 without its obsolete forms): "Mon, 4 Mar 2024 09:00:00
# +0100", with an optional comment after the zone ("(UTC)"), read without the stdlib's general tokenizer;
# anything else (no seconds, zone names, two-digit years, folded or doubled blanks) goes to the stdlib.
# tests/unit/test_parse_dates.py checks both give the same on a table of shapes and every corpus message.
_COMMON_DATE = re.compile(r"[ \t]*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep"
                          r"|Oct|Nov|Dec) ([1-9]\d{3}) (\d\d):(\d\d):(\d\d) ([+-])([01]\d|2[0-3])([0-5]\d)"
                          r"(?: \([ -'*-\[\]-~]*\))?[ \t]*")
_MONTH_NUMBERS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_ZONES: dict[str, timezone] = {}  # "+0100" -> its timezone, made once


def _common_date(match: re.Match) -> datetime | None:
    day, month, year, hour, minute, second, sign, zone_hours, zone_minutes = match.groups()
    zone = _ZONES.get(sign + zone_hours + zone_minutes)
    if zone is None:
        seconds = int(zone_hours) * 3600 + int(zone_minutes) * 60
        zone = _ZONES[sign + zone_hours + zone_minutes] = timezone(timedelta(seconds=-seconds if sign == "-"
                                                                              else seconds))
    try:
        return datetime(int(year), _MONTH_NUMBERS[month], int(day), int(hour), int(minute), int(second),
                        tzinfo=zone)
    except ValueError:  # 31 Feb, 24:00:00, second 60: the stdlib says no date either
        return None
