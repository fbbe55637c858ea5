"""What only the PostgreSQL store has: its schema (created once, under a lock, refused when newer or foreign),
its rows beside the documents, its connection (TLS settings, a server that goes away) and its error texts."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install 'mailesc[postgresql]'")

from mailesc.errors import EX_CONFIG, EX_TEMPFAIL, StoreError, StoreUnavailable  # noqa: E402
from mailesc.model import Delivery  # noqa: E402
from mailesc.config import Secret, StoreConfig  # noqa: E402
from mailesc.stores.postgres import SCHEMA_LOCK, SCHEMA_VERSION, PostgresStore  # noqa: E402
from mailesc.testing.postgres import PostgresCluster  # noqa: E402
from tests.unit.test_store_contract import T0, add_breach, escalate, make_thread  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def open_store(database, **options) -> PostgresStore:
    return PostgresStore(database.url, database.password, security="plain", **options)


def sql(database, statement, *params):
    with psycopg.connect(database.url, password=database.password, autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else None


# -- the schema --------------------------------------------------------------------------------------------------


def test_a_fresh_database_gets_the_current_schema_version_and_check_can_say_so(pg_database):
    with open_store(pg_database) as store:
        host_port_db = pg_database.url.partition("@")[2]
        assert store.describe() == {"database": host_port_db, "schema": SCHEMA_VERSION}
    assert sql(pg_database, "SELECT version FROM mailesc_schema ORDER BY version") == [
        (version,) for version in range(1, SCHEMA_VERSION + 1)]  # every step, in order
    tables = {row[0] for row in sql(pg_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"mailesc_schema", "threads", "breaches", "outgoing", "quarantine", "bookmarks", "health",
                      "meta", "reviews", "workers", "leases", "requests"}
    assert sql(pg_database, "SELECT viewname FROM pg_views WHERE schemaname = 'public'") == [("escalations",)]
    indexes = {row[0] for row in sql(pg_database, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert {"breaches_due_at", "breaches_policy_due_at", "breaches_customer", "breaches_status",
            "breaches_mailbox_due_at", "threads_live", "breaches_live", "reviews_breach", "threads_report",
            "breaches_report"} <= indexes


def test_opening_again_migrates_nothing(pg_database):
    open_store(pg_database).close()
    open_store(pg_database).close()
    assert sql(pg_database, "SELECT count(*) FROM mailesc_schema") == [(SCHEMA_VERSION,)]  # one row per step


STARTER = """
import sys
from mailesc.stores.postgres import PostgresStore
store = PostgresStore(sys.argv[1], sys.argv[2], security="plain")
print(store.describe()["schema"])
"""


def test_workers_starting_together_create_the_schema_once(pg_database, postgres):
    """The test holds the schema lock while three processes start: all three queue on it, then race."""
    database = pg_database.url.rpartition("/")[2]
    with psycopg.connect(postgres.admin_url.rpartition("/")[0] + "/" + database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        workers = [subprocess.Popen([sys.executable, "-c", STARTER, pg_database.url, pg_database.password],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                   for _ in range(3)]
        while holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                             ).fetchone()[0] < 3:
            assert all(worker.poll() is None for worker in workers), [w.communicate() for w in workers]
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    results = [worker.communicate(timeout=60) for worker in workers]
    assert [(worker.returncode, out.strip()) for worker, (out, _) in zip(workers, results)] == [
        (0, str(SCHEMA_VERSION))] * 3, results
    assert sql(pg_database, "SELECT count(*) FROM mailesc_schema") == [(SCHEMA_VERSION,)]


def test_a_newer_schema_is_refused_with_upgrade_mailesc_and_left_untouched(pg_database):
    open_store(pg_database).close()
    newer = SCHEMA_VERSION + 1
    sql(pg_database, "INSERT INTO mailesc_schema (version) VALUES (%s)", newer)
    sql(pg_database, "CREATE TABLE webhooks (id integer)")  # what a newer mailesc might have added
    with pytest.raises(StoreError, match=rf"schema version {newer}, newer than this mailesc knows "
                                         rf"\({SCHEMA_VERSION}\): upgrade mailesc"):
        open_store(pg_database)
    assert sql(pg_database, "SELECT version FROM mailesc_schema ORDER BY version") == [
        (version,) for version in range(1, newer + 1)]
    assert sql(pg_database, "SELECT to_regclass('webhooks') IS NOT NULL") == [(True,)]


def test_a_database_with_foreign_tables_is_refused_and_left_untouched(pg_database):
    sql(pg_database, "CREATE TABLE customers (id integer PRIMARY KEY, name text)")
    sql(pg_database, "INSERT INTO customers VALUES (1, 'Alice')")
    with pytest.raises(StoreError, match="holds tables, but not mailesc's .* left untouched"):
        open_store(pg_database)
    assert sql(pg_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == [("customers",)]
    assert sql(pg_database, "SELECT name FROM customers") == [("Alice",)]


def test_a_schema_that_lost_a_table_is_refused(pg_database):
    open_store(pg_database).close()
    sql(pg_database, "DROP TABLE leases")
    with pytest.raises(StoreError, match=f"is damaged: mailesc schema version {SCHEMA_VERSION} lacks the table leases"):
        open_store(pg_database)
    assert sql(pg_database, "SELECT to_regclass('leases')") == [(None,)]


# -- rows beside the documents --------------------------------------------------------------------------------


def test_each_escalation_level_is_one_row_settled_in_place(pg_database):
    with open_store(pg_database) as store:
        box = store.box("support")
        breach = add_breach(box, make_thread())
        escalate(box, breach, 1)
        box.flush()
        breach.escalations[0].delivery, breach.escalations[0].sent_at = Delivery.SENT, T0 + timedelta(hours=4)
        escalate(box, breach, 2)
        box.flush()
    rows = sql(pg_database, "SELECT mailbox, thread, clock, level, breach, message_id, recipients, delivery, "
                            "sent_at IS NOT NULL FROM escalations ORDER BY level")
    assert rows == [("support", "<root1@customer.example>", 0, 1, breach.id, f"<mailesc.{breach.id}.L1@example.test>",
                     ["manager@example.test"], "sent", True),
                    ("support", "<root1@customer.example>", 0, 2, breach.id, f"<mailesc.{breach.id}.L2@example.test>",
                     ["manager@example.test"], "pending", False)]
    assert sql(pg_database, "SELECT id, mailbox, thread, clock, customer, policy, status, due_at, archived "
                            "FROM breaches") == [(breach.id, "support", breach.thread, 0, "alice@customer.example",
                                                  "default", "open", breach.due_at, False)]


def test_archiving_flags_the_rows_and_a_box_no_longer_loads_them(pg_database):
    with open_store(pg_database) as store:
        box = store.box("default")
        old = make_thread(1)
        add_breach(box, old)
        add_breach(box, make_thread(2))
        box.flush()
        box.archive([box.threads[old.id]])
        box.flush()
    assert sql(pg_database, "SELECT id, archived FROM threads ORDER BY id") == [
        ("<root1@customer.example>", True), ("<root2@customer.example>", False)]
    assert sql(pg_database, "SELECT thread, archived FROM breaches ORDER BY id") == [
        ("<root1@customer.example>", True), ("<root2@customer.example>", False)]
    with open_store(pg_database) as store:
        assert set(store.box("default").threads) == {"<root2@customer.example>"}


def test_a_refused_flush_writes_nothing_and_names_no_value(pg_database):
    """Two breaches claiming one escalation Message-ID: the unique key refuses the second, the whole flush is
    rolled back, and the error names the constraint, not the Message-ID or the customer."""
    with open_store(pg_database) as store:
        box = store.box("default")
        first, second = add_breach(box, make_thread(1)), add_breach(box, make_thread(2))
        escalate(box, first, 1)
        escalate(box, second, 1)
        second.escalations[0].message_id = first.escalations[0].message_id
        box.sync["imap:INBOX"] = {"last_uid": 9}
        with pytest.raises(StoreError) as refused:
            box.flush()
    text = str(refused.value)
    assert "outgoing_pkey" in text and "UniqueViolation" in text  # schema v2: one Message-ID, one queued mail
    assert "example" not in text and "<" not in text
    assert sql(pg_database, "SELECT (SELECT count(*) FROM threads), (SELECT count(*) FROM breaches), "
                            "(SELECT count(*) FROM bookmarks)") == [(0, 0, 0)]


def test_the_fence_runs_first_and_a_failing_one_writes_nothing_and_keeps_the_changes(pg_database):
    class Lost(Exception):
        pass

    with open_store(pg_database) as store:
        box = store.box("default")
        add_breach(box, make_thread())
        box.sync["imap:INBOX"] = {"last_uid": 3}
        seen = []

        def fence(cursor):
            seen.append(cursor.execute("SELECT count(*) FROM threads").fetchone()[0])
            if len(seen) == 1:
                raise Lost()

        box.fence = fence
        with pytest.raises(Lost):
            box.flush()
        assert sql(pg_database, "SELECT count(*) FROM threads") == [(0,)]
        box.flush()  # the changes were kept: the next flush writes them
    assert seen == [0, 0]
    assert sql(pg_database, "SELECT (SELECT count(*) FROM threads), (SELECT state FROM bookmarks)") == [
        (1, {"last_uid": 3})]


def test_the_installation_has_one_secret_and_its_own_box(pg_database):
    with open_store(pg_database) as one, open_store(pg_database) as other:
        secret = one.installation_secret()
        assert len(secret) == 32 and other.installation_secret() == secret
        other.installation.health["daily_digest"] = {"sent_on": "2024-03-04"}
        other.installation.flush()
    with open_store(pg_database) as store:
        assert dict(store.installation.health) == {"daily_digest": {"sent_on": "2024-03-04"}}
        assert dict(store.box("default").health) == {}
        assert store.installation.threads == {}


def test_record_poll_is_written_at_once(pg_database):
    with open_store(pg_database) as store:
        store.box("billing").record_poll(T0)
        assert sql(pg_database, "SELECT mailbox, name, state FROM health") == [
            ("billing", "poll", {"last_poll_at": "2024-03-04T09:00:00+00:00"})]


def test_new_breach_ids_come_from_one_sequence_for_every_mailbox(pg_database):
    with open_store(pg_database) as one, open_store(pg_database) as other:
        ids = [add_breach(one.box("a"), make_thread(1)).id, add_breach(other.box("b"), make_thread(1)).id,
               add_breach(one.box("a"), make_thread(2)).id]
    assert ids == sorted(ids) and len(set(ids)) == 3


# -- the connection and its errors -------------------------------------------------------------------------------


def test_from_config_reads_the_password_from_its_secret(pg_database, monkeypatch, tmp_path):
    monkeypatch.setenv("MAILESC_TEST_DB_PASSWORD", pg_database.password)
    config = StoreConfig(path=tmp_path / "mailesc.json", url=pg_database.url, security="plain",
                         password=Secret(env="MAILESC_TEST_DB_PASSWORD", section="store"))
    with PostgresStore.from_config(config) as store:
        assert store.describe() == {"database": config.where, "schema": SCHEMA_VERSION}
        row = store.connection().execute("SELECT current_user, application_name FROM pg_stat_activity "
                                         "WHERE pid = pg_backend_pid()").fetchone()
    assert row == ("mailesc", "mailesc")


def test_a_wrong_password_is_refused_clearly_and_never_shown(pg_database):
    wrong = "Wr0ng-but-secret-" + pg_database.password[:6]
    with pytest.raises(StoreError, match="refused the login: password authentication failed") as refused:
        PostgresStore(pg_database.url, wrong, security="plain")
    assert wrong not in str(refused.value) and not isinstance(refused.value, StoreUnavailable)


def test_tls_to_a_server_without_tls_fails_clearly(pg_database):
    with pytest.raises(StoreError) as refused:
        PostgresStore(pg_database.url, pg_database.password, security="tls")
    assert str(refused.value).startswith("TLS to the PostgreSQL server of 127.0.0.1:")
    assert "SSL" in str(refused.value) and pg_database.password not in str(refused.value)
    assert refused.value.exit_code == EX_CONFIG  # a setting to fix, not an outage to wait out


def test_a_database_that_does_not_exist_is_named(postgres):
    missing = postgres.url.rpartition("/")[0] + "/nowhere"
    with pytest.raises(StoreError, match=r"database 127\.0\.0\.1:\d+/nowhere does not exist: create it first"):
        PostgresStore(missing, postgres.password, security="plain")


def test_a_server_that_is_down_is_a_retryable_error_and_the_store_reconnects_when_it_is_back():
    with PostgresCluster() as cluster:
        store = PostgresStore(cluster.url, cluster.password, security="plain", connect_timeout=3)
        box = store.box("default")
        add_breach(box, make_thread())
        cluster.stop()
        with pytest.raises(StoreUnavailable, match="cannot reach the PostgreSQL database") as down:
            box.flush()
        assert down.value.exit_code == EX_TEMPFAIL
        assert cluster.password not in str(down.value) and "alice" not in str(down.value)
        with pytest.raises(StoreUnavailable) as again:
            PostgresStore(cluster.url, cluster.password, security="plain", connect_timeout=3)
        assert cluster.password not in str(again.value)
        cluster.start()
        box.flush()  # the changes were kept; a new connection writes them
        store.close()
        with PostgresStore(cluster.url, cluster.password, security="plain") as reopened:
            assert set(reopened.box("default").threads) == {"<root1@customer.example>"}


def test_many_changes_at_once_are_written_and_replaced_alike(pg_database):
    """A first sync writes thousands of records at once (through COPY from COPY_FROM rows on): they must land
    and be replaced exactly as a handful are."""
    from mailesc.stores.postgres import COPY_FROM

    count = COPY_FROM + 50
    with open_store(pg_database) as store:
        box = store.box("default")
        breaches = [add_breach(box, make_thread(n)) for n in range(count)]
        for breach in breaches:
            escalate(box, breach, 1)
        box.flush()
        for breach in breaches:
            breach.escalations[0].delivery = Delivery.SENT
            box.put_breach(breach)
        box.archive([box.threads[make_thread(n).id] for n in range(0, count, 2)])
        box.flush()
    assert sql(pg_database, "SELECT archived, count(*) FROM threads GROUP BY archived ORDER BY archived") == [
        (False, count // 2), (True, count // 2)]
    assert sql(pg_database, "SELECT delivery, count(*) FROM escalations GROUP BY delivery") == [("sent", count)]
    with open_store(pg_database) as store:
        box = store.box("default")
        assert len(box.threads) == len(box.breaches) == count // 2
        assert all(b.escalations[0].delivery == Delivery.SENT for b in box.breaches.values())


def test_a_connection_cut_in_the_middle_of_a_flush_writes_nothing_and_the_next_flush_writes_all(pg_database,
                                                                                                  postgres):
    with open_store(pg_database) as store:
        box = store.box("default")
        add_breach(box, make_thread())
        cut = []

        def fence(cursor):
            if not cut:
                cut.append(cursor.connection.info.backend_pid)
                postgres.admin_sql(f"SELECT pg_terminate_backend({cut[0]})")

        box.fence = fence
        with pytest.raises(StoreUnavailable, match="cannot reach the PostgreSQL database"):
            box.flush()
        assert sql(pg_database, "SELECT count(*) FROM threads") == [(0,)]
        box.flush()
    assert sql(pg_database, "SELECT (SELECT count(*) FROM threads), (SELECT count(*) FROM breaches)") == [(1, 1)]


def test_a_record_mailesc_cannot_read_is_refused_without_its_values(pg_database):
    with open_store(pg_database) as store:
        box = store.box("default")
        add_breach(box, make_thread())
        box.flush()
    sql(pg_database, "UPDATE threads SET doc = doc - 'messages'")
    with open_store(pg_database) as store:
        with pytest.raises(StoreError, match="damaged in table threads: a record lacks the field 'messages'") as bad:
            store.box("default")
    assert "customer" not in str(bad.value) and "<" not in str(bad.value)
