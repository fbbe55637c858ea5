"""Raw bytes -> Message, from the headers alone (fast, never raises on odd headers)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailesc.errors import ParseError
from mailesc.headertext import readable, clean, decode
from mailesc.model import DEFAULT_MAILBOX, Message, RawMessage

_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


def parse_message(raw: RawMessage, seen_at: datetime, mailbox: str = DEFAULT_MAILBOX) -> Message:
    """Parse what mailesc needs. Without an arrival time from the source, the Date header stands in for it,
    unless it lies after `seen_at` (a sender's clock in the future): then `seen_at` is the arrival. `mailbox`:
    the configured mailbox it was read from (policies may match on it)."""
    data = readable_line_endings(raw.data)
    if not data or data.isspace():  # what `not data.strip()` says, without copying a big message
        raise ParseError("the message is empty")
    headers = _Headers(header_items(data))
    if not headers.items:
        raise ParseError("no RFC 5322 header found")
    sender_name, sender = first_address(headers.all("from"))
    date = parse_date(headers.first("date"))
    return Message(
        key=raw.key,
        folder=raw.folder,
        message_id=next(iter(message_ids(headers.first("message-id"))), None) or derived_message_id(data),
        parents=parents(headers),
        subject=clean(decode(headers.first("subject") or "")),
        sender=sender,
        sender_name=sender_name,
        recipients=tuple(address for _, address in addresses(headers.all("to") + headers.all("cc"))),
        date=date,
        arrived=raw.arrived or (date if date is not None and date <= seen_at else seen_at),
        headers=tuple(headers.items),  # decoded when read
        size=raw.full_size,
        mailbox=mailbox,
    )


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


class _Headers:
    """Header values as text (raw 8-bit bytes read as UTF-8), still RFC 2047-encoded, looked up by name."""

    def __init__(self, items):
        # ASCII text holds no surrogate escapes: readable() (a regular expression search) only for the rest
        self.items = [(name.lower(), value if value.isascii() else readable(value)) for name, value in map(
            _as_text, items)]  # names lower-cased: looked up and stored that way
        self._by_name: dict[str, list[str]] = {}
        for name, value in self.items:
            self._by_name.setdefault(name, []).append(value)

    def all(self, name: str) -> list[str]:
        return list(self._by_name.get(name, ()))

    def first(self, name: str) -> str | None:
        return next(iter(self.all(name)), None)


def _as_text(item: tuple[str, object]) -> tuple[str, str]:
    name, value = item
    return (name, value) if isinstance(value, str) else (name, str(value))


def message_ids(value) -> list[str]:
    return [f"<{token}>" for token in _MESSAGE_ID.findall(str(value or ""))]


def parents(headers: _Headers) -> tuple[str, ...]:
    """References then In-Reply-To, oldest first, without repeats."""
    found = message_ids(" ".join(headers.all("references")))
    found += message_ids(" ".join(headers.all("in-reply-to")))
    return tuple(dict.fromkeys(found))


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
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
