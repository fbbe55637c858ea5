"""Several mailboxes in one config ([[mailbox]]), worked by one `mailesc once` on the embedded store."""

from __future__ import annotations

import json
import mailbox
from datetime import datetime, timedelta, timezone

from mailesc.cli import main
from mailesc.store import Store
from tests.support import OUTBOX, TEMPLATES, deliver, make_mail, outbox_mails

RULES = """
[[rule]]
name = "billing"
first_response = "1h"
[rule.match]
mailbox = "billing"
[[rule.escalate]]
after = "0m"
to = ["billing-lead@example.test"]

[[rule]]
name = "standard"
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def two_mailboxes(folder, extra: str = "", store: str = 'path = "var/mailesc.json"'):
    (folder / "policies").mkdir()
    (folder / "policies" / "rules.toml").write_text(RULES)
    config = folder / "mailesc.toml"
    config.write_text(f"""
[[mailbox]]
name = "support"
kind = "maildir"
path = "support"

[[mailbox]]
name = "billing"
kind = "maildir"
path = "billing"
team = ["ledger@billing.example"]

{OUTBOX}
[team]
addresses = ["*@example.test"]
[store]
{store}
[policies]
path = "policies"
[templates]
path = "{TEMPLATES}"
{extra}
""")
    return config, mailbox.Maildir(folder / "support", create=True), mailbox.Maildir(folder / "billing", create=True)


def test_one_run_works_every_mailbox_and_keeps_their_threads_apart(tmp_path, capsys):
    config, support, billing = two_mailboxes(tmp_path)
    now = datetime.now(timezone.utc)
    # One customer mail sent to both addresses: the same Message-ID in two mailboxes makes two threads.
    raw, shared_id = make_mail(sender="pat@customer.example", subject="Invoice and login", date=now - timedelta(hours=2))
    deliver(support, raw, now - timedelta(hours=2))
    deliver(billing, raw, now - timedelta(hours=2))
    # Answered in billing by that mailbox's own team, unanswered in support.
    raw, answered_id = make_mail(sender="kim@customer.example", subject="Refund", date=now - timedelta(hours=3))
    deliver(billing, raw, now - timedelta(hours=3))
    reply, _ = make_mail(sender="ledger@billing.example", to="kim@customer.example", subject="Re: Refund",
                         in_reply_to=answered_id, references=[answered_id], date=now - timedelta(hours=2.9))
    deliver(billing, reply, now - timedelta(hours=2.9))

    assert main(["-c", str(config), "once"]) == 0
    assert "4 new message(s)" in capsys.readouterr().out

    mails = outbox_mails(tmp_path / "outbox")
    assert sorted(mail["To"] for mail in mails) == ["billing-lead@example.test", "manager@example.test"]
    assert len({mail["Message-ID"] for mail in mails}) == 2  # two mails, never one id for both threads
    assert all(shared_id in mail["References"] for mail in mails)

    with Store(tmp_path / "var" / "mailesc.json", readonly=True) as store:
        assert {box.name: sorted(t.id for t in box.threads.values()) for box in store.mailboxes()} == {
            "support": [shared_id], "billing": sorted([shared_id, answered_id])}
        breaches = {box.name: [(b.id, b.policy) for b in box.breaches.values()] for box in store.mailboxes()}
    assert sorted(breaches) == ["billing", "support"]
    assert breaches["billing"][0][1] == "billing" and breaches["support"][0][1] == "standard"
    assert sorted(i for pairs in breaches.values() for i, _ in pairs) == [1, 2]  # ids unique in the installation

    assert main(["-c", str(config), "once"]) == 0  # nothing twice
    assert len(outbox_mails(tmp_path / "outbox")) == 2
    capsys.readouterr()

    assert main(["-c", str(config), "status", "--json"]) in (0, 1)
    status = json.loads(capsys.readouterr().out)
    assert [(box["name"], box["threads"], box["open_breaches"]) for box in status["mailboxes"]] == [
        ("support", 1, 1), ("billing", 2, 1)]


def test_a_mailbox_that_cannot_be_read_does_not_hold_back_the_others(tmp_path, capsys):
    config, support, billing = two_mailboxes(tmp_path)
    now = datetime.now(timezone.utc)
    raw, _ = make_mail(sender="pat@customer.example", subject="Help", date=now - timedelta(hours=2))
    deliver(support, raw, now - timedelta(hours=2))
    (tmp_path / "billing" / "cur").rename(tmp_path / "billing" / "gone")  # no longer a Maildir

    assert main(["-c", str(config), "once"]) == 69  # a mailbox could not be read: not all is well
    err = capsys.readouterr().err
    assert "mailbox billing:" in err and "mailbox support" not in err
    [mail] = outbox_mails(tmp_path / "outbox")
    assert mail["To"] == "manager@example.test"


def test_explain_tells_the_rule_a_message_gets_in_each_mailbox(tmp_path, capsys):
    config, _, _ = two_mailboxes(tmp_path)
    raw, _ = make_mail(sender="pat@customer.example", subject="Invoice", date=datetime(2026, 1, 5, 9, tzinfo=timezone.utc))
    eml = tmp_path / "m.eml"
    eml.write_bytes(raw)
    rules = {}
    for name in ("support", "billing"):
        assert main(["-c", str(config), "policies", "explain", str(eml), "--json", "--mailbox", name]) == 0
        rules[name] = json.loads(capsys.readouterr().out)["rule"]
    assert rules == {"support": "standard", "billing": "billing"}
    assert main(["-c", str(config), "policies", "explain", str(eml), "--mailbox", "sales"]) == 64
    assert "support, billing" in capsys.readouterr().err


def test_a_rule_matching_a_mailbox_nobody_configured_is_a_config_problem(tmp_path, capsys):
    config, _, _ = two_mailboxes(tmp_path)
    (tmp_path / "policies" / "rules.toml").write_text(RULES.replace('mailbox = "billing"', 'mailbox = "biling"'))
    assert main(["-c", str(config), "check", "--offline"]) == 78
    err = capsys.readouterr().err
    assert "rules.toml" in err and "match.mailbox" in err and "'biling'" in err


def test_once_on_postgresql_works_every_mailbox_and_sends_nothing_twice(tmp_path, pg_database, monkeypatch, capsys):
    from mailesc.stores.postgres import PostgresStore

    monkeypatch.setenv("MAILESC_DB_PASSWORD", pg_database.password)
    config, support, billing = two_mailboxes(tmp_path, store=f'url = "{pg_database.url}"\n'
                                                            f'password_env = "MAILESC_DB_PASSWORD"\nsecurity = "plain"')
    now = datetime.now(timezone.utc)
    raw, shared_id = make_mail(sender="pat@customer.example", subject="Invoice", date=now - timedelta(hours=2))
    deliver(support, raw, now - timedelta(hours=2))
    deliver(billing, raw, now - timedelta(hours=2))

    assert main(["-c", str(config), "once", "--dry-run"]) == 0
    assert "would send" in capsys.readouterr().out and outbox_mails(tmp_path / "outbox") == []
    with PostgresStore(pg_database.url, pg_database.password, security="plain") as store:
        assert store.mailboxes() == []  # the dry run wrote nothing

    assert main(["-c", str(config), "once"]) == 0
    assert "2 new message(s)" in capsys.readouterr().out
    assert main(["-c", str(config), "once"]) == 0  # the leases were given back: the second run reads both again
    mails = outbox_mails(tmp_path / "outbox")
    assert sorted(mail["To"] for mail in mails) == ["billing-lead@example.test", "manager@example.test"]
    assert len({mail["Message-ID"] for mail in mails}) == 2
    with PostgresStore(pg_database.url, pg_database.password, security="plain") as store:
        boxes = {box.name: box for box in store.mailboxes()}
        assert sorted(boxes) == ["billing", "support"]
        assert [t.id for t in boxes["support"].threads.values()] == [shared_id]
        assert sorted(b.id for box in boxes.values() for b in box.breaches.values()) == [1, 2]
        leases = store.connection().execute("SELECT mailbox, owner FROM leases ORDER BY mailbox").fetchall()
    assert leases == [("billing", None), ("support", None)]  # once gave its leases back
