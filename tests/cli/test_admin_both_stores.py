"""Admin commands over both stores: the same records in the embedded file and in PostgreSQL give the same
`breaches list/show`, `report`, `status` and `quarantine` output; `--mailbox` and `report --by mailbox`;
`breaches resend` and `quarantine retry` on PostgreSQL while a worker holds the mailbox (applied once, by the
holder) and while nobody does (the command applies them itself); with the file store they need the daemon
stopped, and say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc.cli import main
from mailesc.model import Delivery, Quarantined
from mailesc.store import Store
from tests.cli.test_many_mailboxes import two_mailboxes
from tests.support import deliver, make_mail

psycopg = pytest.importorskip("psycopg")

from mailesc.requests import apply_requests  # noqa: E402
from mailesc.stores.postgres import PostgresStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(timezone.utc).replace(microsecond=0)
PASSWORD_ENV = "MAILESC_TEST_STORE_PASSWORD"


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _open(database) -> PostgresStore:
    return PostgresStore(database.url, database.password, security="plain")


def _sql(database, statement, *params):
    with psycopg.connect(database.url, password=database.password, autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else None


def copy_to_postgres(path: Path, database) -> None:
    """Every live record of the file store into the database, as `store copy` will (a plain copy of records)."""
    with Store(path, readonly=True) as source, _open(database) as target:
        for box in source.mailboxes() + [source.installation]:
            into = target.box(box.name)
            for thread in box.threads.values():
                into.put_thread(thread)
            for breach in box.breaches.values():
                into.put_breach(breach)
            for item in box.quarantine.values():
                into.put_quarantined(item)
            for kind in ("sync", "health", "meta"):
                for name, state in getattr(box, kind).items():
                    getattr(into, kind)[name] = state
            into.flush()


@pytest.fixture
def both(tmp_path, pg_database, capsys, monkeypatch):
    """(file config, PostgreSQL config, database): two mailboxes (support: two breaches, billing: one) and one
    quarantined message in billing, the same records in both stores."""
    global NOW  # the records and the poll are "now" for each test: set at import, NOW was minutes old by the
    NOW = datetime.now(timezone.utc).replace(microsecond=0)  # last tests of a long run (status: "not polled")
    config, support, billing = two_mailboxes(tmp_path)
    for hours, inbox, sender in ((30, support, "pat@acme.example"), (5, billing, "kim@acme.example"),
                                 (3, support, "lee@other.example")):
        raw, _ = make_mail(sender=sender, subject=f"Help for {sender}", date=NOW - timedelta(hours=hours))
        deliver(inbox, raw, NOW - timedelta(hours=hours))
    assert _run(capsys, "-c", str(config), "once", "--now", NOW.isoformat())[0] == 0
    store_path = tmp_path / "var" / "mailesc.json"
    with Store(store_path) as store:
        store.box("billing").put_quarantined(Quarantined(key="billing-1", folder="INBOX", reason="unreadable MIME",
                                                         at=NOW - timedelta(hours=1)))
        store.flush()
    copy_to_postgres(store_path, pg_database)
    monkeypatch.setenv(PASSWORD_ENV, pg_database.password)
    pg_config = tmp_path / "mailesc-pg.toml"
    pg_config.write_text(config.read_text().replace(
        '[store]\npath = "var/mailesc.json"',
        f'[store]\npath = "var/mailesc.json"\nurl = "{pg_database.url}"\npassword_env = "{PASSWORD_ENV}"\n'
        f'security = "plain"'))
    return str(config), str(pg_config), pg_database


def _same(capsys, file_config: str, pg_config: str, *args) -> str:
    """The output of one command over both stores: equal (with the report's moment of making left out, and the
    period's ends, which a relative --since takes from that moment)."""
    file_code, file_out, file_err = _run(capsys, "-c", file_config, *args)
    pg_code, pg_out, pg_err = _run(capsys, "-c", pg_config, *args)
    assert (file_code, file_err) == (pg_code, pg_err), args
    if args[0] == "report" and "--json" in args:
        file_out, pg_out = (json.dumps({**json.loads(out), "generated_at": None, "since": None, "until": None})
                            for out in (file_out, pg_out))
    assert file_out == pg_out, args
    return file_out


LISTINGS = [
    (), ("--json",), ("--csv",), ("--json", "--mailbox", "billing"), ("--json", "--mailbox", "billing,support"),
    ("--json", "--mailbox", "support", "--mailbox", "nonesuch"), ("--json", "--customer", "acme.example"),
    ("--json", "--customer", "LEE@other.example"), ("--json", "--since", "24h"), ("--json", "--until", "24h"),
    ("--json", "--status", "open"), ("--json", "--policy", "billing"), ("--json", "--unreviewed"),
    ("--json", "--overdue-review"), ("--json", "--limit", "2"), ("--json", "--limit", "0"),
    ("--csv", "--mailbox", "support", "--unreviewed"),
]


def test_lists_shows_reports_status_and_quarantine_are_the_same_on_both_stores(both, capsys):
    file_config, pg_config, _ = both
    from mailesc import app
    from mailesc.config import load_config

    for config in (file_config, pg_config):  # the same reviews at the same moments, through each store's door
        loaded = load_config(Path(config))
        app.review(loaded, 1, cause="staffing", by="alice", now=NOW)
        app.review(loaded, 2, cause="misrouted", by="bob", now=NOW + timedelta(minutes=1))
        app.review(loaded, 2, reopen=True, by="bob", now=NOW + timedelta(minutes=2))

    everything = json.loads(_same(capsys, file_config, pg_config, "breaches", "list", "--json"))
    assert [(b["id"], b["mailbox"], b["customer"]) for b in everything] == [
        (1, "support", "pat@acme.example"), (2, "support", "lee@other.example"), (3, "billing", "kim@acme.example")]
    for filters in LISTINGS:
        _same(capsys, file_config, pg_config, "breaches", "list", *filters)
    assert [b["id"] for b in json.loads(_same(capsys, file_config, pg_config, "breaches", "list", "--json",
                                              "--unreviewed"))] == [2, 3]
    assert [b["id"] for b in json.loads(_same(capsys, file_config, pg_config, "breaches", "list", "--json",
                                              "--mailbox", "billing"))] == [3]
    assert [b["id"] for b in json.loads(_same(capsys, file_config, pg_config, "breaches", "list", "--json",
                                              "--mailbox", "billing,support", "--customer", "acme.example"))] == [1, 3]
    table = _same(capsys, file_config, pg_config, "breaches", "list")
    assert "MAILBOX" in table.splitlines()[0] and "billing" in table.splitlines()[3]
    csv_lines = _same(capsys, file_config, pg_config, "breaches", "list", "--csv").splitlines()
    assert csv_lines[0].endswith(",thread,delivery,mailbox") and csv_lines[3].endswith(",billing")

    for breach in ("1", "2", "3"):
        shown = json.loads(_same(capsys, file_config, pg_config, "breaches", "show", breach, "--json"))
        assert shown["id"] == int(breach) and shown["mailbox"] == everything[int(breach) - 1]["mailbox"]
        assert "  mailbox   " in _same(capsys, file_config, pg_config, "breaches", "show", breach)
    assert _same(capsys, file_config, pg_config, "breaches", "show", "99") == ""

    by_mailbox = json.loads(_same(capsys, file_config, pg_config, "report", "--by", "mailbox", "--json"))
    assert [(g["key"], g["threads"], g["breaches"], g["unreviewed"]) for g in by_mailbox["groups"]] == [
        ("billing", 1, 1, 1), ("support", 2, 2, 1)]
    for grouping in ("policy", "cause", "customer", "weekday", "week"):
        _same(capsys, file_config, pg_config, "report", "--by", grouping, "--json")
    _same(capsys, file_config, pg_config, "report", "--since", (NOW - timedelta(hours=10)).isoformat(), "--json")
    # (an absolute time: "10h" counts back from each command's own now, a second apart on a busy machine)
    _same(capsys, file_config, pg_config, "report", "--by", "mailbox", "--csv")

    quarantined = json.loads(_same(capsys, file_config, pg_config, "quarantine", "--json"))
    assert [(q["key"], q["mailbox"]) for q in quarantined] == [("billing-1", "billing")]
    _same(capsys, file_config, pg_config, "quarantine")

    statuses = []
    for config in (file_config, pg_config):
        code, out, _ = _run(capsys, "-c", config, "status", "--json")
        result = json.loads(out)
        statuses.append({key: value for key, value in result.items()
                         if key not in ("store", "last_poll_at", "problems", "healthy", "leases", "workers")})
        for box in statuses[-1]["mailboxes"]:
            box.pop("last_poll_at")  # the database's own record of each mailbox's last poll
        assert [m["name"] for m in result["mailboxes"]] == ["support", "billing"]
    assert [m.pop("worker") for m in statuses[1]["mailboxes"]] == [None, None]  # PostgreSQL: nobody holds them
    assert statuses[0] == statuses[1]
    assert [(m["name"], m["threads"], m["open_breaches"], m["quarantined"]) for m in statuses[0]["mailboxes"]] == [
        ("support", 2, 2, 0), ("billing", 1, 1, 1)]


def test_status_on_postgresql_says_who_holds_which_mailbox(both, capsys):
    _, pg_config, database = both
    _sql(database, "INSERT INTO workers (id, host, pid, started_at, renewed_at, expires_at) VALUES "
                   "('hostA:41:ab', 'hostA', 41, now(), now(), now() + interval '1 hour')")
    _hold(database, "support", "hostA:41:ab")
    code, out, _ = _run(capsys, "-c", pg_config, "status", "--json")
    result = json.loads(out)
    assert [(m["name"], m["worker"]) for m in result["mailboxes"]] == [("support", "hostA:41:ab"), ("billing", None)]
    assert [(w["id"], w["host"], w["pid"], w["leases"]) for w in result["workers"]] == [("hostA:41:ab", "hostA", 41, 1)]
    assert not any("held by no live worker" in problem for problem in result["problems"])  # polled just now
    _sql(database, "UPDATE health SET state = jsonb_build_object('last_poll_at', '2020-01-01T00:00:00+00:00') "
                   "WHERE name = 'poll'; UPDATE health SET state = state || '{\"ok_at\": \"2020-01-01T00:00:00+00:00\"}'"
                   " WHERE name = 'mailbox'")
    code, out, _ = _run(capsys, "-c", pg_config, "status", "--json")
    result = json.loads(out)
    assert ("mailbox billing is held by no live worker and was not polled within daemon.stale_after (is mailesc run "
            "running?)") in result["problems"]
    assert not any("support is held" in problem for problem in result["problems"]) and code == 1
    code, text, _ = _run(capsys, "-c", pg_config, "status")
    assert "worker           hostA:41:ab on hostA (pid 41): 1 mailbox(es)" in text
    assert "worked by hostA:41:ab" in text and "worked by nobody" in text


def test_a_review_of_an_unknown_breach_or_cause_is_refused_on_postgresql(both, capsys):
    _, pg_config, database = both
    code, _, err = _run(capsys, "-c", pg_config, "breaches", "review", "99", "--cause", "staffing")
    assert code == 64 and "no breach with id 99" in err
    code, _, err = _run(capsys, "-c", pg_config, "breaches", "review", "1", "--cause", "weather")
    assert code == 64 and "unknown cause 'weather'" in err
    code, _, err = _run(capsys, "-c", pg_config, "breaches", "review", "1", "--reopen")
    assert code == 64 and "no recorded cause to reopen" in err
    assert _sql(database, "SELECT count(*) FROM reviews") == [(0,)]
    code, out, _ = _run(capsys, "-c", pg_config, "breaches", "review", "3", "--cause", "staffing", "--by", "carol")
    assert code == 0 and "breach 3: cause staffing recorded by carol" in out
    assert _sql(database, "SELECT breach, by, action, cause FROM reviews") == [(3, "carol", "review", "staffing")]


def _fail_escalations(database, breach_id: int) -> str:
    """Mark a breach's escalations refused for good (as the outbox does after a 5xx), as a worker would write it."""
    with _open(database) as store:
        mailbox = _sql(database, "SELECT mailbox FROM breaches WHERE id = %s", breach_id)[0][0]
        box = store.box(mailbox)
        breach = box.breaches[breach_id]
        for record in breach.escalations:
            record.delivery, record.error = Delivery.FAILED, "550 no such user"
        box.put_breach(breach)
        box.flush()
    return mailbox


def _hold(database, mailbox: str, owner: str = "worker-1:test") -> None:
    """A live worker holding `mailbox` (its lease row, as mailesc.stores.leases writes it)."""
    _sql(database, "INSERT INTO leases (mailbox, owner, acquired_at, renewed_at, expires_at) "
                   "VALUES (%s, %s, now(), now(), now() + interval '1 hour') ON CONFLICT (mailbox) DO UPDATE "
                   "SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at", mailbox, owner)


def _mailesc(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mailesc", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _applied_by_holder(database, mailbox: str, command: subprocess.Popen) -> list[str]:
    """The holder's side: apply_requests at the start of each cycle, until the command's request came and went."""
    with _open(database) as store:
        box = store.box(mailbox)
        for _ in range(600):
            lines = apply_requests(box, datetime.now(timezone.utc))
            if lines:
                return lines
            assert command.poll() is None, command.communicate()
            time.sleep(0.1)
    raise AssertionError("the command's request never reached the holder")


def test_resend_while_a_worker_holds_the_mailbox_is_applied_once_by_the_holder(both, capsys):
    _, pg_config, database = both
    mailbox = _fail_escalations(database, 3)
    _hold(database, mailbox)
    command = _mailesc("-c", pg_config, "breaches", "resend", "3")
    lines = _applied_by_holder(database, mailbox, command)
    out, err = command.communicate(timeout=120)
    assert command.returncode == 0, err
    assert lines == ["request 1 (resend) of mailbox 'billing': applied"]
    message_ids = [row[0] for row in _sql(database, "SELECT message_id FROM escalations WHERE breach = 3")]
    assert message_ids and all(message_id in out for message_id in message_ids)
    doc = _sql(database, "SELECT doc FROM breaches WHERE id = 3")[0][0]
    assert [(e["delivery"], len(e["resent"])) for e in doc["escalations"]] == [("pending", 1)] * len(message_ids)
    assert _sql(database, "SELECT delivery FROM escalations WHERE breach = 3") == [("pending",)] * len(message_ids)
    [(kind, by, done, result)] = _sql(database, "SELECT kind, requested_by, done_at IS NOT NULL, result FROM requests")
    assert (kind, done, json.loads(result)) == ("resend", True, {"message_ids": message_ids}) and "@" in by
    with _open(database) as store:  # applied once: the next cycle finds nothing to do
        assert apply_requests(store.box(mailbox), datetime.now(timezone.utc)) == []
    assert _sql(database, "SELECT owner FROM leases WHERE mailbox = %s", mailbox) == [("worker-1:test",)]

    # refused before any request when there is nothing to resend; refused by the holder, shown to the admin
    code, _, err = _run(capsys, "-c", pg_config, "breaches", "resend", "3")
    assert code == 64 and "breach 3 has no failed escalation" in err
    assert _sql(database, "SELECT count(*) FROM requests") == [(1,)]


def test_quarantine_retry_while_a_worker_holds_the_mailbox_and_the_holders_refusal_reaches_the_admin(both, capsys):
    _, pg_config, database = both
    _hold(database, "billing")
    command = _mailesc("-c", pg_config, "quarantine", "retry", "billing-1")
    assert _applied_by_holder(database, "billing", command) == [
        "request 1 (quarantine_retry) of mailbox 'billing': applied"]
    out, err = command.communicate(timeout=120)
    assert command.returncode == 0 and "1 message(s) will be read again" in out, err
    assert _sql(database, "SELECT doc->>'retry' FROM quarantine WHERE key = 'billing-1'") == [("true",)]

    # the message left quarantine between the command's check and the holder's cycle: the holder refuses
    command = _mailesc("-c", pg_config, "quarantine", "retry", "billing-1")
    for _ in range(600):
        if _sql(database, "SELECT count(*) FROM requests") == [(2,)]:
            break
        assert command.poll() is None, command.communicate()
        time.sleep(0.1)
    with _open(database) as store:
        box = store.box("billing")
        box.drop_quarantined("billing-1")
        box.flush()
        assert apply_requests(box, datetime.now(timezone.utc)) == [
            "request 2 (quarantine_retry) of mailbox 'billing': refused: not in quarantine: billing-1 (mailesc "
            "quarantine lists the ids)"]
    out, err = command.communicate(timeout=120)
    assert command.returncode == 64 and "not in quarantine: billing-1" in err, (out, err)


def test_with_nobody_holding_the_mailbox_the_command_applies_the_request_itself(both, capsys):
    _, pg_config, database = both
    _fail_escalations(database, 1)
    _sql(database, "INSERT INTO leases (mailbox, owner, acquired_at, renewed_at, expires_at) VALUES "
                   "('support', 'gone:1', now() - interval '1 hour', now() - interval '1 hour', "
                   "now() - interval '1 minute')")  # a worker that died: its lease expired
    code, out, err = _run(capsys, "-c", pg_config, "breaches", "resend", "1", "--to", "Deputy <deputy@example.test>")
    assert code == 0 and "to Deputy <deputy@example.test> at the next cycle" in out, err
    doc = _sql(database, "SELECT doc FROM breaches WHERE id = 1")[0][0]
    assert [(e["to"], e["delivery"]) for e in doc["escalations"]] == [(["deputy@example.test"], "pending")]
    assert _sql(database, "SELECT done_at IS NOT NULL FROM requests") == [(True,)]
    # the lease is left free (the dead worker's no more): the next worker to take it loads the records afresh
    assert _sql(database, "SELECT owner, expires_at FROM leases WHERE mailbox = 'support'") == [(None, None)]

    code, out, err = _run(capsys, "-c", pg_config, "quarantine", "retry", "--all")  # no lease row at all yet
    assert code == 0 and "1 message(s) will be read again" in out, err
    assert _sql(database, "SELECT doc->>'retry' FROM quarantine") == [("true",)]
    assert _sql(database, "SELECT owner FROM leases WHERE mailbox = 'billing'") == [(None,)]


def test_a_request_nobody_applies_in_time_waits_for_a_worker(both, capsys, monkeypatch):
    _, pg_config, database = both
    _fail_escalations(database, 2)
    _hold(database, "support")
    from mailesc import requests

    monkeypatch.setattr(requests, "default_wait", lambda config: 0.5)
    code, _, err = _run(capsys, "-c", pg_config, "breaches", "resend", "2")
    assert code == 75 and "request 1 is recorded" in err and "at its next cycle" in err
    with _open(database) as store:  # the holder's next cycle applies it
        assert apply_requests(store.box("support"), datetime.now(timezone.utc)) == [
            "request 1 (resend) of mailbox 'support': applied"]


def test_with_the_file_store_resend_and_retry_need_the_daemon_stopped_but_reviews_do_not(both, capsys):
    file_config, _, _ = both
    store_path = Path(file_config).parent / "var" / "mailesc.json"
    with Store(store_path):  # the daemon holds it
        for command in (("breaches", "resend", "1"), ("quarantine", "retry", "--all")):
            code, _, err = _run(capsys, "-c", file_config, *command)
            assert code == 75 and "need the daemon stopped" in err, err
        code, out, err = _run(capsys, "-c", file_config, "breaches", "review", "1", "--cause", "staffing")
        assert code == 0, err
        assert _run(capsys, "-c", file_config, "breaches", "list", "--json", "--mailbox", "support")[0] == 0
    code, out, err = _run(capsys, "-c", file_config, "quarantine", "retry", "--all")
    assert code == 0 and "1 message(s) will be read again" in out, err
    with Store(store_path, readonly=True) as store:
        assert store.box("billing").quarantine["billing-1"].retry


def test_the_daily_digest_lists_each_breach_with_its_mailbox_from_either_store(both):
    from mailesc.config import load_config
    from mailesc.daily import DailyDigest

    file_config, pg_config, database = both
    contexts = []
    for config, store in ((load_config(Path(file_config)), lambda c: Store(c.store_path, readonly=True)),
                          (load_config(Path(pg_config)), lambda c: _open(database))):
        with store(config) as opened:
            digest = DailyDigest(config.daily_digest, opened, None, None, "mailesc@example.test", timedelta(days=30))
            contexts.append(digest.context(NOW.date(), NOW))
    assert contexts[0] == contexts[1]
    assert [(b["id"], b["mailbox"]) for b in contexts[0]["unreviewed"]] == [(1, "support"), (3, "billing"),
                                                                          (2, "support")]  # by deadline


def _relations(database) -> int:
    return _sql(database, "SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace")[0][0]


def test_a_dry_run_on_an_empty_database_creates_nothing_and_says_what_it_would_do(tmp_path, pg_database, capsys,
                                                                                   monkeypatch):
    """`once --dry-run` on a database mailesc never started on: it works on the schema in a transaction that is
    rolled back (nothing is left: no table, no sequence), and says what a real cycle would record and send."""
    monkeypatch.setenv(PASSWORD_ENV, pg_database.password)
    config, support, _ = two_mailboxes(tmp_path, store=f'url = "{pg_database.url}"\npassword_env = "{PASSWORD_ENV}"\n'
                                                        f'security = "plain"')
    raw, _ = make_mail(sender="pat@acme.example", subject="Help", date=NOW - timedelta(hours=30))
    deliver(support, raw, NOW - timedelta(hours=30))
    assert _relations(pg_database) == 0
    code, out, err = _run(capsys, "-c", str(config), "once", "--dry-run", "--now", NOW.isoformat())
    assert code == 0, err
    assert "would record breach 1" in out and "dry run, nothing was written or sent: 1 new message(s)" in out
    assert _relations(pg_database) == 0  # not even the schema
    code, out, err = _run(capsys, "-c", str(config), "once", "--now", NOW.isoformat())  # a real one creates it
    assert code == 0, err
    assert _relations(pg_database) > 0
    assert _sql(pg_database, "SELECT count(*) FROM breaches")[0][0] == 1
