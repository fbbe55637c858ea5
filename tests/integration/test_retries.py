"""Retries against a real aiosmtpd server: the pause is capped before it is computed (no overflow, however many
tries), one mail that keeps failing never holds back the others, and `once` says a mail is waiting (69) even
inside its retry pause."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc import app
from mailesc.config import load_config
from mailesc.model import Delivery
from mailesc.outbox import RETRY_FIRST, RETRY_MOST, retry_time
from mailesc.sources import open_source
from mailesc.store import Store
from mailesc.transports import open_transport
from tests.support import MAILDIR, OUTBOX, REPO, deliver, make_mail, outbox_mails, smtp_section, write_config

pytestmark = pytest.mark.integration

RULE = """
[[rule]]
name = "standard"
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("attempts, pause", [
    (0, timedelta(seconds=30)),
    (1, timedelta(seconds=30)),
    (2, timedelta(minutes=1)),
    (3, timedelta(minutes=2)),
    (6, timedelta(minutes=16)),
    (7, timedelta(minutes=30)),  # 32 minutes, capped
    (8, timedelta(minutes=30)),
    (42, timedelta(minutes=30)),
    (43, timedelta(minutes=30)),  # 30 s x 2^42 no longer fits a timedelta: computed naively, OverflowError
    (500, timedelta(minutes=30)),
    (10 ** 9, timedelta(minutes=30)),
])
def test_the_retry_pause_doubles_up_to_30_minutes_and_never_overflows(attempts, pause):
    assert retry_time(attempts, T0) - T0 == pause


def test_the_pause_never_shrinks_as_attempts_grow():
    pauses = [retry_time(n, T0) - T0 for n in range(1, 600)]
    assert pauses == sorted(pauses) and pauses[0] == RETRY_FIRST and pauses[-1] == RETRY_MOST


@pytest.fixture
def engine_for(tmp_path):
    """engine_for(smtp section) -> (engine, store, Maildir): a real Maildir source, the given transport."""
    opened = []

    def make(smtp: str, folder=tmp_path):
        config = load_config(write_config(folder, mailbox=MAILDIR, smtp=smtp, rules=RULE))
        inbox = mailbox.Maildir(folder / "Maildir", create=True)
        inbox.add_folder("Sent")
        source, store = open_source(config.mailbox), Store(config.store_path)
        opened.extend([source, store])
        return app.build_engine(app.load_setup(config), store, source, open_transport(config.smtp)), store, inbox

    yield make
    for thing in opened:
        thing.close()


def customer_writes(inbox, at: datetime, sender: str) -> str:
    raw, message_id = make_mail(sender=sender, subject=f"Help for {sender}", date=at)
    deliver(inbox, raw, at)
    return message_id


@pytest.fixture
def memory_folder(tmp_path):
    """A folder in RAM where there is one: 500 cycles write the store 1500 times, and on a busy disk the
    fsyncs alone take most of a minute."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="mailesc-retries-") as name:
        yield Path(name)


def test_a_record_goes_through_500_failed_attempts_each_after_its_capped_pause(memory_folder, engine_for):
    """The outbox folder cannot be made (a file is in its way): every try fails for real, 500 times. Each
    retry comes at its capped pause (before the cap was applied first, the 43rd raised OverflowError and
    every cycle after it failed), and once the way is clear the mail goes out."""
    engine, store, inbox = engine_for(OUTBOX, memory_folder)
    blocked = memory_folder / "outbox"
    blocked.write_text("not a folder")
    customer_writes(inbox, T0, "pat@customer.example")
    now = T0 + timedelta(hours=1)
    for attempt in range(1, 501):
        report = engine.cycle(now)
        [record] = store.breaches[1].escalations
        assert (record.delivery, record.attempts) == (Delivery.PENDING, attempt)
        assert record.retry_at - now == min(RETRY_FIRST * 2 ** min(attempt - 1, 10), RETRY_MOST)
        assert report.mails_waiting == 1 and "cannot write to the outbox" in report.transport_error
        now = record.retry_at
    blocked.unlink()
    report = engine.cycle(now)
    assert (record.delivery, record.attempts, report.mails_waiting) == (Delivery.SENT, 501, 0)
    assert len(outbox_mails(blocked)) == 1


def test_a_mail_the_server_keeps_refusing_never_holds_back_the_others(engine_for, smtp_sink):
    """A real SMTP server refuses one escalation (451) for the 499th and 500th time while a second customer's
    escalation falls due: that one goes out in the same cycle, and the stuck one later."""
    engine, store, inbox = engine_for(smtp_section(smtp_sink))
    stuck_thread = customer_writes(inbox, T0, "pat@customer.example")
    now = T0 + timedelta(hours=1)
    smtp_sink.fail_next(451, "4.3.0 Try again later")
    engine.cycle(now)
    [stuck] = store.breaches[1].escalations
    stuck.attempts = 498  # it has been refused for days
    store.put_breach(store.breaches[1])
    store.flush()
    for attempt in (499, 500):
        now = stuck.retry_at
        if attempt == 500:  # a second customer, unanswered for two hours: due at once
            other_thread = customer_writes(inbox, now - timedelta(hours=2), "kim@customer.example")
        smtp_sink.fail_next(451, "4.3.0 Try again later")  # the next DATA only: the stuck mail goes first
        report = engine.cycle(now)
        assert (stuck.delivery, stuck.attempts, stuck.retry_at - now) == (Delivery.PENDING, attempt, RETRY_MOST)
    [sent] = smtp_sink.wait_for(1)
    assert other_thread in sent.message["References"] and report.mails_sent == 1 and report.mails_waiting == 1
    assert store.breaches[2].escalations[0].delivery is Delivery.SENT

    report = engine.cycle(stuck.retry_at)  # the server takes it now
    assert (stuck.delivery, stuck.attempts, report.mails_waiting) == (Delivery.SENT, 501, 0)
    assert stuck_thread in smtp_sink.wait_for(2)[1].message["References"]


def mailesc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailesc", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_once_exits_69_while_a_mail_waits_inside_its_retry_pause(tmp_path, smtp_sink):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=smtp_section(smtp_sink), rules=RULE)
    inbox = mailbox.Maildir(tmp_path / "Maildir", create=True)
    inbox.add_folder("Sent")
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    deliver(inbox, make_mail(sender="pat@customer.example", subject="Help", date=two_hours_ago)[0], two_hours_ago)
    smtp_sink.fail_next(451, "4.3.0 Try again later")

    first = mailesc("-c", str(config), "once")
    assert first.returncode == 69 and "451" in first.stderr, first.stderr
    again = mailesc("-c", str(config), "once")  # inside the 30 s pause: nothing is tried, but the mail waits
    assert again.returncode == 69, again.stderr
    assert "1 mail(s) not sent yet" in again.stderr and "451" in again.stderr
    assert smtp_sink.messages == []
    status = mailesc("-c", str(config), "status", "--json")
    assert status.returncode == 1 and any("waiting for a retry" in p for p in json.loads(status.stdout)["problems"])

    [breach] = json.loads(mailesc("-c", str(config), "breaches", "list", "--json").stdout)
    retry_at = breach["escalations"][0]["retry_at"]
    done = mailesc("-c", str(config), "once", "--now", retry_at)
    assert done.returncode == 0, done.stderr
    assert len(smtp_sink.wait_for(1)) == 1


@pytest.mark.parametrize("code, delivery", [(450, Delivery.PENDING), (451, Delivery.PENDING),
                                            (550, Delivery.FAILED), (553, Delivery.FAILED)])
def test_a_recipient_refused_at_rcpt_waits_on_a_4xx_and_fails_for_good_on_a_5xx(engine_for, smtp_sink, code,
                                                                                   delivery):
    """Greylisting or a full mailbox answers 4xx at RCPT: the escalation waits for its retry (it was
    recorded failed for good before); a 5xx for every recipient is final."""
    engine, store, inbox = engine_for(smtp_section(smtp_sink))
    customer_writes(inbox, T0, "pat@customer.example")
    smtp_sink.refuse_rcpt("manager@example.test", code)
    engine.cycle(T0 + timedelta(hours=1))
    [record] = store.breaches[1].escalations
    assert record.delivery is delivery and str(code) in record.error and smtp_sink.messages == []
    if delivery is Delivery.PENDING:
        smtp_sink.reset()  # the recipient's server takes mail again
        engine.cycle(record.retry_at)
        assert record.delivery is Delivery.SENT and len(smtp_sink.wait_for(1)) == 1
