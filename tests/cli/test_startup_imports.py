"""Start-up: each command imports only what it uses (issue 13, goal 3).

matplotlib, rich, mail-parser, holidays and jinja2 each take tens of milliseconds to import; a command that
does not draw a chart, print to a terminal, quote a message body, look up public holidays or render a mail
must not load them. Each case runs the real `mailesc` entry point in a fresh interpreter and reads which
modules it ended up with: a test of what is imported, not of how long it takes."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, REPO, deliver, make_mail, outbox_mails, write_config

HEAVY = ("matplotlib", "rich", "mailparser", "holidays", "jinja2")
CYCLE = ("mailesc.app", "mailesc.cycle", "mailesc.config")  # the modules a cycle needs, not --help

# Runs the CLI as the `mailesc` command does, then reports which of the watched modules were loaded.
PROBE = """
import contextlib, io, json, sys
from mailesc.cli import main
watched = json.loads(sys.argv[1])
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = main(sys.argv[2:])
    except SystemExit as stop:
        status = stop.code
print(json.dumps({"status": status, "loaded": sorted(m for m in watched if m in sys.modules)}))
"""


def _loaded(*argv: str, cwd) -> tuple[int, set[str]]:
    """(exit status, the HEAVY and CYCLE modules loaded) of `mailesc ARGV` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY + CYCLE), *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    return result["status"], set(result["loaded"])


@pytest.fixture
def served_store(tmp_path):
    """A Maildir config whose store has one breach on record (its escalation already in the outbox)."""
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE)
    inbox = mailbox.Maildir(tmp_path / "Maildir", create=True)
    inbox.add_folder("Sent")
    now = datetime.now(timezone.utc)
    raw, _ = make_mail(sender="pat@customer.example", subject="Unanswered", date=now - timedelta(hours=2))
    deliver(inbox, raw, now - timedelta(hours=2))
    return config


def test_help_loads_neither_the_heavy_libraries_nor_the_cycle(tmp_path):
    status, loaded = _loaded("--help", cwd=tmp_path)
    assert status == 0 and loaded == set()


def test_the_first_cycle_that_escalates_loads_what_a_mail_needs(served_store):
    """The other side of the cases below: rendering and quoting an escalation does load jinja2 and
    mail-parser, so their absence elsewhere means something."""
    status, loaded = _loaded("-c", str(served_store), "once", cwd=served_store.parent)
    assert status == 0 and len(outbox_mails(served_store.parent / "outbox")) == 1
    assert {"jinja2", "mailparser", "mailesc.cycle"} <= loaded
    assert not loaded & {"matplotlib", "rich", "holidays"}


@pytest.mark.parametrize("argv, not_needed", [
    # `once` and `report` load the policies and templates (and check that the templates render): jinja2 is theirs
    (("once",), {"matplotlib", "rich", "mailparser", "holidays"}),  # nothing new: no mail to quote
    (("status", "--json"), set(HEAVY)),
    (("breaches", "list", "--json"), set(HEAVY)),
    (("breaches", "list"), set(HEAVY)),  # not a terminal: plain lines, no rich table
    # reading records needs the config and the store, not the engine app.py wires (mailesc/records.py)
    (("breaches", "list", "--csv"), set(HEAVY) | {"mailesc.app", "mailesc.cycle"}),
    (("breaches", "show", "1"), set(HEAVY) | {"mailesc.app", "mailesc.cycle"}),
    (("report", "--json"), {"matplotlib", "rich", "mailparser", "holidays"}),  # no --html: no chart
])
def test_a_command_loads_none_of_the_libraries_it_does_not_use(served_store, argv, not_needed):
    assert _loaded("-c", str(served_store), "once", cwd=served_store.parent)[0] == 0  # a breach on record
    status, loaded = _loaded("-c", str(served_store), *argv, cwd=served_store.parent)
    assert status == 0 and not loaded & not_needed, loaded & not_needed


def test_a_calendar_with_public_holidays_loads_holidays_where_it_is_used(tmp_path):
    rules = '[calendars.office]\ntimezone = "Europe/Berlin"\nholidays_country = "DE"\n' + ONE_HOUR_RULE
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=rules)
    status, loaded = _loaded("-c", str(config), "policies", "check", cwd=tmp_path)
    assert status == 0 and "holidays" in loaded
    assert not loaded & {"matplotlib", "rich", "mailparser"}
