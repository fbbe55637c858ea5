"""The two roads of the header FETCH of a sync, against the real Dovecot: read from imaplib's raw answer
(imap_fetch.parse_header_fetch, the fast one) or asked through imapclient (every other shape). Both give the
same messages; the fast one is really taken, i.e. imapclient still keeps its imaplib connection where
imap.imaplib_connection looks for it."""

from __future__ import annotations

import imaplib
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.config import load_config
from mailesc.sources import imap
from mailesc.sources.imap import ImapSource, imaplib_connection
from tests.support import FIVE_SECOND_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def source(tmp_path, mailbox, smtp_sink, monkeypatch):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink),
                          rules=FIVE_SECOND_RULE)
    source = ImapSource(load_config(config).mailbox)
    try:
        yield source
    finally:
        source.close()


def test_the_imaplib_connection_is_reachable(source):
    assert isinstance(imaplib_connection(source.client()), imaplib.IMAP4)


def test_both_roads_read_the_same_messages(source, mailbox, monkeypatch):
    received = datetime(2026, 11, 23, 9, 15, tzinfo=timezone(timedelta(hours=1)))
    for number in range(3):
        raw, _ = make_mail(sender="pat@customer.example", subject=f"Help {number}")
        mailbox.append("INBOX", raw, received + timedelta(minutes=number))

    roads = []
    to_fetched_headers = imap.from_imapclient
    monkeypatch.setattr(imap, "from_imapclient", lambda response: roads.append("imapclient")
                        or to_fetched_headers(response))
    fast = list(source.poll({}))
    assert roads == []  # read from imaplib's answer
    monkeypatch.setattr(imap, "parse_header_fetch", lambda data: None)  # as for a shape it does not read
    through_imapclient = list(source.poll({}))
    assert roads == ["imapclient"]

    assert [raw.key for raw in fast] == [raw.key for raw in through_imapclient] and len(fast) == 3
    for one, other in zip(fast, through_imapclient):
        assert (one.data, one.arrived, one.size) == (other.data, other.arrived, other.size)
        assert one.data.startswith(b"From: pat@customer.example") and one.size > len(one.data)
    assert [raw.arrived for raw in fast] == [received + timedelta(minutes=n) for n in range(3)]
