"""imap_fetch: imaplib's raw answer to the header FETCH of a sync in, FetchedHeaders out, and the road through
imapclient that every other shape takes. Each raw answer below is what imaplib hands over: a (prefix, literal)
pair per message and the rest of its line, or a plain line when the server sent no literal.

"What imapclient gives" is computed by imapclient's own parser on the same bytes, filtered to the UIDs asked
for as IMAPClient.fetch does, then turned into FetchedHeaders by from_imapclient: exactly what the sync
records when it asks again through imapclient."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from imapclient.response_parser import parse_fetch_response

from mailesc.sources.imap_fetch import FetchedHeader, from_imapclient, parse_header_fetch
from mailesc.sources.imap_idle import is_new_mail

HEADER = b"From: pat@customer.example\r\nSubject: Help\r\n\r\n"
UTC = timezone.utc
CET = timezone(timedelta(hours=1))


def literal(prefix: str, header: bytes = HEADER, rest: bytes = b")") -> list:
    """One message answered with a header literal, as imaplib splits it."""
    return [(prefix.encode() + b" {%d}" % len(header), header), rest]


def imapclient_reading(data: list, uids: list[int]) -> dict[int, FetchedHeader]:
    parsed = parse_fetch_response(data, normalise_times=False, uid_is_key=True)
    return from_imapclient({uid: parsed[uid] for uid in uids if uid in parsed})


# -- the shape the fast parser reads: it and imapclient agree ----------------------------------------------------

READ = [
    ("Dovecot's order",
     literal('1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +0100" RFC822.SIZE 4242 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=CET), 4242)}),
    ("two messages in one answer",
     literal('1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +0100" RFC822.SIZE 1 BODY[HEADER]')
     + literal('2 (UID 9 INTERNALDATE "24-Nov-2026 10:00:00 +0000" RFC822.SIZE 2 BODY[HEADER]', b"X: y\r\n\r\n"),
     {7: FetchedHeader(7, HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=CET), 1),
      9: FetchedHeader(9, b"X: y\r\n\r\n", datetime(2026, 11, 24, 10, tzinfo=UTC), 2)}),
    ("items after the literal (the order is the server's choice)",
     literal('3 (INTERNALDATE "01-Jan-2027 00:00:00 +0000" BODY[HEADER]', rest=b" UID 9 RFC822.SIZE 10)"),
     {9: FetchedHeader(9, HEADER, datetime(2027, 1, 1, tzinfo=UTC), 10)}),
    ("an unsolicited FLAGS update of another message in between is skipped",
     literal('1 (UID 7 RFC822.SIZE 5 INTERNALDATE "23-Nov-2026 09:15:00 +0100" BODY[HEADER]')
     + [b"4 (FLAGS (\\Seen))"],
     {7: FetchedHeader(7, HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=CET), 5)}),
    ("FLAGS sent along for the message itself",
     literal('1 (UID 7 FLAGS (\\Seen) INTERNALDATE "23-Nov-2026 09:15:00 +0100" RFC822.SIZE 5 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=CET), 5)}),
    ("day padded with a space",
     literal('1 (UID 8 INTERNALDATE " 3-Feb-2026 23:59:59 -0530" RFC822.SIZE 1 BODY[HEADER]'),
     {8: FetchedHeader(8, HEADER, datetime(2026, 2, 3, 23, 59, 59, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
                       1)}),
    ("day of one digit without padding",
     literal('1 (UID 8 INTERNALDATE "3-Feb-2026 23:59:59 +0000" RFC822.SIZE 1 BODY[HEADER]'),
     {8: FetchedHeader(8, HEADER, datetime(2026, 2, 3, 23, 59, 59, tzinfo=UTC), 1)}),
    ("month in capitals (RFC 3501 strings are case-insensitive)",
     literal('1 (UID 8 INTERNALDATE "03-FEB-2026 10:00:00 +0000" RFC822.SIZE 1 BODY[HEADER]'),
     {8: FetchedHeader(8, HEADER, datetime(2026, 2, 3, 10, tzinfo=UTC), 1)}),
    ("-0000 (a zone not known) is UTC",
     literal('1 (UID 8 INTERNALDATE "03-Feb-2026 10:00:00 -0000" RFC822.SIZE 1 BODY[HEADER]'),
     {8: FetchedHeader(8, HEADER, datetime(2026, 2, 3, 10, tzinfo=UTC), 1)}),
    ("no INTERNALDATE",
     literal('1 (UID 7 RFC822.SIZE 4242 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, None, 4242)}),
    ("INTERNALDATE NIL",
     literal('1 (UID 7 INTERNALDATE NIL RFC822.SIZE 4242 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, None, 4242)}),
    ("no RFC822.SIZE",
     literal('1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +0100" BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=CET), None)}),
    ("RFC822.SIZE NIL",
     literal('1 (UID 7 RFC822.SIZE NIL BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, None, None)}),
    ("a day that does not exist",
     literal('1 (UID 7 INTERNALDATE "31-Feb-2026 09:15:00 +0100" RFC822.SIZE 1 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, None, 1)}),
    ("an hour that does not exist",
     literal('1 (UID 7 INTERNALDATE "23-Nov-2026 25:15:00 +0100" RFC822.SIZE 1 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, None, 1)}),
    ("a month that does not exist",
     literal('1 (UID 7 INTERNALDATE "23-Foo-2026 09:15:00 +0100" RFC822.SIZE 1 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, None, 1)}),
    ("an offset of a day (no clock has it; the stdlib refuses it)",
     literal('1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +2400" RFC822.SIZE 1 BODY[HEADER]'),
     {7: FetchedHeader(7, HEADER, None, 1)}),
    ("an empty header",
     literal('1 (UID 7 RFC822.SIZE 0 BODY[HEADER]', b""),
     {7: FetchedHeader(7, b"", None, 0)}),
    ("nothing (the messages were expunged since the SEARCH)", [None], {}),
]


@pytest.mark.parametrize("data, expected", [case[1:] for case in READ], ids=[case[0] for case in READ])
def test_the_fast_parser_reads_the_literal_shape_as_imapclient_does(data, expected):
    assert parse_header_fetch(data) == expected
    assert imapclient_reading(data, list(expected)) == expected


# -- shapes the fast parser leaves to imapclient: None, or the message left out (the sync then asks again) -----

FALLBACK = [
    ("the header quoted instead of a literal",
     [b'1 (UID 7 RFC822.SIZE 12 BODY[HEADER] "Subject: x\r\n")'], {},
     {7: FetchedHeader(7, b"Subject: x\r\n", None, 12)}),
    ("the header NIL",
     [b'1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +0100" RFC822.SIZE 12 BODY[HEADER] NIL)'], {},
     {7: FetchedHeader(7, b"", datetime(2026, 11, 23, 9, 15, tzinfo=CET), 12)}),
    ("another section than the one asked for",
     literal('1 (UID 7 RFC822.SIZE 4242 BODY[]'), None,
     {7: FetchedHeader(7, b"", None, 4242)}),
    ("no UID (imapclient keys it by sequence number, which was not asked for)",
     literal('1 (INTERNALDATE "23-Nov-2026 09:15:00 +0100" BODY[HEADER]'), None, {}),
    ("a two-digit year",
     literal('1 (UID 7 INTERNALDATE "23-Nov-26 09:15:00 +0100" RFC822.SIZE 1 BODY[HEADER]'), None,
     {7: FetchedHeader(7, HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=CET), 1)}),
    ("a time without seconds",
     literal('1 (UID 7 INTERNALDATE "23-Nov-2026 09:15 +0100" RFC822.SIZE 1 BODY[HEADER]'), None,
     {7: FetchedHeader(7, HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=CET), 1)}),
    ("a date without a zone",
     literal('1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00" RFC822.SIZE 1 BODY[HEADER]'), None,
     {7: FetchedHeader(7, HEADER, None, 1)}),
    ("one message read, the next quoted: the quoted one is left out",
     literal('1 (UID 7 RFC822.SIZE 1 BODY[HEADER]') + [b'2 (UID 8 RFC822.SIZE 2 BODY[HEADER] "X: y\r\n")'],
     {7: FetchedHeader(7, HEADER, None, 1)},
     {7: FetchedHeader(7, HEADER, None, 1), 8: FetchedHeader(8, b"X: y\r\n", None, 2)}),
]


@pytest.mark.parametrize("data, fast, through_imapclient", [case[1:] for case in FALLBACK],
                         ids=[case[0] for case in FALLBACK])
def test_other_shapes_are_left_to_imapclient(data, fast, through_imapclient):
    found = parse_header_fetch(data)
    assert found == fast
    asked = sorted({7} | through_imapclient.keys())  # the UIDs the sync asked for
    assert found is None or not set(asked) <= found.keys()  # so the sync asks again through imapclient
    assert imapclient_reading(data, asked) == through_imapclient


def test_dates_through_imapclient_carry_a_stdlib_zone_that_can_be_copied():
    data = literal('1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +0100" BODY[HEADER]')
    [message] = imapclient_reading(data, [7]).values()
    assert type(message.internaldate.tzinfo) is timezone
    assert copy.deepcopy(message) == message


@pytest.mark.parametrize("response, new", [
    ((3, b"EXISTS"), True),
    ((3, b"EXPUNGE"), False),
    ((3, b"RECENT"), False),
    ((3, b"FETCH", (b"FLAGS", (b"\\Seen",))), False),
    ((b"OK", b"Still here"), False),
    (b"* OK Still here", False),
    ((b"EXISTS",), False),
])
def test_only_a_grown_folder_counts_as_new_mail_while_idle(response, new):
    assert is_new_mail(response) is new
