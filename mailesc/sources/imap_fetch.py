"""The answer to the header FETCH of a sync, read without a connection: response items in, one `FetchedHeader`
per message out. Pure: no socket, no client; imap.py sends the command and hands the answer here.

A first sync of a big mailbox is mostly this FETCH, and imapclient's pure-Python response parser was most of
its time (BENCHMARKS.md, initial sync). So the answer is read from imaplib's raw items by `parse_header_fetch`,
which knows exactly one shape: per message a (prefix, literal) pair ending in `BODY[HEADER] {n}`, then the
rest of its line. Anything else (a quoted or NIL header, no UID, another section, a date not in RFC 3501's
shape) makes it return None or leave the message out, and the caller asks again through imapclient, which
parses every shape; `from_imapclient` turns that answer into the same `FetchedHeader`s, so both roads give
the same results."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

HEADER_ITEMS = ["INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[HEADER]"]  # what the sync asks for each message


@dataclass(frozen=True, slots=True)
class FetchedHeader:
    """One message of a header FETCH. `internaldate` (when the server received it) and `size` are None when
    the server left them out or sent something that is not a date or a number."""
    uid: int
    header: bytes
    internaldate: datetime | None
    size: int | None


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "\s?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_QUOTED_INTERNALDATE = b'INTERNALDATE "'
_HEADER_LITERAL = re.compile(rb"\bBODY\[HEADER\] \{\d+\}$")
_MONTHS = {m.encode(): n for n, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                                   "Oct", "Nov", "Dec"), start=1)}


def parse_header_fetch(data: list) -> dict[int, FetchedHeader] | None:
    """imaplib's answer to UID FETCH (INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER]): UID -> FetchedHeader.

    None when anything looks different (the caller then lets imapclient parse it); answers without a header
    literal (unsolicited FLAGS updates) are skipped. Whether every UID asked for came back is the caller's
    question: a message expunged meanwhile is simply missing here."""
    found = {}
    for number, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        prefix, header = item
        rest = data[number + 1] if number + 1 < len(data) and isinstance(data[number + 1], bytes) else b""
        if not _HEADER_LITERAL.search(prefix):
            return None
        line = prefix + b" " + rest
        uid, size, date = _UID.search(line), _SIZE.search(line), _INTERNALDATE.search(line)
        if uid is None or (date is None and _QUOTED_INTERNALDATE in line):
            return None  # no UID, or a date in a shape only imapclient's parser reads ("23-Nov-26 09:15")
        number_uid = int(uid.group(1))
        found[number_uid] = FetchedHeader(number_uid, header, _internaldate(date),
                                          int(size.group(1)) if size else None)
    return found


def from_imapclient(response: Mapping[int, Mapping[bytes, Any]]) -> dict[int, FetchedHeader]:
    """imapclient's parsed answer to the same FETCH (`client.fetch(uids, HEADER_ITEMS)`) as FetchedHeaders.
    A NIL header becomes empty bytes; a NIL or impossible INTERNALDATE, None."""
    return {uid: FetchedHeader(uid, items.get(b"BODY[HEADER]") or b"", aware(items.get(b"INTERNALDATE")),
                               items.get(b"RFC822.SIZE")) for uid, items in response.items()}


def _internaldate(match: re.Match | None) -> datetime | None:
    if match is None or match.group(2).title() not in _MONTHS:  # RFC 3501's "Nov" is case-insensitive
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == b"-" else 1)
    try:
        return datetime(int(year), _MONTHS[month.title()], int(day), int(hour), int(minute), int(second),
                        tzinfo=timezone(offset))
    except ValueError:  # 31-Feb, 25:00, an offset of a day or more: not a time (imapclient says None too)
        return None


def aware(when: datetime | None) -> datetime | None:
    """INTERNALDATE with a stdlib timezone (imapclient's FixedOffset cannot be copied); None for an offset
    no real clock has (imapclient accepts +9999, the stdlib does not)."""
    if when is None:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    try:
        offset = when.utcoffset()  # None from a tzinfo that knows no offset: naive, as Python has it
        return when.replace(tzinfo=timezone.utc if offset is None else timezone(offset))
    except ValueError:
        return None
