"""The `command` transport through the whole path: `mailesc once` escalates a breach and acknowledges a customer
by piping each mail to a real program (tests/fake_sendmail.py), retries a temporary failure with backoff,
records a permanent one, and `check` describes it."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import MAILDIR, REPO, deliver, make_mail, write_config

FAKE = REPO / "tests" / "fake_sendmail.py"
RULES = """
[[rule]]
name = "standard"
first_response = "1h"
acknowledge = "ack"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def mailesc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailesc", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture
def setup(tmp_path):
    """(config, the folder the program keeps mails in): a customer wrote two hours ago and nobody answered
    (an escalation is due); another wrote a minute ago (an acknowledgement is due)."""
    sent = tmp_path / "sent"
    sent.mkdir()
    command = json.dumps([sys.executable, str(FAKE), str(sent), "-t", "-oi"])
    smtp = f'[smtp]\nkind = "command"\ncommand = {command}\nfrom = "Escalations <escalations@example.test>"'
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=smtp, rules=RULES)
    inbox = mailbox.Maildir(tmp_path / "Maildir", create=True)
    inbox.add_folder("Sent")
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    raw, _ = make_mail(sender="Pat <pat@customer.example>", subject="Printer on fire", date=two_hours_ago)
    deliver(inbox, raw, two_hours_ago)
    a_minute_ago = datetime.now(timezone.utc) - timedelta(minutes=1)
    deliver(inbox, make_mail(sender="sam@other.example", subject="Quick question", date=a_minute_ago)[0],
            a_minute_ago)
    return config, sent


def kept(sent) -> list[tuple[list[str], email.message.EmailMessage]]:
    return [(json.loads(path.with_suffix(".json").read_text()),
             email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
            for path in sorted(sent.glob("*.eml"))]


def test_once_escalates_and_acknowledges_through_the_program(setup):
    config, sent = setup
    done = mailesc("-c", str(config), "once")
    assert done.returncode == 0, done.stderr
    by_recipient = {mail["To"]: (arguments, mail) for arguments, mail in kept(sent)}
    assert set(by_recipient) == {"manager@example.test", "sam@other.example"}

    arguments, escalation = by_recipient["manager@example.test"]
    assert arguments == ["-t", "-oi", "-f", "escalations@example.test"]
    assert escalation["Auto-Submitted"] == "auto-generated" and "Printer on fire" in escalation["Subject"]

    arguments, ack = by_recipient["sam@other.example"]
    assert arguments == ["-t", "-oi", "-f", "<>"]  # an RFC 3834 auto-reply: the null envelope sender
    assert ack["Auto-Submitted"] == "auto-replied"

    again = mailesc("-c", str(config), "once")
    assert again.returncode == 0 and len(kept(sent)) == 2  # nothing is sent twice


def test_a_temporary_failure_waits_for_its_retry_and_then_goes_out_once(setup):
    config, sent = setup
    (sent / "status").write_text("75")
    (sent / "stderr").write_text("sendmail: cannot queue mail for pat@customer.example: 'Printer on fire'\n")
    first = mailesc("-c", str(config), "once")
    assert first.returncode == 69, first.stderr
    assert "exited 75 (EX_TEMPFAIL): sendmail: cannot queue mail for …" in first.stderr
    assert "pat@customer.example" not in first.stderr and "Printer on fire" not in first.stderr
    assert kept(sent) == []

    (sent / "status").unlink()
    [breach] = json.loads(mailesc("-c", str(config), "breaches", "list", "--json").stdout)
    retry_at = breach["escalations"][0]["retry_at"]
    done = mailesc("-c", str(config), "once", "--now", retry_at)
    assert done.returncode == 0, done.stderr
    assert sorted(mail["To"] for _, mail in kept(sent)) == ["manager@example.test", "sam@other.example"]


def test_a_permanent_failure_is_recorded_and_not_retried(setup):
    config, sent = setup
    (sent / "status").write_text("67")
    (sent / "stderr").write_text("manager@example.test... User unknown\n")
    first = mailesc("-c", str(config), "once")
    [breach] = json.loads(mailesc("-c", str(config), "breaches", "list", "--json").stdout)
    [record] = breach["escalations"]
    assert record["delivery"] == "failed", (first.stderr, record)
    assert record["error"].endswith("exited 67 (EX_NOUSER): … User unknown")
    (sent / "status").unlink()
    later = datetime.now(timezone.utc) + timedelta(minutes=30)  # past any retry pause, before Sam's deadline
    mailesc("-c", str(config), "once", "--now", later.isoformat())
    assert all(mail["To"] != "manager@example.test" for _, mail in kept(sent))


def test_check_describes_the_command(setup):
    config, sent = setup
    done = mailesc("-c", str(config), "check")
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("sending")]
    assert line == (f"sending    kind: command; command: {sys.executable} {FAKE} {sent} -t -oi; timeout: 30s; "
                    f"envelope sender: -f ADDRESS")
    assert kept(sent) == []
