"""`mailesc store copy --to postgresql://...`: an embedded store made by real cycles (two Maildir mailboxes,
archive, quarantine, reviews) copied into the real PostgreSQL test cluster, compared record by record."""

from __future__ import annotations

import hashlib
import mailbox
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc.cli import main
from mailesc.history import load_history
from mailesc.signing import secret_path
from mailesc.stores.postgres import PostgresStore
from tests.support import OUTBOX, TEMPLATES, deliver, make_mail

PASSWORD_ENV = "MAILESC_TEST_COPY_PASSWORD"
RULES = """
[[rule]]
name = "standard"
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


class Installation:
    """A config with two Maildir mailboxes (support, billing) and its file store, filled by `mailesc once`."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "policies").mkdir(parents=True)
        (folder / "policies" / "rules.toml").write_text(RULES)
        self.config = folder / "mailesc.toml"
        self.config.write_text(f"""
[[mailbox]]
name = "support"
kind = "maildir"
path = "support"
since = "30d"

[[mailbox]]
name = "billing"
kind = "maildir"
path = "billing"
since = "30d"

{OUTBOX}
[team]
addresses = ["*@example.test"]
[store]
path = "var/mailesc.json"
archive_after = "2d"
[policies]
path = "policies"
[templates]
path = "{TEMPLATES}"
""")
        self.store = folder / "var" / "mailesc.json"
        self.support = mailbox.Maildir(folder / "support", create=True)
        self.billing = mailbox.Maildir(folder / "billing", create=True)

    def customer_mail(self, box: mailbox.Maildir, sender: str, subject: str, arrived: datetime) -> str:
        raw, message_id = make_mail(sender=sender, subject=subject, date=arrived)
        deliver(box, raw, arrived)
        return message_id

    def answer(self, box: mailbox.Maildir, to: str, message_id: str, arrived: datetime) -> None:
        raw, _ = make_mail(sender="agent@example.test", to=to, subject="Re: it", in_reply_to=message_id,
                           references=[message_id], date=arrived)
        deliver(box, raw, arrived)

    def mailesc(self, capsys, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(["-c", str(self.config), *args])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return status, out, err

    def files(self) -> dict[str, str]:
        """Every file of the store (live, archive, reviews, secret, heartbeat) by its digest."""
        return {str(p.relative_to(self.folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((self.folder / "var").rglob("*")) if p.is_file()}


@pytest.fixture
def installation(tmp_path, capsys) -> Installation:
    """Real cycles: an old thread answered late (breach, then archived), a fresh unanswered one in each
    mailbox (breach, escalation sent), a message that cannot be read (quarantined), two reviews."""
    made = Installation(tmp_path)
    now = datetime.now(timezone.utc)
    old = made.customer_mail(made.support, "pat@customer.example", "Old trouble", now - timedelta(days=10))
    made.answer(made.support, "pat@customer.example", old, now - timedelta(days=9))
    made.customer_mail(made.support, "kim@customer.example", "Cannot log in", now - timedelta(hours=2))
    made.customer_mail(made.billing, "lee@other.example", "Invoice wrong", now - timedelta(hours=3))
    made.billing.add(b"\x00\x01 not a message")
    status, out, _ = made.mailesc(capsys, "once")
    assert status == 0, out
    history = load_history(made.store)
    assert len(history.breaches) == 3
    archived = [b.id for b in history.breaches.values() if b.thread == old]
    assert list((made.store.parent / "mailesc-archive").glob("*.jsonl")), "the old thread was archived"
    assert made.mailesc(capsys, "breaches", "review", str(archived[0]), "--cause", "staffing", "--by", "ana")[0] == 0
    live = next(b.id for b in history.breaches.values() if b.mailbox == "billing")
    assert made.mailesc(capsys, "breaches", "review", str(live), "--cause", "tooling", "--note", "filter")[0] == 0
    return made


def copy(installation: Installation, capsys, database, *more: str) -> tuple[int, str, str]:
    return installation.mailesc(capsys, "store", "copy", "--to", database.url, "--password-env", PASSWORD_ENV, *more)


@pytest.fixture
def database(pg_database, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, pg_database.password)
    return pg_database


def open_database(database) -> PostgresStore:
    return PostgresStore(database.url, database.password, security="plain")


def rows(database, sql: str) -> list[tuple]:
    with open_database(database) as store:
        return store.connection().execute(sql).fetchall()


def assert_same_records(installation: Installation, database) -> None:
    """Every thread, breach and review of the file store (live and archived) is the database's, field by field."""
    from_file = load_history(installation.store)
    with open_database(database) as store:
        from_database = store.history()
    assert from_database.threads == from_file.threads
    assert from_database.breaches == from_file.breaches
    assert from_database.reviews.entries() == from_file.reviews.entries()


def execute(database, sql: str) -> None:
    with open_database(database) as store:
        store.connection().execute(sql)


def counts(database) -> dict[str, int]:
    tables = ("threads", "breaches", "escalations", "quarantine", "bookmarks", "health", "meta", "reviews")
    return {table: rows(database, f"SELECT count(*) FROM {table}")[0][0] for table in tables}


def test_a_store_made_by_real_cycles_is_copied_whole_and_checked(installation, database, capsys):
    before = installation.files()
    status, out, err = copy(installation, capsys, database)
    assert status == 0, err
    assert installation.files() == before  # the file store is only read
    assert database.password not in out + err
    assert "mailboxes     2 (billing, support)" in out
    assert "threads       2 live, 1 archived (3 new)" in out
    assert "breaches      2 live, 1 archived (3 new)" in out
    assert "quarantined   1" in out and "reviews       2 (2 new)" in out and "secret        copied" in out
    assert "checked: the database holds every record copied" in out

    assert_same_records(installation, database)
    assert rows(database, "SELECT mailbox, archived, count(*) FROM threads GROUP BY 1, 2 ORDER BY 1, 2") == [
        ("billing", False, 1), ("support", False, 1), ("support", True, 1)]
    assert rows(database, "SELECT count(*) FROM escalations WHERE delivery = 'sent'") == [(2,)]
    with open_database(database) as store:
        assert store.installation_secret() == bytes.fromhex(secret_path(installation.store).read_text().strip())
        assert [item.mailbox for box in store.mailboxes() for item in box.quarantine.values()] == ["billing"]
        assert set(store.box("support").sync) == set(_file_bookmarks(installation, "support"))
        assert store.next_breach_id() == 4  # ids kept; the sequence is past the highest copied


def _file_bookmarks(installation: Installation, mailbox_name: str) -> dict:
    from mailesc.store import Store

    with Store(installation.store, readonly=True) as store:
        return dict(store.box(mailbox_name).sync)


def test_a_second_copy_copies_nothing_twice(installation, database, capsys):
    assert copy(installation, capsys, database)[0] == 0
    first = counts(database)
    status, out, _ = copy(installation, capsys, database)
    assert status == 0
    assert "(0 new)" in out and "reviews       2 (0 new)" in out and "secret        already there" in out
    assert counts(database) == first
    assert_same_records(installation, database)


def test_a_later_copy_brings_what_the_file_store_gained(installation, database, capsys):
    assert copy(installation, capsys, database)[0] == 0
    now = datetime.now(timezone.utc)
    installation.customer_mail(installation.billing, "sam@third.example", "Refund", now - timedelta(hours=5))
    assert installation.mailesc(capsys, "once")[0] == 0
    assert installation.mailesc(capsys, "breaches", "review", "1", "--reopen")[0] == 0
    status, out, _ = copy(installation, capsys, database)
    assert status == 0
    assert "threads       3 live, 1 archived (1 new)" in out and "(1 new)" in out
    assert "reviews       3 (1 new)" in out
    assert_same_records(installation, database)
    with open_database(database) as store:
        assert store.next_breach_id() == 5


def test_a_database_with_another_installations_secret_and_records_is_refused_untouched(installation, database,
                                                                                          capsys, tmp_path):
    other = Installation(tmp_path / "other")
    now = datetime.now(timezone.utc)
    asked = other.customer_mail(other.support, "x@else.example", "Hi", now - timedelta(minutes=30))
    other.answer(other.support, "x@else.example", asked, now - timedelta(minutes=20))  # in time: no breach
    assert other.mailesc(capsys, "once")[0] == 0
    assert copy(other, capsys, database)[0] == 0
    before = counts(database)
    status, _, err = copy(installation, capsys, database)
    assert status == 65
    assert "already has another installation's secret" in err and "nothing was copied" in err
    assert counts(database) == before


def test_a_breach_id_the_database_gave_to_another_breach_is_refused_untouched(installation, database, capsys):
    """Workers started on the database while the file store's daemon still ran: both made a breach 4."""
    assert copy(installation, capsys, database)[0] == 0
    now = datetime.now(timezone.utc)
    with open_database(database) as store:
        box = store.box("support")
        thread = next(iter(box.threads.values()))
        box.new_breach(thread=thread.id + ".other", customer="c@x.example", subject="s", policy="standard",
                       received_at=now, due_at=now, clock=0)
        box.flush()
    installation.customer_mail(installation.billing, "sam@third.example", "Refund", now - timedelta(hours=5))
    assert installation.mailesc(capsys, "once")[0] == 0
    before = counts(database)
    status, _, err = copy(installation, capsys, database)
    assert status == 65 and "breach 4" in err and "nothing was copied" in err
    assert counts(database) == before


def test_a_secret_made_in_an_empty_database_is_replaced_by_the_stores(installation, database, capsys):
    with open_database(database) as store:
        made_there = store.installation_secret()  # a worker started on the empty database
    status, out, _ = copy(installation, capsys, database)
    assert status == 0 and "secret        replaced (the database held no records)" in out
    with open_database(database) as store:
        assert store.installation_secret() != made_there
        assert store.installation_secret() == bytes.fromhex(secret_path(installation.store).read_text().strip())


def test_a_database_used_by_workers_is_refused(installation, database, capsys):
    open_database(database).close()  # the schema
    rows(database, "INSERT INTO workers VALUES ('h:1:x', 'h', 1, now(), now(), now() + interval '30 seconds') "
                   "RETURNING id")
    status, _, err = copy(installation, capsys, database)
    assert status == 75 and "in use by 1 mailesc worker(s)" in err
    assert counts(database)["threads"] == 0


def test_a_count_that_does_not_match_rolls_everything_back(installation, database, capsys):
    """A trigger that silently drops one mailbox's threads: the read-back notices, names the table, writes nothing."""
    open_database(database).close()
    execute(database, "CREATE FUNCTION drop_billing() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN IF NEW.mailbox = 'billing' THEN RETURN NULL; END IF; RETURN NEW; END $$")
    execute(database, "CREATE TRIGGER drop_billing BEFORE INSERT ON threads FOR EACH ROW EXECUTE FUNCTION drop_billing()")
    status, _, err = copy(installation, capsys, database)
    assert status == 70 and "table threads" in err and "2 of the 3" in err and "rolled back" in err
    assert counts(database)["breaches"] == 0 and counts(database)["meta"] == 0


def test_wrong_password_unreachable_server_and_damaged_store(installation, database, capsys, monkeypatch, postgres):
    monkeypatch.setenv(PASSWORD_ENV, "not-the-" + database.password)
    status, out, err = copy(installation, capsys, database)
    assert status == 78 and "refused the login" in err and "--password-env" in err
    assert database.password not in out + err and "not-the-" not in out + err

    monkeypatch.setenv(PASSWORD_ENV, database.password)
    closed = re.sub(r":\d+/", f":{_closed_port()}/", database.url)
    status, _, err = installation.mailesc(capsys, "store", "copy", "--to", closed, "--password-env", PASSWORD_ENV)
    assert status == 75 and "cannot reach" in err

    data = installation.store.read_bytes()
    installation.store.write_bytes(data[: len(data) // 2])
    before = installation.files()
    status, _, err = copy(installation, capsys, database)
    assert status == 65 and "damaged" in err and "left untouched" in err
    assert installation.files() == before
    untouched = postgres.admin_sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                                   database=database.url.rpartition("/")[2])
    assert untouched == [(0,)]  # refused before the database was even set up


def test_bad_command_lines_are_usage_errors(installation, database, capsys, tmp_path):
    for to, phrase in ((database.url.replace("mailesc@", "mailesc:secret@"), "holds a password"),
                       ("mysql://x@h/db", "must start with postgresql://"),
                       ("postgresql://x@127.0.0.1:5432", "names no database"),
                       ("postgresql://x@db.example.com/m", "only allowed to a loopback host")):
        extra = ("--security", "plain") if "example.com" in to else ()
        status, out, err = installation.mailesc(capsys, "store", "copy", "--to", to, *extra)
        assert status == 64 and phrase in err, err
        assert "secret" not in out + err.replace("holds a password", "")
    status, _, err = installation.mailesc(capsys, "store", "copy", "--to", database.url, "--password-env",
                                          "MAILESC_NOT_SET_ANYWHERE")
    assert status == 64 and "MAILESC_NOT_SET_ANYWHERE is not set" in err
    empty = Installation(tmp_path / "empty")
    status, _, err = copy(empty, capsys, database)
    assert status == 64 and "there is no store" in err


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_password_from_a_file_of_mode_600_only(installation, database, capsys, tmp_path):
    password_file = tmp_path / "db-password"
    password_file.write_text(database.password + "\n")
    password_file.chmod(0o644)
    args = ("store", "copy", "--to", database.url, "--password-file", str(password_file))
    status, out, err = installation.mailesc(capsys, *args)
    assert status == 64 and "can be read by other users" in err
    password_file.chmod(0o600)
    status, out, err = installation.mailesc(capsys, *args)
    assert status == 0 and "checked: the database holds every record copied" in out
    assert database.password not in out + err


def test_a_levels_webhook_posts_are_copied_with_their_breaches_and_checked(tmp_path, database, capsys, monkeypatch):
    from mailesc.testing import WebhookServer

    made = Installation(tmp_path)
    (tmp_path / "policies" / "rules.toml").write_text(RULES + 'notify = ["webhook:ops"]\n')
    made.config.write_text(made.config.read_text() + '[webhook.ops]\nurl_env = "MAILESC_OPS_WEBHOOK"\n')
    made.customer_mail(made.support, "kim@customer.example", "Cannot log in",
                       datetime.now(timezone.utc) - timedelta(hours=2))
    with WebhookServer() as chat:
        monkeypatch.setenv("MAILESC_OPS_WEBHOOK", chat.url)
        assert made.mailesc(capsys, "once")[0] == 0
        assert len(chat.accepted) == 1
    status, out, err = copy(made, capsys, database)
    assert status == 0, err
    assert "checked: the database holds every record copied" in out
    assert_same_records(made, database)
    assert rows(database, "SELECT kind, level, delivery FROM outgoing WHERE kind <> 'escalation'") == [
        ("webhook", 1, "sent")]
    assert rows(database, "SELECT count(*) FROM escalations") == [(1,)]
