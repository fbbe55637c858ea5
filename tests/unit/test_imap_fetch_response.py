"""Reading imaplib's answer to the header FETCH of a sync; anything unexpected goes back to imapclient.
(The cases from before the parser moved to imap_fetch.py, unchanged; the fuller table is test_imap_fetch_parse.py.)"""

from datetime import datetime, timedelta, timezone

import pytest

from mailesc.sources.imap_fetch import parse_header_fetch

HEADER = b"From: pat@customer.example\r\nSubject: Help\r\n\r\n"


@pytest.mark.parametrize("data, expected", [
    ([(b'1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +0100" RFC822.SIZE 4242 BODY[HEADER] {45}', HEADER), b")"],
     {7: (HEADER, datetime(2026, 11, 23, 9, 15, tzinfo=timezone(timedelta(hours=1))), 4242)}),
    ([(b'2 (UID 8 INTERNALDATE " 3-Feb-2026 23:59:59 -0530" RFC822.SIZE 1 BODY[HEADER] {45}', HEADER), b")"],
     {8: (HEADER, datetime(2026, 2, 3, 23, 59, 59, tzinfo=timezone(-timedelta(hours=5, minutes=30))), 1)}),
    # items after the literal, and an unsolicited FLAGS update in between
    ([(b'3 (INTERNALDATE "01-Jan-2027 00:00:00 +0000" BODY[HEADER] {45}', HEADER), b" UID 9 RFC822.SIZE 10)",
      b"4 (FLAGS (\\Seen))"],
     {9: (HEADER, datetime(2027, 1, 1, tzinfo=timezone.utc), 10)}),
    ([(b'1 (UID 7 INTERNALDATE "23-Nov-2026 09:15:00 +0100" RFC822.SIZE 4242 BODY[] {45}', HEADER), b")"], None),
    ([(b'1 (INTERNALDATE "23-Nov-2026 09:15:00 +0100" BODY[HEADER] {45}', HEADER), b")"], None),  # no UID
    ([None], {}),
])
def test_header_fetch_responses(data, expected):
    found = parse_header_fetch(data)
    as_tuples = None if found is None else {uid: (m.header, m.internaldate, m.size) for uid, m in found.items()}
    assert as_tuples == expected
    assert found is None or all(uid == message.uid for uid, message in found.items())
