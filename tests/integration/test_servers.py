"""Smoke tests proving the real-server fixtures (Dovecot, aiosmtpd) work."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import imapclient
import pytest
from imapclient.exceptions import LoginError
from imapclient.imapclient import SENT  # not re-exported as imapclient.SENT in 4.1

from mailesc.testing import wait_until

pytestmark = pytest.mark.integration

SEEN = b"\\Seen"


def make_raw(subject: str, body: str = "Hello support,\r\nplease help.\r\n") -> bytes:
    return (
        "From: Customer <customer@example.org>\r\n"
        "To: support@example.test\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
        "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
        "\r\n" + body
    ).encode()


def make_email(subject: str, to: str = "boss@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "mailesc@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Escalation body")
    return msg


# ---------------------------------------------------------------- Dovecot / mailbox


def test_login_works(mailbox):
    assert mailbox.username.startswith("support-") and mailbox.username.endswith("@example.test")
    client = mailbox.client()
    try:
        caps = client.capabilities()
        for cap in (b"IDLE", b"UIDPLUS", b"SPECIAL-USE", b"MOVE"):
            assert cap in caps
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 0
    finally:
        client.logout()


def test_wrong_password_is_refused_quickly(mailbox):
    client = imapclient.IMAPClient(mailbox.host, port=mailbox.port, ssl=False, timeout=10)
    try:
        started = time.monotonic()
        with pytest.raises(LoginError):
            client.login(mailbox.username, mailbox.password + "-wrong")
        assert time.monotonic() - started < 1.0, "auth_failure_delay should be 0"
    finally:
        client.shutdown()


def test_append_with_internaldate_three_hours_ago(mailbox):
    tz = timezone(timedelta(hours=2))
    when = (datetime.now(tz) - timedelta(hours=3)).replace(microsecond=0)
    raw = make_raw("Printer on fire")
    uid = mailbox.append("INBOX", raw, when)
    assert mailbox.uids("INBOX") == [uid]

    client = mailbox.client(normalise_times=False)
    try:
        client.select_folder("INBOX", readonly=True)
        data = client.fetch([uid], ["INTERNALDATE", "BODY.PEEK[]"])[uid]
    finally:
        client.logout()
    internal = data[b"INTERNALDATE"]
    assert internal.tzinfo is not None
    assert internal == when  # same instant (aware comparison)
    # Dovecot's Maildir keeps INTERNALDATE as the file mtime: it comes back in the
    # server's local zone, not with the +02:00 offset we sent.
    assert internal.utcoffset() is not None
    assert data[b"BODY[]"] == raw


def test_append_rejects_naive_datetime(mailbox):
    with pytest.raises(ValueError):
        mailbox.append("INBOX", make_raw("naive"), datetime(2024, 1, 1, 10, 0))


def test_sent_folder_has_special_use(mailbox):
    client = mailbox.client()
    try:
        assert client.find_special_folder(SENT) == mailbox.sent_folder == "Sent"
        assert "Sent" in [name for _flags, _sep, name in client.list_sub_folders()]
    finally:
        client.logout()
    when = datetime.now(timezone.utc) - timedelta(minutes=30)
    uid = mailbox.append(mailbox.sent_folder, make_raw("Re: Printer on fire"), when)
    assert mailbox.uids("Sent") == [uid]
    assert mailbox.uids("INBOX") == []


def test_body_peek_does_not_set_seen(mailbox):
    uid = mailbox.append("INBOX", make_raw("peek me"), datetime.now(timezone.utc))
    assert mailbox.flags("INBOX") == {uid: ()}

    client = mailbox.client()
    try:
        client.select_folder("INBOX")  # read-write on purpose
        client.fetch([uid], ["BODY.PEEK[]"])
        assert SEEN not in mailbox.flags("INBOX")[uid]
        client.fetch([uid], ["BODY[]"])  # the non-PEEK fetch does set \Seen
    finally:
        client.logout()
    assert SEEN in mailbox.flags("INBOX")[uid]


def test_append_with_flags_and_fetch_raw(mailbox):
    raw = make_raw("flagged")
    uid = mailbox.append("INBOX", raw, datetime.now(timezone.utc), flags=[SEEN])
    assert mailbox.flags("INBOX") == {uid: (SEEN,)}
    assert mailbox.fetch_raw("INBOX", uid) == raw


_seen_usernames: set[str] = set()


@pytest.mark.parametrize("round_", [1, 2])
def test_mailboxes_are_isolated_between_tests(mailbox, round_):
    assert mailbox.username not in _seen_usernames
    _seen_usernames.add(mailbox.username)
    assert mailbox.uids("INBOX") == [] and mailbox.uids("Sent") == []
    uid = mailbox.append("INBOX", make_raw(f"round {round_}"), datetime.now(timezone.utc))
    assert mailbox.uids("INBOX") == [uid]


def test_users_added_later_can_log_in_without_reload(dovecot, mailbox):
    # The passwd-file is re-read by Dovecot when it changes: no restart needed.
    mailbox.client().logout()
    other = dovecot.new_mailbox("manager")
    assert other.username.startswith("manager-")
    other.append("INBOX", make_raw("for the manager"), datetime.now(timezone.utc))
    assert len(other.uids("INBOX")) == 1
    assert mailbox.uids("INBOX") == []
    c = imapclient.IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            c.login(other.username, mailbox.password)
    finally:
        c.shutdown()


def test_dovecot_restart_keeps_port_and_data(dovecot, mailbox):
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    uid = mailbox.append("INBOX", make_raw("survives restart"), when)
    port, host = dovecot.port, dovecot.host
    try:
        dovecot.stop()
        assert not dovecot.running
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=1).close()
    finally:
        dovecot.start()
    assert dovecot.running and dovecot.port == port and mailbox.port == port
    assert mailbox.uids("INBOX") == [uid]
    client = mailbox.client(normalise_times=False)
    try:
        client.select_folder("INBOX", readonly=True)
        assert client.fetch([uid], ["INTERNALDATE"])[uid][b"INTERNALDATE"] == when
    finally:
        client.logout()
    assert dovecot.log_path.exists() and "starting up" in dovecot.log_path.read_text()


# ---------------------------------------------------------------- SMTP sink


def test_smtp_sink_receives_without_login(smtp_sink):
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.send_message(make_email("no login"), to_addrs=["boss@example.test", "cc@example.test"])
    (msg,) = smtp_sink.wait_for(1)
    assert msg.mail_from == "mailesc@example.test"
    assert msg.rcpt_tos == ["boss@example.test", "cc@example.test"]
    assert msg.message["Subject"] == "no login"
    assert msg.message.get_content().strip() == "Escalation body"
    assert b"Subject: no login" in msg.content
    assert msg.auth_login is None
    assert msg.received_at.tzinfo is not None
    assert abs(datetime.now(timezone.utc) - msg.received_at) < timedelta(seconds=10)


def test_smtp_sink_accepts_any_login(smtp_sink):
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.login("mailesc-bot", "whatever")
        smtp.send_message(make_email("with login"))
    (msg,) = smtp_sink.wait_for(1)
    assert msg.message["Subject"] == "with login"
    assert msg.auth_login == "mailesc-bot"
    smtp_sink.clear()
    assert smtp_sink.messages == []


def test_smtp_sink_works_with_aiosmtplib_login(smtp_sink):
    import aiosmtplib

    asyncio.run(
        aiosmtplib.send(
            make_email("via aiosmtplib"),
            hostname=smtp_sink.host,
            port=smtp_sink.port,
            username="bot",
            password="secret",
            use_tls=False,
            start_tls=False,
            timeout=10,
        )
    )
    (msg,) = smtp_sink.wait_for(1)
    assert msg.message["Subject"] == "via aiosmtplib" and msg.auth_login == "bot"


def test_smtp_sink_fail_next_then_success(smtp_sink):
    smtp_sink.fail_next(451, "4.3.0 Try again later")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            smtp.send_message(make_email("first try"))
        assert excinfo.value.smtp_code == 451
        assert b"Try again later" in excinfo.value.smtp_error
        smtp.send_message(make_email("second try"))
    msgs = smtp_sink.wait_for(1)
    assert [m.message["Subject"] for m in msgs] == ["second try"]


def test_smtp_sink_refuse_rcpt(smtp_sink):
    smtp_sink.refuse_rcpt("Gone@Example.test")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
            smtp.send_message(make_email("to nobody", to="gone@example.test"))
        assert excinfo.value.recipients["gone@example.test"][0] == 550
        refused = smtp.send_message(
            make_email("partly"), to_addrs=["gone@example.test", "boss@example.test"]
        )
    assert refused["gone@example.test"][0] == 550
    (msg,) = smtp_sink.wait_for(1)
    assert msg.rcpt_tos == ["boss@example.test"]


def test_smtp_sink_wait_for_times_out_clearly(smtp_sink):
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"expected at least 1 message\(s\) within 0.2s, got 0"):
        smtp_sink.wait_for(1, timeout=0.2)
    assert time.monotonic() - started < 2


def test_wait_until_returns_value_and_times_out():
    box = {"n": 0}

    def bump():
        box["n"] += 1
        return box["n"] if box["n"] >= 3 else None

    assert wait_until(bump, timeout=2, interval=0.001) == 3
    with pytest.raises(AssertionError, match="never true"):
        wait_until(lambda: False, timeout=0.1, message="never true")
