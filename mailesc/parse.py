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
    if not data.strip():
        raise ParseError("the message is empty")
    headers = _Headers(_HEADER_PARSER.parsebytes(data).raw_items())
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
        headers=tuple((name.lower(), value) for name, value in headers.items),  # decoded when read
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


class _Headers:
    """Header values as text (raw 8-bit bytes read as UTF-8), still RFC 2047-encoded, looked up by name."""

    def __init__(self, items):
        self.items = [(name, readable(str(value))) for name, value in items]
        self._by_name: dict[str, list[str]] = {}
        for name, value in self.items:
            self._by_name.setdefault(name.lower(), []).append(value)

    def all(self, name: str) -> list[str]:
        return list(self._by_name.get(name, ()))

    def first(self, name: str) -> str | None:
        return next(iter(self.all(name)), None)


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
