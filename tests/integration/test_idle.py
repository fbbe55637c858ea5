"""IMAP IDLE against the real Dovecot: new mail is noticed at once, not at the next poll; deadlines still fire
on time while the daemon idles; a connection that dies while idle is dropped and re-made."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from mailesc.config import load_config
from mailesc.sources import poll_into
from mailesc.sources.imap import ImapSource
from mailesc.testing import wait_until
from tests.support import FIVE_SECOND_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

SLOW_POLL = "[daemon]\npoll_seconds = 60"


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


def append_later(mailbox, delay: float, subject: str = "Help") -> threading.Thread:
    def append():
        time.sleep(delay)
        raw, _ = make_mail(sender="pat@customer.example", subject=subject)
        mailbox.append("INBOX", raw, datetime.now(timezone.utc))

    thread = threading.Thread(target=append, daemon=True)
    thread.start()
    return thread


def test_wait_returns_when_mail_arrives_and_the_next_poll_finds_it(source, mailbox):
    sync: dict = {}
    assert list(poll_into(source, sync)) == []
    appender = append_later(mailbox, 0.5)
    started = time.monotonic()
    assert source.wait(30, threading.Event()) is True
    assert time.monotonic() - started < 10
    appender.join()
    [raw] = list(poll_into(source, sync))
    assert raw.folder == "INBOX" and b"pat@customer.example" in raw.data
    assert list(poll_into(source, sync)) == []  # nothing new: the bookmark moved


def test_wait_times_out_without_mail_and_stops_promptly(source):
    list(poll_into(source, {}))
    started = time.monotonic()
    assert source.wait(1.5, threading.Event()) is False
    assert 1.4 <= time.monotonic() - started < 6

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert source.wait(60, stop) is False
    assert time.monotonic() - started < 5
    assert list(poll_into(source, {})) == []  # IDLE was ended: the connection is usable


def test_mail_that_arrived_between_poll_and_wait_is_not_missed(source, mailbox):
    sync: dict = {}
    list(poll_into(source, sync))
    raw, _ = make_mail(sender="kim@customer.example", subject="Slipped in")
    mailbox.append("INBOX", raw, datetime.now(timezone.utc))
    started = time.monotonic()
    assert source.wait(30, threading.Event()) is True
    assert time.monotonic() - started < 5
    assert len(list(poll_into(source, sync))) == 1


def test_a_connection_that_dies_while_idle_is_dropped_and_made_again(source, dovecot, mailbox):
    sync: dict = {}
    list(poll_into(source, sync))
    threading.Timer(0.5, dovecot.stop).start()
    started = time.monotonic()
    try:
        assert source.wait(60, threading.Event()) is True  # poll now: it will reconnect (or report the outage)
        assert time.monotonic() - started < 20
        assert source._client is None
    finally:
        dovecot.start()
    assert list(poll_into(source, sync)) == []  # reconnected


def test_without_a_connection_wait_just_sleeps(source):
    started = time.monotonic()
    assert source.wait(0.3, threading.Event()) is False
    assert time.monotonic() - started >= 0.25


def status(config, env) -> dict:
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "status", "--json"],
                            capture_output=True, text=True, env=env, timeout=30)
    return json.loads(result.stdout)


def test_the_daemon_tracks_new_mail_at_once_and_escalates_on_time_while_idle(tmp_path, mailbox, smtp_sink):
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink),
                          rules=FIVE_SECOND_RULE, extra=SLOW_POLL)
    env = {**os.environ, "MAILESC_IMAP_PASSWORD": mailbox.password}
    log_path = tmp_path / "daemon.log"
    daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], env=env,
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (tmp_path / "var" / "mailesc.json").exists(), timeout=15, message="no first cycle")
        time.sleep(0.5)  # the daemon is idling now; its next poll is a minute away
        appended_at = datetime.now(timezone.utc)
        raw, message_id = make_mail(sender="Pat <pat@customer.example>", subject="Printer on fire", date=appended_at)
        mailbox.append("INBOX", raw, appended_at)
        wait_until(lambda: status(config, env)["threads"] == 1, timeout=15,
                   message="the message was not tracked long before the next poll")

        [mail] = smtp_sink.wait_for(1, timeout=20)
        deadline = appended_at.replace(microsecond=0).timestamp() + 5  # INTERNALDATE has whole seconds
        late_by = mail.received_at.timestamp() - deadline
        assert 0 <= late_by < 4, f"escalation arrived {late_by:.1f}s after the deadline"
        assert message_id in mail.message["References"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=15)
        finally:
            daemon.kill()
    output = log_path.read_text()
    assert code == 0, output
    assert "stopped" in output and "Traceback" not in output
