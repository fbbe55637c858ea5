"""Exit statuses as the README documents them, seen from real processes: 64 bad usage, 65 damaged store (refused,
left untouched, nothing sent, never quoted), 75 store in use, 1 unhealthy status, and a closed pipe ends quietly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.store import Store
from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, REPO, deliver, make_mail, outbox_mails, write_config

NAME, SUBJECT, ADDRESS = "Quentin Zebrowski", "Refund for order 4711", "quentin@zebra-customer.example"
CUSTOMER_TEXT = ("Zebrowski", "4711", "zebra-customer")


def mailesc(*args, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "mailesc", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def assert_clean(result, status: int, *phrases: str) -> None:
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


# -- 64: bad usage ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["frobnicate"],
    [],
    ["breaches"],
    ["breaches", "show", "seven"],
    ["breaches", "list", "--status", "lost"],
    ["status", "--colour"],
    ["once", "--now"],
], ids=["unknown-command", "no-command", "no-action", "bad-int", "bad-choice", "unknown-flag", "missing-value"])
def test_bad_usage_exits_64_with_the_usage_line(args):
    result = mailesc(*args)
    assert_clean(result, 64, "usage: mailesc", "error:")


def test_help_and_version_still_exit_0():
    assert mailesc("--help").returncode == 0 and mailesc("--version").returncode == 0


# -- 65: a damaged store is refused, nothing is sent ------------------------------------------------------------

@pytest.fixture
def escalated(tmp_path):
    """A config whose store holds one escalated customer thread, and a second unanswered customer message
    waiting in the Maildir: any cycle that ran would send an escalation for it (and, on a store taken as
    new, the first one again)."""
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE)
    import mailbox

    inbox = mailbox.Maildir(tmp_path / "Maildir", create=True)
    inbox.add_folder("Sent")
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    deliver(inbox, make_mail(sender=f"{NAME} <{ADDRESS}>", subject=SUBJECT, date=two_hours_ago)[0], two_hours_ago)
    assert_clean(mailesc("-c", str(config), "once"), 0)
    outbox = tmp_path / "outbox"
    assert len(outbox_mails(outbox)) == 1
    shutil.rmtree(outbox)
    deliver(inbox, make_mail(sender=f"{NAME} <{ADDRESS}>", subject=SUBJECT + " again", date=two_hours_ago)[0],
            two_hours_ago)
    return config, tmp_path / "var" / "mailesc.json", outbox


STORE_DAMAGES = {
    "empty": lambda good: b"",
    "cut-mid-line": lambda good: good[:good.index(b"Zebrowski") + 4],
    "garbage": lambda good: good.replace(b"Zebrowski", b"Zebrowski\xff\x00\xfe", 1),
    "wrong-shape": lambda good: json.dumps({"threads": [{"customer": NAME, "subject": SUBJECT}]}).encode(),
}
COMMANDS = [["once"], ["run"], ["status", "--json"], ["breaches", "list"], ["breaches", "resend", "1"]]


@pytest.mark.parametrize("how", sorted(STORE_DAMAGES) + ["unreadable"])
def test_a_damaged_store_exits_65_sends_nothing_and_is_left_byte_for_byte(escalated, how):
    config, store, outbox = escalated
    prefix = ()
    if how == "unreadable":
        bad = store.read_bytes()
        store.chmod(0)
        if os.geteuid() == 0:  # root reads anything: run without the capabilities that allow it
            if shutil.which("setpriv") is None:
                pytest.skip("setpriv is needed to take root's DAC override away")
            prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    else:
        bad = STORE_DAMAGES[how](store.read_bytes())
        store.write_bytes(bad)
    before = sorted(p.name for p in store.parent.iterdir())
    for command in COMMANDS:
        result = mailesc("-c", str(config), *command, prefix=prefix)
        assert_clean(result, 65, str(store))
        for text in CUSTOMER_TEXT:
            assert text not in result.stderr + result.stdout, (command, result.stderr)
        assert "Permission denied" in result.stderr if how == "unreadable" else "damaged" in result.stderr
    store.chmod(0o600)
    assert store.read_bytes() == bad
    assert sorted(p.name for p in store.parent.iterdir()) == before  # no new store, no temp file
    assert outbox_mails(outbox) == []  # nothing sent: neither the new escalation nor the old one again


def test_a_store_in_use_exits_75_and_reading_it_still_works(escalated):
    config, store, _ = escalated
    with Store(store):  # a daemon holds it
        assert_clean(mailesc("-c", str(config), "once"), 75, "another mailesc process is using", str(store))
        assert_clean(mailesc("-c", str(config), "breaches", "resend", "1"), 75, "another mailesc process")
        assert mailesc("-c", str(config), "breaches", "list").returncode == 0


# -- 1: status is unhealthy when no poll was recorded -----------------------------------------------------------

def test_status_of_a_never_started_daemon_is_unhealthy_and_a_poll_makes_it_healthy(tmp_path):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE)
    (tmp_path / "Maildir").mkdir()
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "Maildir" / sub).mkdir()
    result = mailesc("-c", str(config), "status", "--json")
    assert result.returncode == 1
    health = json.loads(result.stdout)
    assert health["healthy"] is False and health["last_poll_at"] is None and health["stale_after_seconds"] == 120
    assert any("no successful poll" in problem for problem in health["problems"]), health["problems"]
    text = mailesc("-c", str(config), "status")
    assert text.returncode == 1 and "no successful poll" in text.stdout and "NOT healthy" in text.stdout

    assert_clean(mailesc("-c", str(config), "once"), 0)
    result = mailesc("-c", str(config), "status", "--json")
    health = json.loads(result.stdout)
    assert (result.returncode, health["healthy"], health["problems"]) == (0, True, [])
    assert datetime.fromisoformat(health["last_poll_at"]) <= datetime.now(timezone.utc)


# -- a closed pipe ends quietly ---------------------------------------------------------------------------------

@pytest.fixture
def many_breaches(tmp_path):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE)
    due = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    with Store(tmp_path / "var" / "mailesc.json") as store:
        for number in range(4000):  # far more output than a pipe buffer holds
            store.new_breach(thread=f"<t{number}@customer.example>", customer=f"c{number}@customer.example",
                             subject=f"Question number {number}", policy="standard", received_at=due,
                             due_at=due + timedelta(minutes=number))
        store.flush()
    return config


@pytest.mark.parametrize("output", [[], ["--json"], ["--csv"]], ids=["table", "json", "csv"])
def test_a_closed_pipe_ends_the_listing_quietly(many_breaches, tmp_path, output):
    errors = tmp_path / "stderr.txt"
    command = " ".join([sys.executable, "-m", "mailesc", "-c", str(many_breaches), "breaches", "list", *output])
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command} 2>{errors} | head -1"], capture_output=True,
                            text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, (result.returncode, errors.read_text())
    assert len(result.stdout.splitlines()) == 1
    assert errors.read_text() == ""
