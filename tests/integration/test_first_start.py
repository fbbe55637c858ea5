"""A first start on a mailbox with history, a dry run, and an escalation sent elsewhere: real Dovecot, real SMTP.

`[mailbox] since` (default 7d back from the store's first start): older mail threads and answers but starts no
clock; a thread already overdue at the first start is escalated at its current level only, once."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from tests.support import ONE_HOUR_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

CUSTOMER = "Pat Customer <pat@customer.example>"
AGENT = "Alice Agent <alice@example.test>"


@pytest.fixture
def setup(tmp_path, mailbox, smtp_sink, monkeypatch):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)
    return Setup(config, mailbox, smtp_sink, tmp_path / "var" / "mailesc.json")


class Setup:
    def __init__(self, config, mailbox, sink, store):
        self.config, self.mailbox, self.sink, self.store = config, mailbox, sink, store
        self.start = datetime.now(timezone.utc).replace(microsecond=0)

    def run(self, capsys, *args, status=0) -> str:
        code = main(["-c", str(self.config), *args])
        out, err = capsys.readouterr()
        assert code == status, err
        return out

    def customer_writes(self, hours_ago: float, subject: str, **kwargs) -> str:
        when = self.start - timedelta(hours=hours_ago)
        raw, message_id = make_mail(sender=CUSTOMER, subject=subject, date=when, **kwargs)
        self.mailbox.append("INBOX", raw, when)
        return message_id

    def team_replies(self, hours_ago: float, parent: str, subject: str) -> None:
        when = self.start - timedelta(hours=hours_ago)
        raw, _ = make_mail(sender=AGENT, to=CUSTOMER, subject=f"Re: {subject}", date=when, in_reply_to=parent,
                           references=[parent], body="We are on it.")
        self.mailbox.append("Sent", raw, when)

    def breaches(self, capsys) -> list[dict]:
        return json.loads(self.run(capsys, "breaches", "list", "--json"))


def test_old_mail_sends_nothing_and_an_overdue_thread_gets_only_its_current_level_once(setup, capsys):
    old = setup.customer_writes(hours_ago=10 * 24, subject="Old and never answered")
    answered_late = setup.customer_writes(hours_ago=9 * 24, subject="Old, answered within since")
    setup.team_replies(hours_ago=2 * 24, parent=answered_late, subject="Old, answered within since")
    overdue = setup.customer_writes(hours_ago=5, subject="Overdue at the first start")  # L1 4h ago, L2 2h ago
    fresh = setup.customer_writes(hours_ago=0.5, subject="Fresh")  # due in 30 minutes

    # A dry run on the first start: it says what would go out, and creates nothing, sends nothing.
    out = setup.run(capsys, "once", "--dry-run")
    assert "would send escalation, level=2" in out and "director@example.test" in out
    assert out.count("would send") == 1, out
    assert "would record breach 1 (policy standard, due " in out and "level 2 escalation to director@" in out
    assert "1 mail(s) would be sent" in out
    assert not setup.store.exists() and setup.sink.messages == []

    setup.run(capsys, "once")
    [mail] = setup.sink.wait_for(1)
    assert mail.rcpt_tos == ["director@example.test"]  # level 2 only: level 1 fell due before mailesc watched
    assert "level=2" in mail.message["X-Mailesc"] and overdue in mail.message["References"]
    [breach] = setup.breaches(capsys)
    assert breach["thread"] == overdue and [e["level"] for e in breach["escalations"]] == [2]
    assert breach["delivery"] == {"2": "sent"}
    assert old not in json.dumps(breach) and answered_late not in json.dumps(breach)

    setup.run(capsys, "once")  # a second cycle neither sends level 1 late nor level 2 again
    assert len(setup.sink.messages) == 1

    # The fresh thread's deadline passes after the first start: its ladder runs as always, level 1 first.
    # A dry run of that moment leaves the store byte-identical and sends nothing.
    before, stamp = setup.store.read_bytes(), setup.store.stat().st_mtime_ns
    files = {p.name: p.read_bytes() for p in setup.store.parent.iterdir()}  # heartbeat, secret, lock too
    later = (setup.start + timedelta(hours=1)).isoformat()
    out = setup.run(capsys, "once", "--dry-run", "--now", later)
    assert "would send escalation, level=1" in out and "manager@example.test" in out, out
    assert setup.store.read_bytes() == before and setup.store.stat().st_mtime_ns == stamp
    assert {p.name: p.read_bytes() for p in setup.store.parent.iterdir()} == files
    assert len(setup.sink.messages) == 1

    setup.run(capsys, "once", "--now", later)
    assert [m.rcpt_tos for m in setup.sink.wait_for(2)] == [["director@example.test"], ["manager@example.test"]]
    levels = {b["thread"]: [e["level"] for e in b["escalations"]] for b in setup.breaches(capsys)}
    assert levels == {overdue: [2], fresh: [1]}

    # The anchor stays: a restart 30 days on still counts the 10-day-old mail as history.
    setup.run(capsys, "once", "--now", (setup.start + timedelta(days=30)).isoformat())
    assert old not in {b["thread"] for b in setup.breaches(capsys)}


def test_a_failed_escalation_is_resent_to_another_address_and_the_history_says_so(setup, capsys):
    setup.sink.refuse_rcpt("manager@example.test")
    first = setup.customer_writes(hours_ago=1.5, subject="Cannot log in")
    setup.run(capsys, "once", status=69)  # refused for good: once says so
    [breach] = setup.breaches(capsys)
    assert breach["delivery"] == {"1": "failed"} and breach["escalations"][0]["delivery"] == "failed"
    rows = list(csv.DictReader(io.StringIO(setup.run(capsys, "breaches", "list", "--csv"))))
    assert rows[0]["delivery"] == "1:failed"
    table = setup.run(capsys, "breaches", "list")
    assert "DELIVERY" in table.splitlines()[0] and "1:failed" in table.splitlines()[1]

    out = setup.run(capsys, "breaches", "resend", str(breach["id"]), "--to", "deputy@example.test")
    assert "deputy@example.test" in out
    setup.run(capsys, "once")
    [mail] = setup.sink.wait_for(1)
    assert mail.rcpt_tos == ["deputy@example.test"] and first in mail.message["References"]
    assert mail.message["Message-ID"] == breach["escalations"][0]["message_id"]  # the same escalation

    shown = json.loads(setup.run(capsys, "breaches", "show", str(breach["id"]), "--json"))
    assert shown["delivery"] == {"1": "sent"} and shown["escalations"][0]["to"] == ["deputy@example.test"]
    [resent] = [e for e in shown["timeline"] if e["event"] == "escalation_resent"]
    assert "deputy@example.test" in resent["text"] and "manager@example.test" in resent["text"]
    assert shown["escalations"][0]["resent"][0]["was"] == ["manager@example.test"]
    story = setup.run(capsys, "breaches", "show", str(breach["id"]))
    assert "deputy@example.test instead of manager@example.test" in story

    setup.run(capsys, "once")  # sent once, never again
    assert len(setup.sink.messages) == 1
