"""The intake commands on a Maildir: `quarantine retry`, `status` naming threads a policy cannot time,
`run --dry-run`, `[mailbox] since` in the config, and `breaches resend --to` mistakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc.model import Kind, Thread, ThreadMessage
from mailesc.store import Store
from mailesc.testing import wait_until
from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, deliver, make_mail, outbox_mails, write_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def mailesc(config: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), *args], capture_output=True,
                            text=True, timeout=60)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_quarantine_retry_reads_a_repaired_message_again(maildir_setup):
    config, inbox, _, _ = maildir_setup
    key = inbox.add(b"\x00\x01 not a message")
    mailesc(config, "once")
    listed = json.loads(mailesc(config, "quarantine", "--json").stdout)
    assert [(q["key"], q["retry"]) for q in listed] == [(f"maildir:INBOX:{key}", False)]

    for args, phrase in ((["retry"], "or --all"), (["retry", "maildir:INBOX:nothing"], "not in quarantine"),
                         (["retry", listed[0]["key"], "--all"], "or --all")):
        result = mailesc(config, "quarantine", *args)
        assert result.returncode == 64 and phrase in result.stderr, result.stderr

    good, message_id = make_mail(sender="pat@customer.example", subject="Readable now")
    Path(inbox._path, inbox._lookup(key)).write_bytes(good)
    result = mailesc(config, "quarantine", "retry", listed[0]["key"])
    assert result.returncode == 0 and "1 message(s) will be read again" in result.stdout
    assert json.loads(mailesc(config, "quarantine", "--json").stdout)[0]["retry"] is True
    mailesc(config, "once")
    assert mailesc(config, "quarantine").stdout.strip() == "Nothing in quarantine."
    with Store(config.parent / "var" / "mailesc.json", readonly=True) as store:
        assert message_id in store.threads


def test_quarantine_retry_all_on_an_empty_quarantine(maildir_setup):
    config, _, _, _ = maildir_setup
    result = mailesc(config, "quarantine", "retry", "--all")
    assert result.returncode == 0 and result.stdout.strip() == "Nothing in quarantine."


def test_status_is_not_healthy_while_a_policy_cannot_time_a_thread(maildir_setup):
    config, _, _, _ = maildir_setup
    with Store(config.parent / "var" / "mailesc.json") as store:
        store.put_thread(Thread(id="<a@customer.example>", subject="x", ids={"<a@customer.example>"},
                                messages=[ThreadMessage(key="maildir:INBOX:1", folder="INBOX", kind=Kind.CUSTOMER,
                                                        message_id="<a@customer.example>", arrived=NOW,
                                                        sender="pat@customer.example")],
                                policy="standard", clock_error="calendar 'closed' has no open time within 1098 days"))
        store.flush()
    result = mailesc(config, "status", "--json")
    doc = json.loads(result.stdout)
    assert result.returncode == 1 and doc["healthy"] is False and doc["untimed_threads"] == 1
    assert "no open time" in doc["untimed_reason"]
    assert [p for p in doc["problems"] if "1 thread(s) without a clock: a policy cannot time them" in p]
    text = mailesc(config, "status").stdout
    assert "no clock         1 thread(s): a policy cannot time them" in text and "NOT healthy" in text


@pytest.mark.parametrize("since, phrase", [("soon", "'soon'"), ("2026-11-01T09:00:00", "no offset"),
                                           ("-3d", "'-3d'")])
def test_a_bad_since_names_the_key_and_exits_78(tmp_path, since, phrase):
    config = write_config(tmp_path, mailbox=MAILDIR + f'\nsince = "{since}"', smtp=OUTBOX, rules=ONE_HOUR_RULE)
    result = mailesc(config, "check", "--offline")
    assert result.returncode == 78 and "mailbox.since" in result.stderr and phrase in result.stderr


def test_since_as_a_date_makes_older_mail_history(tmp_path, maildir_setup):
    config, inbox, _, outbox = maildir_setup
    text = config.read_text().replace('path = "Maildir"', 'path = "Maildir"\nsince = "' +
                                      (NOW - timedelta(days=2)).date().isoformat() + '"')
    config.write_text(text)
    deliver(inbox, make_mail(sender="old@customer.example", subject="Three days ago")[0], NOW - timedelta(days=3))
    deliver(inbox, make_mail(sender="new@customer.example", subject="Two hours ago")[0], NOW - timedelta(hours=1.5))
    mailesc(config, "once")
    breaches = json.loads(mailesc(config, "breaches", "list", "--json").stdout)
    assert [b["customer"] for b in breaches] == ["new@customer.example"]
    assert [m["To"] for m in outbox_mails(outbox)] == ["manager@example.test"]


def test_breaches_resend_to_refuses_what_is_not_an_address(maildir_setup):
    config, inbox, _, _ = maildir_setup
    deliver(inbox, make_mail(sender="pat@customer.example")[0], NOW - timedelta(hours=1.5))
    mailesc(config, "once")
    result = mailesc(config, "breaches", "resend", "1", "--to", "not an address")
    assert result.returncode == 64 and "--to wants a mail address" in result.stderr
    result = mailesc(config, "breaches", "resend", "1")  # sent, nothing failed
    assert result.returncode == 64 and "--level N --to ADDR" in result.stderr
    result = mailesc(config, "breaches", "resend", "1", "--level", "1", "--to", "deputy@example.test")
    assert result.returncode == 0, result.stderr
    shown = json.loads(mailesc(config, "breaches", "show", "1", "--json").stdout)
    assert shown["delivery"] == {"1": "pending"} and shown["escalations"][0]["resent"][0]["delivery"] == "sent"


def test_run_dry_run_prints_what_it_would_send_and_writes_nothing(maildir_setup, tmp_path):
    config, inbox, _, outbox = maildir_setup
    config.write_text(config.read_text() + "\n[daemon]\npoll_seconds = 1\n")
    deliver(inbox, make_mail(sender="pat@customer.example", subject="Overdue")[0], NOW - timedelta(hours=1.5))
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run", "--dry-run"],
                                  stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        wait_until(lambda: "would send escalation, level=1" in log.read_text(), timeout=30,
                   message="the dry run printed nothing")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    text = log.read_text()
    assert daemon.returncode == 0 and "manager@example.test" in text and "Traceback" not in text
    assert text.count("would send") == 1  # later cycles know (in memory) that it went
    assert text.count("would record breach 1 (policy standard") == 1
    assert not (tmp_path / "var").exists() and outbox_mails(outbox) == []


def test_a_dry_run_that_cannot_read_the_mailbox_says_so(tmp_path):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE)  # no Maildir there
    result = mailesc(config, "once", "--dry-run")
    assert result.returncode == 69 and "is not a Maildir" in result.stderr
    assert "dry run, nothing was written or sent" in result.stdout and not (tmp_path / "var").exists()
