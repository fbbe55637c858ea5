"""From "what broke last week?" to a recorded cause for every breach, through the CLI only."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from mailesc.store import Store
from tests.support import MAILDIR, OUTBOX, deliver, make_mail, outbox_mails, write_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def three_breaches(maildir_setup, capsys):
    """Three unanswered customers (two from acme.example) an hour and more past a 1h deadline."""
    config, inbox, _sent, _outbox = maildir_setup
    for hours, sender in ((30, "pat@acme.example"), (5, "kim@acme.example"), (3, "lee@other.example")):
        raw, _ = make_mail(sender=sender, subject=f"Help for {sender}", date=NOW - timedelta(hours=hours))
        deliver(inbox, raw, NOW - timedelta(hours=hours))
    assert _run(capsys, "-c", str(config), "once", "--now", NOW.isoformat())[0] == 0
    return str(config)


def _ids(capsys, config, *filters) -> list[int]:
    code, out, err = _run(capsys, "-c", config, "breaches", "list", "--json", *filters)
    assert code == 0, err
    return [b["id"] for b in json.loads(out)]


def test_list_filters_narrow_the_breaches(three_breaches, capsys, backend):
    config = three_breaches
    assert _ids(capsys, config) == [1, 2, 3]
    assert _ids(capsys, config, "--customer", "acme.example") == [1, 2]
    assert _ids(capsys, config, "--customer", "lee@other.example") == [3]
    assert _ids(capsys, config, "--since", "24h") == [2, 3]  # breach 1's deadline was 29 hours ago
    assert _ids(capsys, config, "--until", "24h") == [1]
    assert _ids(capsys, config, "--policy", "standard", "--status", "open") == [1, 2, 3]
    assert _ids(capsys, config, "--policy", "nonesuch") == []
    assert _ids(capsys, config, "--limit", "2") == [2, 3]


def test_every_breach_gets_a_cause_and_the_history_keeps_every_change(three_breaches, capsys, backend):
    config = three_breaches
    assert _ids(capsys, config, "--unreviewed") == [1, 2, 3]
    for breach, cause in ((1, "staffing"), (2, "misrouted"), (3, "tooling")):
        code, out, _ = _run(capsys, "-c", config, "breaches", "review", str(breach), "--cause", cause,
                            "--note", f"note {breach}", "--by", "alice")
        assert code == 0 and f"cause {cause} recorded by alice" in out
    assert _ids(capsys, config, "--unreviewed") == []

    assert _run(capsys, "-c", config, "breaches", "review", "2", "--reopen", "--by", "bob",
                "--note", "it was the weekend roster")[0] == 0
    assert _ids(capsys, config, "--unreviewed") == [2]
    assert _run(capsys, "-c", config, "breaches", "review", "2", "--cause", "staffing", "--by", "bob")[0] == 0

    code, out, _ = _run(capsys, "-c", config, "breaches", "show", "2", "--json")
    shown = json.loads(out)
    assert shown["review"]["state"] == "reviewed" and shown["review"]["cause"] == "staffing"
    assert [(h["by"], h["action"], h["cause"]) for h in shown["review"]["history"]] == [
        ("alice", "review", "misrouted"), ("bob", "reopen", None), ("bob", "review", "staffing")]
    events = [event["event"] for event in shown["timeline"]]
    assert events[:2] == ["received", "due"] and "escalation" in events and "escalation_sent" in events
    assert events[-3:] == ["review", "reopen", "review"]

    code, text, _ = _run(capsys, "-c", config, "breaches", "show", "2")
    assert "bob reopened the review: it was the weekend roster" in text and "staffing (by bob" in text


@pytest.mark.parametrize("args, message", [
    (("breaches", "review", "1", "--cause", "gremlins"), "unknown cause 'gremlins'"),
    (("breaches", "review", "1"), "give the cause with --cause"),
    (("breaches", "review", "1", "--reopen"), "no recorded cause to reopen"),
    (("breaches", "review", "99", "--cause", "staffing"), "no breach with id 99"),
    (("breaches", "list", "--since", "last tuesday"), "--since wants an ISO 8601 time"),
])
def test_review_mistakes_are_usage_errors(three_breaches, capsys, backend, args, message):
    code, _, err = _run(capsys, "-c", three_breaches, *args)
    assert code == 64 and message in err and "Traceback" not in err


def test_causes_come_from_the_config(tmp_path, capsys):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules="",
                          extra='[review]\ncauses = ["people", "process"]\nperiod = "14d"')
    assert _run(capsys, "-c", str(config), "breaches", "causes")[1].split() == ["people", "process"]


def test_a_review_is_recorded_while_the_daemon_holds_the_store(three_breaches, tmp_path):
    """The daemon keeps the store locked for its whole life; reviews go to their own file."""
    with Store(tmp_path / "var" / "mailesc.json"):  # as `mailesc run` does
        result = subprocess.run([sys.executable, "-m", "mailesc", "-c", three_breaches, "breaches", "review", "1",
                                 "--cause", "staffing", "--by", "carol"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        listing = subprocess.run([sys.executable, "-m", "mailesc", "-c", three_breaches, "breaches", "list",
                                  "--csv"], capture_output=True, text=True, timeout=60)
    rows = list(csv.DictReader(io.StringIO(listing.stdout)))
    assert [(r["id"], r["review_state"], r["cause"], r["reviewed_by"]) for r in rows] == [
        ("1", "reviewed", "staffing", "carol"), ("2", "unreviewed", "", ""), ("3", "unreviewed", "", "")]


def test_csv_json_and_table_list_the_same_breaches(three_breaches, capsys, backend):
    config = three_breaches
    as_json = json.loads(_run(capsys, "-c", config, "breaches", "list", "--json")[1])
    as_csv = list(csv.DictReader(io.StringIO(_run(capsys, "-c", config, "breaches", "list", "--csv")[1])))
    table = _run(capsys, "-c", config, "breaches", "list")[1].splitlines()
    assert [b["id"] for b in as_json] == [int(r["id"]) for r in as_csv] == [int(line.split()[0]) for line in table[1:]]
    for doc, row in zip(as_json, as_csv):
        assert (doc["customer"], doc["due_at"], doc["status"]) == (row["customer"], row["due_at"], row["status"])
        assert row["levels"] == " ".join(str(e["level"]) for e in doc["escalations"])


def test_the_report_prints_the_same_numbers_as_table_csv_and_json(three_breaches, capsys, backend):
    config = three_breaches
    _run(capsys, "-c", config, "breaches", "review", "1", "--cause", "staffing")
    report = json.loads(_run(capsys, "-c", config, "report", "--by", "customer", "--json")[1])
    assert report["totals"]["threads"] == 3 and report["totals"]["breaches"] == 3
    assert report["totals"]["unreviewed"] == 2 and report["totals"]["breach_rate"] == 1.0
    rows = {r["customer"]: r for r in csv.DictReader(io.StringIO(
        _run(capsys, "-c", config, "report", "--by", "customer", "--csv")[1]))}
    table = {line.split()[0]: line.split()[1:] for line in _run(capsys, "-c", config, "report", "--by",
                                                                 "customer")[1].splitlines()[1:-1]}
    for group in report["groups"] + [{"key": "(total)", **report["totals"]}]:
        assert int(rows[group["key"]]["threads"]) == group["threads"] == int(table[group["key"]][0])
        assert int(rows[group["key"]]["breaches"]) == group["breaches"] == int(table[group["key"]][5])
        assert int(rows[group["key"]]["unreviewed"]) == group["unreviewed"] == int(table[group["key"]][13])


@pytest.mark.parametrize("table", ["daily_digest", "digest"])  # its name, and its old name (with a note)
def test_a_daily_digest_goes_out_once_a_day_at_its_local_time(three_breaches, tmp_path, capsys, backend, table):
    config = tmp_path / "mailesc.toml"
    config.write_text(config.read_text() + f'[{table}]\ndaily_at = "08:00"\ntimezone = "Europe/Berlin"\n'
                                           'to = ["boss@example.test"]\n')
    code, out, _ = _run(capsys, "-c", str(config), "check", "--offline")
    renamed = "[digest] is now called [daily_digest]"
    assert code == 0 and (renamed in out) == (table == "digest")
    outbox = tmp_path / "outbox"

    def digests():
        return [m for m in outbox_mails(outbox) if m["X-Mailesc"] == "daily-digest"]

    tomorrow = (NOW + timedelta(days=1)).date()
    before = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 6, 59, tzinfo=timezone.utc)  # 07:59 in Berlin
    assert _run(capsys, "-c", str(config), "once", "--now", before.isoformat())[0] == 0
    assert digests() == []
    for minutes in (2, 30):  # 08:01, then again later that morning: one mail
        code, _, err = _run(capsys, "-c", str(config), "once", "--now",
                            (before + timedelta(minutes=minutes)).isoformat())
        assert code == 0, err
    [digest] = digests()
    assert digest["To"] == "boss@example.test" and digest["Auto-Submitted"] == "auto-generated"
    body = digest.get_content()
    assert "3 breach(es) still have no recorded cause" in body and "Help for pat@acme.example" in body
    assert _run(capsys, "-c", str(config), "once", "--now", (before + timedelta(days=1, minutes=2)).isoformat())[0] == 0
    assert len(digests()) == 2 and len({m["Message-ID"] for m in digests()}) == 2


def test_quiet_threads_move_to_the_archive_and_stay_in_lists_and_reports(three_breaches, tmp_path, capsys, backend):
    config = three_breaches
    later = NOW + timedelta(days=100)  # past the default 90 days, every ladder long done
    assert _run(capsys, "-c", config, "once", "--now", later.isoformat())[0] == 0
    with backend.open(tmp_path) as store:
        box = store.box("default")
        assert box.threads == {} and box.breaches == {}
    assert sorted(backend.history(tmp_path).breaches) == [1, 2, 3]  # still on record
    if backend.name == "file":
        assert list((tmp_path / "var" / "mailesc-archive").glob("*.jsonl"))
    assert _ids(capsys, config) == [1, 2, 3]
    assert _run(capsys, "-c", config, "breaches", "review", "3", "--cause", "other")[0] == 0
    report = json.loads(_run(capsys, "-c", config, "report", "--json")[1])
    assert report["totals"]["threads"] == 3 and report["totals"]["unreviewed"] == 2
    assert "Help for lee" in _run(capsys, "-c", config, "breaches", "show", "3")[1]


def test_replay_writes_the_report_page(tmp_path, capsys):
    mbox = tmp_path / "inbox.mbox"
    raw, _ = make_mail(sender="pat@acme.example", subject="Replayed", date=NOW - timedelta(days=3))
    mbox.write_bytes(b"From pat@acme.example Mon Nov 16 09:00:00 2026\n" + raw + b"\n")
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules='[[rule]]\nname = "r"\nfirst_response = "1h"\n'
                          '[[rule.escalate]]\nafter = "0m"\nto = ["m@example.test"]\n')
    code, _, err = _run(capsys, "-c", str(config), "replay", str(mbox), "--until", NOW.isoformat(),
                        "--report", str(tmp_path / "report.html"))
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert json.loads(_run(capsys, "-c", str(config), "report", "--replay", "--json")[1])["totals"]["breaches"] == 1


@pytest.mark.parametrize("extra, key", [
    ('[review]\nperiod = "soon"', "review.period"),
    ('[review]\ncauses = []', "review.causes"),
    ('[digest]\ndaily_at = "8 o\'clock"\nto = ["a@b.example"]', "digest.daily_at"),
    ('[digest]\ndaily_at = "08:00"', "digest.to"),
    ('[digest]\ntimezone = "Mars/Olympus"', "digest.timezone"),  # the daily digest's old table name still read
    ('[daily_digest]\ndaily_at = "8 o\'clock"\nto = ["a@b.example"]', "daily_digest.daily_at"),
    ('[daily_digest]\ndaily_at = "08:00"', "daily_digest.to"),
    ('[daily_digest]\ndaily_at = "08:00"\nto = ["a@b.example"]\n[digest]\nto = ["a@b.example"]',
     "digest: is the old name of [daily_digest], which this file also has"),
    ('archive_after = "0d"', "store.archive_after"),
])
def test_bad_review_digest_and_archive_settings_exit_78_naming_the_key(tmp_path, extra, key):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules="", extra="" if key.startswith("store")
                          else extra)
    if key.startswith("store"):
        config.write_text(config.read_text().replace("[store]\n", f"[store]\n{extra}\n"))
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "check", "--offline"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78 and key in result.stderr and "Traceback" not in result.stderr
