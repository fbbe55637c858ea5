"""The PostgreSQL store: the embedded store's records in a database that several workers share.

Why this shape:
- Every record is kept as the very JSON document the file store writes (``doc`` columns, made by store.py's
  ``_thread_doc``/``_breach_doc``), so one serialiser serves both backends and copying a file store up is a plain
  copy. The columns beside ``doc`` exist for SQL: lists, filters and reports by mailbox, deadline, policy,
  customer and status, with indexes; ``outgoing`` holds one row per queued mail of every kind, with a unique
  index on the level of a clock for escalations (the exactly-once key).
- ``box(name)`` loads one mailbox's live (not archived) records once, as the engine keeps them in memory today;
  changes stay dirty in memory and ``flush()`` writes them in ONE transaction, whose first step is the lease check
  (``fence``), so a worker that lost its mailbox writes nothing.
- The schema is created and migrated by mailesc itself, under a transaction-level advisory lock: two workers
  starting together never both create it. A database with a newer schema than this mailesc knows, or one that
  holds tables but is not mailesc's, is refused and left untouched.
- Errors never carry the password (it is scrubbed from every text) nor customer data (a refused statement is
  named by its error class and constraint, never by the values psycopg quotes); a server that is down raises
  ``StoreUnavailable``, which the caller may retry.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import quote

from mailesc.clock import isoformat
from mailesc.config import StoreConfig
from mailesc.errors import StoreError, StoreLoginRefused, StoreUnavailable
from mailesc.history import History, thread_key
from mailesc.model import Breach, Quarantined, QueuedMail, Thread
from mailesc.queue import BoxQueue, MailIndex
from mailesc.reporting.queries import checked_breach, stored_breaches
from mailesc.reviews import ReviewEntry, Reviews
from mailesc.store import (FACTS_KEY, INSTALLATION, _time, first_start, NamedRecords, _breach_doc, _breach_from, _quarantined_doc, _quarantined_from,
                           _thread_doc, _thread_from, record_problem)
from mailesc.store import _outgoing_doc, _outgoing_from, archive_looked, last_archived, take_over_daily_digest

try:
    import psycopg
    from psycopg.types.json import Jsonb
    HAVE_PSYCOPG = True
except ImportError:  # the embedded store needs none of this
    HAVE_PSYCOPG = False

if TYPE_CHECKING:
    from mailesc.stores.leases import Membership

SCHEMA_VERSION = 3
SCHEMA_LOCK = int.from_bytes(b"mailesc", "big")  # pg_advisory_xact_lock key while creating or migrating
NOT_INSTALLED = "PostgreSQL support is not installed: pip install 'mailesc[postgresql]'"

SCHEMA_V1 = (
    "CREATE TABLE mailesc_schema (version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())",
    """CREATE TABLE threads (mailbox text NOT NULL, id text NOT NULL, doc jsonb NOT NULL,
        archived boolean NOT NULL DEFAULT false, last_activity timestamptz, PRIMARY KEY (mailbox, id))""",
    "CREATE SEQUENCE breach_ids",
    """CREATE TABLE breaches (id bigint PRIMARY KEY, mailbox text NOT NULL, thread text NOT NULL,
        clock integer NOT NULL, customer text NOT NULL, policy text, status text NOT NULL,
        received_at timestamptz NOT NULL, due_at timestamptz NOT NULL, responded_at timestamptz, doc jsonb NOT NULL,
        archived boolean NOT NULL DEFAULT false, UNIQUE (mailbox, thread, clock))""",
    """CREATE TABLE escalations (mailbox text NOT NULL, thread text NOT NULL, clock integer NOT NULL,
        level integer NOT NULL, breach bigint NOT NULL REFERENCES breaches(id), message_id text NOT NULL UNIQUE,
        recipients text[] NOT NULL, delivery text NOT NULL, at timestamptz NOT NULL, sent_at timestamptz,
        attempts integer NOT NULL DEFAULT 0, error text, PRIMARY KEY (mailbox, thread, clock, level))""",
    """CREATE TABLE quarantine (mailbox text NOT NULL, key text NOT NULL, doc jsonb NOT NULL,
        PRIMARY KEY (mailbox, key))""",
    """CREATE TABLE bookmarks (mailbox text NOT NULL, name text NOT NULL, state jsonb NOT NULL,
        PRIMARY KEY (mailbox, name))""",
    """CREATE TABLE health (mailbox text NOT NULL, name text NOT NULL, state jsonb NOT NULL,
        PRIMARY KEY (mailbox, name))""",
    """CREATE TABLE meta (mailbox text NOT NULL, name text NOT NULL, state jsonb NOT NULL,
        PRIMARY KEY (mailbox, name))""",
    """CREATE TABLE reviews (id bigserial PRIMARY KEY, breach bigint NOT NULL, at timestamptz NOT NULL,
        by text NOT NULL, action text NOT NULL, cause text, note text)""",
    """CREATE TABLE workers (id text PRIMARY KEY, host text NOT NULL, pid integer NOT NULL,
        started_at timestamptz NOT NULL, renewed_at timestamptz NOT NULL, expires_at timestamptz NOT NULL)""",
    """CREATE TABLE leases (mailbox text PRIMARY KEY, owner text, acquired_at timestamptz, renewed_at timestamptz,
        expires_at timestamptz)""",
    """CREATE TABLE requests (id bigserial PRIMARY KEY, mailbox text NOT NULL, kind text NOT NULL,
        payload jsonb NOT NULL, requested_at timestamptz NOT NULL DEFAULT now(), requested_by text NOT NULL,
        done_at timestamptz, result text)""",
    # for lists and reports
    "CREATE INDEX breaches_due_at ON breaches (due_at)",
    "CREATE INDEX breaches_policy_due_at ON breaches (policy, due_at)",
    "CREATE INDEX breaches_customer ON breaches (customer)",
    "CREATE INDEX breaches_status ON breaches (status)",
    "CREATE INDEX breaches_mailbox_due_at ON breaches (mailbox, due_at)",
    "CREATE INDEX threads_live ON threads (mailbox) WHERE NOT archived",
    "CREATE INDEX breaches_live ON breaches (mailbox) WHERE NOT archived",
    "CREATE INDEX reviews_breach ON reviews (breach)",
)
# v2: the outgoing-mail queue. `outgoing` holds one row per mail mailesc sends, of every kind (escalation,
# warning, ack, digest, daily), by Message-ID; escalations keep their exactly-once key (one row per level of a
# thread's clock) as a unique index. Mails about a thread are also kept in their owner's document (a breach's
# `escalations`, a thread's `notices`), as in the file; the others (digests) have theirs in `doc`. The v1
# table `escalations` is moved into it and stays readable as a view of its escalation rows.
SCHEMA_V2 = (
    """CREATE TABLE outgoing (message_id text PRIMARY KEY, mailbox text NOT NULL, kind text NOT NULL, thread text,
        clock integer, level integer, breach bigint REFERENCES breaches(id), recipients text[] NOT NULL,
        delivery text NOT NULL, at timestamptz NOT NULL, sent_at timestamptz, retry_at timestamptz,
        attempts integer NOT NULL DEFAULT 0, error text, doc jsonb)""",
    """CREATE UNIQUE INDEX outgoing_escalation_once ON outgoing (mailbox, thread, clock, level)
        WHERE kind = 'escalation'""",
    "CREATE INDEX outgoing_unsent ON outgoing (mailbox) WHERE delivery = 'pending'",
    "CREATE INDEX outgoing_breach ON outgoing (breach)",
    """INSERT INTO outgoing (message_id, mailbox, kind, thread, clock, level, breach, recipients, delivery, at,
        sent_at, attempts, error)
        SELECT message_id, mailbox, 'escalation', thread, clock, level, breach, recipients, delivery, at, sent_at,
        attempts, error FROM escalations""",
    "DROP TABLE escalations",
    """CREATE VIEW escalations AS SELECT mailbox, thread, clock, level, breach, message_id, recipients, delivery, at,
        sent_at, attempts, error FROM outgoing WHERE kind = 'escalation'""",
)
# v3: reports counted in SQL (reporting in stores/postgres_report.py): each thread's report summary as columns (the
# first customer message, its sender, the first team response, its business hours as the engine kept them, the
# breach of the first response) and the breaches' acknowledgement, filled from the docs. A thread written before
# summaries were kept gets them from its messages; its business hours stay NULL and the report counts them.
SCHEMA_REPORTING = (
    """ALTER TABLE threads ADD COLUMN received_at timestamptz, ADD COLUMN customer text, ADD COLUMN policy text,
        ADD COLUMN first_breach bigint, ADD COLUMN responded_at timestamptz, ADD COLUMN response_hours float8""",
    "ALTER TABLE breaches ADD COLUMN acknowledged_at timestamptz",
    """UPDATE threads SET received_at = (doc->'report'->>'received')::timestamptz,
        customer = doc->'report'->>'customer', policy = doc->'report'->>'policy',
        first_breach = (doc->'report'->>'breach')::bigint, responded_at = (doc->'report'->>'responded')::timestamptz,
        response_hours = (doc->'report'->>'hours')::float8
        WHERE jsonb_typeof(doc->'report') = 'object'""",
    """UPDATE threads t SET (received_at, customer) = (
        SELECT (m->>'arrived')::timestamptz, m->>'sender' FROM jsonb_array_elements(t.doc->'messages')
        WITH ORDINALITY e(m, n) WHERE m->>'kind' = 'customer' ORDER BY 1, n LIMIT 1)
        WHERE NOT (t.doc ? 'report')""",
    """UPDATE threads t SET policy = t.doc->>'policy', first_breach = (t.doc->'breach_ids'->>'0')::bigint,
        responded_at = (SELECT min((m->>'arrived')::timestamptz) FROM jsonb_array_elements(t.doc->'messages') m
                        WHERE m->>'kind' = 'team' AND (m->>'arrived')::timestamptz > t.received_at)
        WHERE NOT (t.doc ? 'report') AND t.received_at IS NOT NULL""",
    "UPDATE breaches SET acknowledged_at = (doc->>'acknowledged_at')::timestamptz WHERE doc->>'acknowledged_at' IS NOT NULL",
    # covering: a report reads these indexes only, never the rows with their docs
    """CREATE INDEX threads_report ON threads (received_at) INCLUDE (mailbox, id, policy, customer, first_breach,
        responded_at, response_hours) WHERE received_at IS NOT NULL""",
    """CREATE INDEX breaches_report ON breaches (received_at) INCLUDE (id, mailbox, policy, customer, due_at,
        acknowledged_at)""",
)
MIGRATIONS = {1: SCHEMA_V1, 2: SCHEMA_V2, 3: SCHEMA_REPORTING}  # version -> the statements that bring the version before it there
TABLES = ("mailesc_schema", "threads", "breaches", "outgoing", "quarantine", "bookmarks", "health", "meta",
          "reviews", "workers", "leases", "requests")

# the box's dirty sets by record kind; sync/health/meta are the NamedRecords tables of the file store
_KINDS = ("threads", "breaches", "quarantine", "sync", "health", "meta", "outgoing")
_NAMED_TABLES = {"sync": "bookmarks", "health": "health", "meta": "meta"}


class PostgresStore:
    """The installation's records in one PostgreSQL database: ``box(name)`` for a mailbox's live records,
    ``installation`` for installation-wide ones, ``history()``/``find_breach()``/``record_review()`` for admin
    commands, ``describe()`` for ``mailesc check``."""

    def __init__(self, url: str | None = None, password: str | None = None, *, security: str = "tls",
                 ca_file=None, config: StoreConfig | None = None, connect_timeout: float = 10, dry_run: bool = False):
        """From ``config`` (``Config.store``, whose Secret gives the password), or, for tests, benchmarks and
        tools without a config file, from a ``url`` (without a password), the ``password`` and the TLS choice:
        ``tls`` verifies the server's certificate and name against ``ca_file`` or the system's CAs, ``plain``
        uses no TLS."""
        if not HAVE_PSYCOPG:
            raise StoreError(NOT_INSTALLED)
        if config is None:
            config = StoreConfig(path=Path("."), url=url, security=security, ca_file=ca_file)
        self._args = config.connect_args()
        if password is not None:
            self._args["password"] = password
        self.where = config.where
        self._secrets = _secret_forms(self._args.get("password"))
        self._connect_timeout = connect_timeout
        self._connection: psycopg.Connection | None = None
        self._boxes: dict[str, PostgresBox] = {}
        self.membership: Membership | None = None  # a leases.Membership fences every mailbox's flush (it sets itself here)
        self.daily_mailbox: str | None = None  # whose lease the installation's records are written under
        self.dry_run = dry_run  # --dry-run: read, change in memory only, never write (flush and polls do nothing)
        self._dry_breach_id: int | None = None
        self._view: AbstractContextManager[psycopg.Transaction] | None = None  # a dry run's transaction, rolled back at close (see _dry_run_schema)
        with self._errors("creating or checking the schema"):
            connection = self.connection()
            self.schema_version = (self._dry_run_schema(connection) if dry_run else self._ensure_schema(connection))

    shared = True  # several workers may share it: mailboxes are worked under leases (stores/leases.py)

    @classmethod
    def from_config(cls, store_config: StoreConfig, dry_run: bool = False) -> "PostgresStore":
        return cls(config=store_config, dry_run=dry_run)

    # -- the connection ---------------------------------------------------------------------------------------

    def connection(self):
        """The open connection (autocommit: every write is an explicit transaction), made again when the last
        one broke (the server restarted, the network went away)."""
        if self._connection is None or self._connection.closed or self._connection.broken:
            if self._connection is not None:
                self._connection.close()
            with self._errors("connecting"):
                self._connection = psycopg.connect(
                    **{"application_name": "mailesc", **self._args}, autocommit=True,
                    connect_timeout=max(1, int(self._connect_timeout)),
                    # a worker whose network to the database is cut notices within ~25 s, not hours
                    keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        return self._connection

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """psycopg's errors as StoreError/StoreUnavailable, without the password or any record's values."""
        try:
            yield
        except psycopg.Error as error:
            raise self._problem(error, doing) from None

    def _problem(self, error: Exception, doing: str) -> StoreError:
        state = getattr(error, "sqlstate", None) or ""
        reason = _reason(self._scrub(str(error)))
        if state.startswith("28") or "authentication failed" in reason or "no password supplied" in reason:
            return StoreLoginRefused(f"the PostgreSQL server of {self.where} refused the login: {reason} (check the "
                              f"user in [store] url and the password from password_env or password_file)")
        if state == "3D000" or ("database" in reason and "does not exist" in reason):
            return StoreError(f"the PostgreSQL database {self.where} does not exist: create it first "
                              f"(createdb -O <user> <database>)")
        if not state and ("SSL" in reason or "certificate" in reason):  # waiting will not change it
            return StoreLoginRefused(f"TLS to the PostgreSQL server of {self.where} failed: {reason} (a private CA? name it "
                              f"with [store] ca_file)")
        # 25P03: the server ended a transaction left idle too long (a worker frozen mid-flush; see leases.py)
        if (isinstance(error, psycopg.OperationalError) and (not state or state.startswith(("08", "57P")))
                or state == "25P03"):
            return StoreUnavailable(f"cannot reach the PostgreSQL database {self.where} ({doing}): {reason}; "
                                    f"nothing was lost, try again when it is back")
        diagnosis = getattr(error, "diag", None)
        constraint = getattr(diagnosis, "constraint_name", None)
        table = getattr(diagnosis, "table_name", None)
        detail = ", ".join(part for part in (f"table {table}" if table else "",
                                             f"constraint {constraint}" if constraint else "") if part)
        return StoreError(f"the PostgreSQL database {self.where} refused {doing}: {type(error).__name__}"
                          f"{f' (SQLSTATE {state})' if state else ''}{f' on {detail}' if detail else ''}")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- the schema -------------------------------------------------------------------------------------------

    def _ensure_schema(self, connection) -> int:
        """Create or migrate the schema to SCHEMA_VERSION, in one transaction under an advisory lock; refuse (and
        leave untouched) a database that is not mailesc's, or whose schema is newer or damaged."""
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            version = self._schema_version(connection)
            if version is None:
                foreign = connection.execute(
                    "SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                    "AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f')").fetchone()[0]
                if foreign:
                    raise StoreError(f"the PostgreSQL database {self.where} holds tables, but not mailesc's (it has "
                                     f"no mailesc_schema table); it was left untouched. Give mailesc a database of "
                                     f"its own")
                version = 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"the PostgreSQL database {self.where} has mailesc schema version {version}, newer "
                                 f"than this mailesc knows ({SCHEMA_VERSION}): upgrade mailesc; the database was "
                                 f"left untouched")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    connection.execute(statement)
                connection.execute("INSERT INTO mailesc_schema (version) VALUES (%s)", (step,))
            present = {row[0] for row in connection.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                "AND relkind IN ('r', 'p')")}
            missing = [table for table in TABLES if table not in present]
            if missing:
                raise StoreError(f"the PostgreSQL database {self.where} is damaged: mailesc schema version "
                                 f"{SCHEMA_VERSION} lacks the table {missing[0]}; it was left untouched. Restore it "
                                 f"from a backup")
        return SCHEMA_VERSION

    def _dry_run_schema(self, connection) -> int:
        """A dry run writes nothing, not even the schema: on a database without mailesc's schema (or with an
        older one) the schema is made in a transaction that stays open for the whole dry run, which reads and
        works in it, and is rolled back at close. (Nobody else sees it; a worker starting meanwhile waits for
        the schema lock until then.)"""
        version = self._schema_version(connection)
        if version is not None and version >= SCHEMA_VERSION:
            return self._ensure_schema(connection)  # refuses a newer schema; creates nothing
        self._view = connection.transaction()
        self._view.__enter__()
        return self._ensure_schema(connection)

    def _schema_version(self, connection) -> int | None:
        if connection.execute("SELECT to_regclass('mailesc_schema')").fetchone()[0] is None:
            return None
        version = connection.execute("SELECT max(version) FROM mailesc_schema").fetchone()[0]
        if version is None:
            raise StoreError(f"the PostgreSQL database {self.where} is damaged: its mailesc_schema table holds no "
                             f"version; it was left untouched. Restore it from a backup")
        return version

    def describe(self) -> dict:
        """What ``mailesc check`` reports: where the database is and its schema version."""
        return {"database": self.where, "schema": self.schema_version}

    # -- boxes ------------------------------------------------------------------------------------------------

    def box(self, name: str) -> "PostgresBox":
        """One mailbox's live records, loaded at the first call and kept (the same box at every call)."""
        if name not in self._boxes:
            self._boxes[name] = PostgresBox(self, name)
        return self._boxes[name]

    def mailboxes(self) -> list["PostgresBox"]:
        """Every mailbox with live records in the database (each loaded), the installation's box left out."""
        with self._errors("listing the mailboxes"):
            names = [row[0] for row in self.connection().execute(
                "SELECT mailbox FROM threads WHERE NOT archived UNION SELECT mailbox FROM breaches WHERE NOT archived "
                "UNION SELECT mailbox FROM quarantine UNION SELECT mailbox FROM bookmarks "
                "UNION SELECT mailbox FROM health UNION SELECT mailbox FROM meta ORDER BY 1")]
        return [self.box(name) for name in sorted(set(names) | set(self._boxes)) if name != INSTALLATION]

    def drop_box(self, name: str) -> None:
        """Forget a mailbox's loaded records (its lease was lost or given back): the next ``box(name)`` loads
        them again from the database, as the worker that had it last left them."""
        self._boxes.pop(name, None)

    @property
    def installation(self) -> "PostgresBox":
        """The box of installation-wide records (mailbox ''): it has no threads."""
        return self.box(INSTALLATION)

    def next_breach_id(self) -> int:
        """From the ``breach_ids`` sequence: never handed out twice, whatever is rolled back or archived. A dry run
        counts on from the highest id on record instead (taking from the sequence is a write)."""
        if self.dry_run:
            if self._dry_breach_id is None:
                with self._errors("reading the breach ids"):
                    self._dry_breach_id = self.connection().execute(
                        "SELECT COALESCE(max(id), 0) FROM breaches").fetchone()[0]
            self._dry_breach_id += 1
            return self._dry_breach_id
        with self._errors("a new breach id"):
            return self.connection().execute("SELECT nextval('breach_ids')").fetchone()[0]

    def installation_secret(self, size: int = 32) -> bytes:
        """The installation's signing secret (meta '', 'secret'): made by the first worker that asks, the same
        for every worker after (so that each recognises the others' marks). Never logged. A dry run before any
        worker made one gets a throwaway secret (it writes nothing)."""
        if self.dry_run:
            with self._errors("reading the installation secret"):
                row = self.connection().execute("SELECT state FROM meta WHERE mailbox = %s AND name = 'secret'",
                                                (INSTALLATION,)).fetchone()
            if row is None:
                return secrets.token_bytes(size)
            return self._secret_from(row[0])
        with self._errors("reading the installation secret"):
            connection = self.connection()
            with connection.transaction():
                connection.execute("INSERT INTO meta (mailbox, name, state) VALUES (%s, 'secret', %s) "
                                   "ON CONFLICT (mailbox, name) DO NOTHING",
                                   (INSTALLATION, Jsonb({"hex": secrets.token_bytes(size).hex()})))
                state = connection.execute("SELECT state FROM meta WHERE mailbox = %s AND name = 'secret'",
                                           (INSTALLATION,)).fetchone()[0]
        return self._secret_from(state)

    def _secret_from(self, state) -> bytes:
        try:
            return bytes.fromhex(state["hex"])
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"the PostgreSQL database {self.where} is damaged: the installation secret (table meta) "
                             f"is not readable; it was left untouched") from None

    # -- the read side of admin commands ----------------------------------------------------------------------

    def history(self, threads: bool = True) -> History:
        """Everything on record, live and archived, with the reviews: what ``load_history`` gives for the file
        store. (Lists and reports over big stores should use SQL instead: this loads it all.)"""
        history = History(reviews=self.reviews())
        with self._errors("reading the history"):
            connection = self.connection()
            with connection.transaction():
                if threads:
                    for (doc,) in connection.execute("SELECT doc FROM threads ORDER BY mailbox, id"):
                        thread = self._record(_thread_from, doc, "threads")
                        history.threads[thread_key(thread)] = thread
                for (doc,) in connection.execute("SELECT doc FROM breaches ORDER BY id"):
                    breach = self._record(_breach_from, doc, "breaches")
                    history.breaches[breach.id] = breach
        return history

    def select_breaches(self, wanted, now: datetime, period: timedelta, limit: int | None = None):
        """`breaches list` as SQL over the indexed columns: (the breaches `wanted` (a reporting.queries.BreachFilter)
        lets through, as stored (StoredBreach), oldest first (with `limit`, the newest that many), streamed in
        batches through a named cursor; their reviews, filled in batch by batch as the breaches are read; whether
        any breach is on record at all). No breach becomes an object."""
        where, values = _breach_conditions(wanted, now, period)
        query = (f"SELECT b.id, b.doc::text AS doc FROM breaches b {_LAST_REVIEW} "
                 f"WHERE {' AND '.join(where) or 'true'}")
        if limit is not None:  # the newest `limit`, oldest first
            query = f"SELECT id, doc FROM ({query} ORDER BY b.id DESC LIMIT {max(0, int(limit))}) newest"
            query += " ORDER BY id"
        else:
            query += " ORDER BY b.id"
        with self._errors("listing the breaches"):
            recorded = self.connection().execute("SELECT EXISTS (SELECT 1 FROM breaches)").fetchone()[0]
        reviews = Reviews()
        return self._streamed(query, values, reviews), reviews, recorded

    def _streamed(self, query: str, values: dict, reviews: Reviews, batch: int = 2000):
        where = f"in the PostgreSQL database {self.where}, table breaches"  # once, not once per row
        with self._errors("listing the breaches"):
            connection = self.connection()
            with connection.transaction(), connection.cursor(name="breach_list") as cursor:
                cursor.execute(query, values)
                while rows := cursor.fetchmany(batch):
                    reviews.extend(self._reviews_of([row[0] for row in rows]))
                    # the docs come as the server's JSON text and are parsed as one array: one call for the
                    # batch instead of psycopg's jsonb loader per row, and each key string made once
                    docs = json.loads(f"[{','.join('null' if text is None else text for _, text in rows)}]")
                    try:
                        listed = list(stored_breaches(docs).values())
                    except StoreError:  # read again one by one: the damaged one is refused saying where
                        listed = [checked_breach(doc, where) for doc in docs]
                    yield from listed

    def _reviews_of(self, breach_ids: list[int]) -> list[ReviewEntry]:
        rows = self.connection().execute("SELECT breach, at, by, action, cause, note FROM reviews "
                                         "WHERE breach = ANY(%s) ORDER BY id", (breach_ids,)).fetchall()
        return [ReviewEntry(breach=row[0], at=row[1], by=row[2], action=row[3], cause=row[4], note=row[5])
                for row in rows]

    def count_report(self, policies, *, now: datetime, review_period: timedelta, since: datetime | None = None,
                     until: datetime | None = None, by: str | None = None):
        """`report`, counted in SQL (GROUP BY over the threads' and breaches' columns; see postgres_report.py):
        nothing but the counts leaves the database."""
        from mailesc.stores.postgres_report import count_report

        with self._errors("counting the report"):
            connection = self.connection()
            with connection.transaction():
                connection.execute("SET LOCAL work_mem = '64MB'")  # a million hours sorted in memory
                return count_report(connection, policies, now=now, review_period=review_period, since=since,
                                    until=until, by=by)

    def last_polls(self) -> tuple[datetime | None, str | None]:
        """(when a mailbox was last polled successfully, by any worker; None) for `status`."""
        with self._errors("reading the last polls"):
            row = self.connection().execute("SELECT max((state->>'last_poll_at')::timestamptz) FROM health "
                                            "WHERE name = 'poll'").fetchone()
        return row[0], None

    def find_breach(self, breach_id: int) -> tuple[Thread | None, Breach | None]:
        """One breach (live or archived) and its thread, as store.find_breach gives for the file store."""
        with self._errors("reading a breach"):
            connection = self.connection()
            row = connection.execute("SELECT mailbox, thread, doc FROM breaches WHERE id = %s",
                                     (breach_id,)).fetchone()
            if row is None:
                return None, None
            thread_row = connection.execute("SELECT doc FROM threads WHERE mailbox = %s AND id = %s",
                                            row[:2]).fetchone()
        thread = self._record(_thread_from, thread_row[0], "threads") if thread_row else None
        return thread, self._record(_breach_from, row[2], "breaches")

    def reviews(self, of: list[int] | None = None) -> Reviews:
        """Every review entry, or only those of the breaches `of` (`breaches show`, `review`: one breach's)."""
        if of is not None:
            with self._errors("reading the reviews"):
                return Reviews(self._reviews_of(list(of)))
        with self._errors("reading the reviews"):
            rows = self.connection().execute(
                "SELECT breach, at, by, action, cause, note FROM reviews ORDER BY id").fetchall()
        return Reviews([ReviewEntry(breach=row[0], at=row[1], by=row[2], action=row[3], cause=row[4], note=row[5])
                        for row in rows])

    def record_review(self, entry: ReviewEntry) -> ReviewEntry:
        """Append a review entry (the caller checks its cause: reviews.check_cause). Any process may, at any
        time: reviews are never rewritten, so nothing fights the workers."""
        with self._errors("recording a review"):
            self.connection().execute(
                "INSERT INTO reviews (breach, at, by, action, cause, note) VALUES (%s, %s, %s, %s, %s, %s)",
                (entry.breach, entry.at, entry.by, entry.action, entry.cause, entry.note))
        return entry

    def _record(self, read, doc, table: str):
        try:
            return read(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(f"the PostgreSQL database {self.where} is damaged in table {table}: "
                             f"{record_problem(error)}; it was left untouched") from None

    # -- life -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._view is not None:
            view, self._view = self._view, None
            try:
                view.__exit__(psycopg.Rollback, psycopg.Rollback(), None)  # nothing of a dry run stays
            except psycopg.Error:
                pass  # the connection is gone: so is everything it did
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PostgresBox(BoxQueue):
    """One mailbox's live records, the surface of the file store (see mailesc/repository.py): read-only
    mappings ``threads``, ``breaches``, ``quarantine``; mutable ``sync``, ``health``, ``meta``; changes kept
    until ``flush()`` writes them in one transaction."""

    def __init__(self, store: PostgresStore, name: str):
        self.store, self.name = store, name
        self._threads: dict[str, Thread] = {}
        self._breaches: dict[int, Breach] = {}
        self._quarantine: dict[str, Quarantined] = {}
        self._outgoing: dict[str, QueuedMail] = {}
        self.threads = MappingProxyType(self._threads)
        self.outgoing = MappingProxyType(self._outgoing)  # mails of no single thread: unsent ones, the last daily
        self.breaches = MappingProxyType(self._breaches)
        self.quarantine = MappingProxyType(self._quarantine)
        self.sync = NamedRecords(self, "sync", name)  # the sources' bookmarks, per folder
        self.health = NamedRecords(self, "health", name)
        self.meta = NamedRecords(self, "meta", name)
        self.mails = MailIndex()  # where its unsent mails are
        self._dirty: dict[str, set] = {kind: set() for kind in _KINDS}
        self._archived: dict[str, tuple[Thread, list[Breach]]] = {}  # archived since the last flush
        self._load()

    def _load(self) -> None:
        with self.store._errors(f"loading mailbox {self.name!r}"):
            connection = self.store.connection()
            with connection.transaction():
                for (doc,) in connection.execute("SELECT doc FROM threads WHERE mailbox = %s AND NOT archived",
                                                 (self.name,)):
                    thread = self.store._record(_thread_from, doc, "threads")
                    self._threads[thread.id] = thread
                for (doc,) in connection.execute("SELECT doc FROM breaches WHERE mailbox = %s AND NOT archived "
                                                 "ORDER BY id", (self.name,)):
                    breach = self.store._record(_breach_from, doc, "breaches")
                    self._breaches[breach.id] = breach
                for (doc,) in connection.execute("SELECT doc FROM quarantine WHERE mailbox = %s", (self.name,)):
                    item = self.store._record(_quarantined_from, doc, "quarantine")
                    self._quarantine[item.key] = item
                for kind, table in _NAMED_TABLES.items():
                    records = getattr(self, kind)
                    for name, state in connection.execute(f"SELECT name, state FROM {table} WHERE mailbox = %s",
                                                          (self.name,)):
                        records.data[name] = state
                for (doc,) in connection.execute(
                        "SELECT doc FROM outgoing WHERE mailbox = %s AND doc IS NOT NULL AND (delivery = 'pending' "
                        "OR message_id = (SELECT message_id FROM outgoing WHERE mailbox = %s AND kind = 'daily' "
                        "ORDER BY doc->>'day' DESC LIMIT 1))", (self.name, self.name)):
                    mail = self.store._record(_outgoing_from, doc, "outgoing")
                    self._outgoing[mail.message_id] = mail
        take_over_daily_digest(self)

    # -- changing (in memory until flush) ---------------------------------------------------------------------

    def put_thread(self, thread: Thread) -> None:
        thread.mailbox = self.name
        self._threads[thread.id] = thread
        self._dirty["threads"].add(thread.id)

    def new_breach(self, **values) -> Breach:
        """A breach of this mailbox with the next id of the installation's sequence."""
        breach = Breach(id=self.store.next_breach_id(), mailbox=self.name, **values)
        self.put_breach(breach)
        return breach

    def put_breach(self, breach: Breach) -> None:
        self._breaches[breach.id] = breach
        self._dirty["breaches"].add(breach.id)

    def mark_dirty(self, kind: str, key: tuple[str, str]) -> None:
        """Called by NamedRecords with (mailbox, name): this box's mailbox."""
        self._dirty[kind].add(key[1])

    def put_quarantined(self, item: Quarantined) -> None:
        item.mailbox = self.name
        self._quarantine[item.key] = item
        self._dirty["quarantine"].add(item.key)

    def drop_quarantined(self, key: str) -> None:
        if self._quarantine.pop(key, None) is not None:
            self._dirty["quarantine"].add(key)

    def _put_outgoing(self, mail: QueuedMail) -> None:
        self._outgoing[mail.message_id] = mail
        self._dirty["outgoing"].add(mail.message_id)

    def first_start(self, now: datetime) -> datetime:
        return first_start(self, now)

    # -- asked by purpose (repository.MailboxStore): answered from what the lease loaded -----------------------

    def agenda_state(self, fingerprint: str) -> tuple[dict[str, datetime], set[str]] | None:
        """None: a worker evaluates every clock of a mailbox it takes (wake-ups are not kept in the database)."""
        return None

    def keep_agenda(self, agenda, fingerprint: str) -> None:
        pass

    def untimed_threads(self) -> list[Thread]:
        return sorted((thread for thread in self._threads.values() if thread.clock_error), key=lambda t: t.id)

    def last_archived(self) -> datetime | None:
        return last_archived(self)

    def archive_looked(self, at: datetime) -> None:
        archive_looked(self, at)

    def archive(self, threads: list[Thread]) -> None:
        """Out of the live records: at the next flush, the threads and their breaches are marked archived
        (kept for history, reports and review; no longer loaded by a box)."""
        for thread in threads:
            breaches = [self._breaches.pop(i) for i in thread.breach_ids.values() if i in self._breaches]
            self._archived[thread.id] = (thread, breaches)
            self._threads.pop(thread.id, None)
            self._dirty["threads"].discard(thread.id)
            self._dirty["breaches"].difference_update(b.id for b in breaches)

    def record_poll(self, at: datetime) -> None:
        """A successful poll, for `status`: written at once (not at the next flush), in this mailbox's health."""
        if self.store.dry_run:
            return
        with self.store._errors("recording a poll"):
            connection = self.store.connection()
            with connection.transaction(), connection.cursor() as cursor:
                self.fence(cursor)  # a worker that lost the mailbox does not say it polls it
                cursor.execute("INSERT INTO health (mailbox, name, state) VALUES (%s, 'poll', %s) "
                               "ON CONFLICT (mailbox, name) DO UPDATE SET state = EXCLUDED.state",
                               (self.name, Jsonb({"last_poll_at": isoformat(at)})))

    # -- writing ----------------------------------------------------------------------------------------------

    def may_send(self) -> bool:
        """Whether this worker may still send this mailbox's mails: its lease cannot have run out (checked on the
        local clock, without the database: right before sending, after the fenced commit)."""
        membership = self.store.membership
        return membership is None or self.name == INSTALLATION or membership.holds(self.name)

    def fence(self, cursor) -> None:
        """The lease check, first thing in every write's transaction: raise (e.g. LeaseLost) to write nothing.
        Without leases (one worker, tests) there is nothing to check. The installation's records (the daily
        digest's delivery) are written under the lease of `store.daily_mailbox` (the first configured mailbox,
        whose holder sends the digest), when one is set."""
        membership = self.store.membership
        if membership is None:
            return
        if self.name != INSTALLATION:
            membership.fence(cursor, self.name)
        elif self.store.daily_mailbox is not None:
            membership.fence(cursor, self.store.daily_mailbox)

    def flush(self) -> None:
        """Every change of this box since the last flush, in one transaction (all or nothing)."""
        if self.store.dry_run or (not any(self._dirty.values()) and not self._archived):
            return
        with self.store._errors(f"writing mailbox {self.name!r}"):
            connection = self.store.connection()
            with connection.transaction():
                with connection.cursor() as cursor:
                    self.fence(cursor)
                    archived = list(self._archived.values())
                    write_threads(cursor, [(self._threads[i], False) for i in self._dirty["threads"]
                                           if i in self._threads] + [(thread, True) for thread, _ in archived])
                    write_breaches(cursor, [(self._breaches[i], False) for i in self._dirty["breaches"]
                                            if i in self._breaches]
                                   + [(breach, True) for _, breaches in archived for breach in breaches])
                    # a thread archived with breaches an older flush wrote but this box no longer holds
                    if archived:
                        cursor.execute("UPDATE breaches SET archived = true WHERE mailbox = %s AND thread = ANY(%s) "
                                       "AND NOT archived", (self.name, list(self._archived)))
                    self._write_quarantine(cursor)
                    write_outgoing(cursor, self.name, [self._outgoing[i] for i in self._dirty["outgoing"]])
                    for kind, table in _NAMED_TABLES.items():
                        records = getattr(self, kind)
                        _upsert(cursor, table, ("mailbox", "name", "state"), 2,
                                [(self.name, name, Jsonb(records[name])) for name in self._dirty[kind]])
        for keys in self._dirty.values():
            keys.clear()
        self._archived.clear()

    def _write_quarantine(self, cursor) -> None:
        keys = self._dirty["quarantine"]
        _upsert(cursor, "quarantine", ("mailbox", "key", "doc"), 2,
                [(self.name, key, Jsonb(_quarantined_doc(self._quarantine[key]))) for key in keys
                 if key in self._quarantine])
        gone = [key for key in keys if key not in self._quarantine]
        if gone:
            cursor.execute("DELETE FROM quarantine WHERE mailbox = %s AND key = ANY(%s)", (self.name, gone))


def write_threads(cursor, threads: list[tuple[Thread, bool]]) -> None:
    """Upsert threads (each with its archived flag) by (mailbox, id): the rows of a worker's flush and of a store
    copy alike."""
    rows = []
    for thread, archived in threads:
        doc = _thread_doc(thread)
        facts = doc[FACTS_KEY] or {}
        rows.append((thread.mailbox, thread.id, Jsonb(doc), archived, max((m.arrived for m in thread.messages),
                                                                            default=None),
                     _time(facts.get("received")), facts.get("customer"), facts.get("policy"), facts.get("breach"),
                     _time(facts.get("responded")), facts.get("hours")))
    _upsert(cursor, "threads", ("mailbox", "id", "doc", "archived", "last_activity", "received_at", "customer",
                                "policy", "first_breach", "responded_at", "response_hours"), 2, rows)


def write_breaches(cursor, breaches: list[tuple[Breach, bool]]) -> None:
    """Upsert breaches (each with its archived flag) by id, and one escalations row per level of a clock: the key
    that makes a level exactly once across workers."""
    _upsert(cursor, "breaches", ("id", "mailbox", "thread", "clock", "customer", "policy", "status",
                                 "received_at", "due_at", "responded_at", "doc", "archived", "acknowledged_at"), 1,
            [(b.id, b.mailbox, b.thread, b.clock, b.customer, b.policy, str(b.status), b.received_at, b.due_at,
              b.responded_at, Jsonb(_breach_doc(b)), archived, b.acknowledged_at) for b, archived in breaches])
    _upsert(cursor, "outgoing", _ESCALATION_COLUMNS, 4,
            [(b.mailbox, b.thread, b.clock, e.level, e.message_id, "escalation", b.id, list(e.to), str(e.delivery),
              e.at, e.sent_at, e.retry_at, e.attempts, e.error) for b, _ in breaches for e in b.escalations],
            where="kind = 'escalation'")  # the exactly-once key; a Message-ID claimed twice is refused
    # a level's webhook posts: one row each, keyed by its record's id (stable for a level of a clock and a webhook
    # name, as an escalation's Message-ID is), so that a worker taking over finds it recorded and posts it again
    # only if it was not settled; kept in the breach's document like the escalations (`doc` stays NULL)
    _upsert(cursor, "outgoing", _OUTGOING_COLUMNS, 1,
            [(n.message_id, b.mailbox, str(n.kind), b.thread, b.clock, n.level, b.id, list(n.to), str(n.delivery),
              n.at, n.sent_at, n.retry_at, n.attempts, n.error, None) for b, _ in breaches for n in b.notifications])


def write_outgoing(cursor, mailbox: str, mails: list[QueuedMail]) -> None:
    """Upsert a box's mails of no single thread (digests) by Message-ID, each with its document."""
    _upsert(cursor, "outgoing", _OUTGOING_COLUMNS, 1,
            [(m.message_id, mailbox, str(m.kind), None, None, None, None, list(m.to), str(m.delivery), m.at,
              m.sent_at, m.retry_at, m.attempts, m.error, Jsonb(_outgoing_doc(m))) for m in mails])


_OUTGOING_COLUMNS = ("message_id", "mailbox", "kind", "thread", "clock", "level", "breach", "recipients", "delivery",
                     "at", "sent_at", "retry_at", "attempts", "error", "doc")
_ESCALATION_COLUMNS = ("mailbox", "thread", "clock", "level", "message_id", "kind", "breach", "recipients", "delivery",
                       "at", "sent_at", "retry_at", "attempts", "error")


# the latest review entry of each breach: its review stands when that entry's action is "review"
_LAST_REVIEW = ("LEFT JOIN LATERAL (SELECT r.action FROM reviews r WHERE r.breach = b.id ORDER BY r.id DESC LIMIT 1) "
                "last_review ON true")


def _breach_conditions(wanted, now: datetime, period: timedelta) -> tuple[list[str], dict]:
    """The WHERE conditions of a reporting.queries.BreachFilter (the same tests as BreachFilter.admits) and their
    values."""
    where, values = [], {"now": now, "period": period}
    if wanted.since is not None:
        where.append("b.due_at >= %(since)s")
        values["since"] = wanted.since
    if wanted.until is not None:
        where.append("b.due_at < %(until)s")
        values["until"] = wanted.until
    if wanted.policy is not None:
        where.append("b.policy = %(policy)s")
        values["policy"] = wanted.policy
    if wanted.customer is not None:
        customer = wanted.customer.lower().strip()
        if "@" in customer.lstrip("@"):
            where.append("lower(b.customer) = %(customer)s")
            values["customer"] = customer
        else:  # a domain: what follows the address's last @
            where.append("lower(regexp_replace(b.customer, '^.*@', '')) = %(domain)s")
            values["domain"] = customer.lstrip("@")
    if wanted.status is not None:
        where.append("b.status = %(status)s")
        values["status"] = wanted.status
    if wanted.mailboxes:
        where.append("b.mailbox = ANY(%(mailboxes)s)")
        values["mailboxes"] = list(wanted.mailboxes)
    if wanted.unreviewed or wanted.overdue_review:
        where.append("last_review.action IS DISTINCT FROM 'review'")
    if wanted.overdue_review:
        where.append("b.due_at < %(now)s - %(period)s")
    return where, values


COPY_FROM = 200  # rows: from this many on, an upsert goes through COPY (a first sync writes thousands)


def _upsert(cursor, table: str, columns: tuple[str, ...], key_columns: int, rows: list[tuple],
            where: str | None = None) -> None:
    """Insert `rows` into `table`, replacing the rows with the same key (its first `key_columns` columns; `where`:
    the predicate of the partial unique index that is the key).
    Few rows: one pipelined statement each. Many: COPY into a temporary table dropped at commit, then one
    INSERT ... SELECT (COPY is some ten times quicker than row by row)."""
    if not rows:
        return
    names = ", ".join(columns)
    upsert = (f"ON CONFLICT ({', '.join(columns[:key_columns])}){f' WHERE {where}' if where else ''} DO UPDATE SET "
              + ", ".join(f"{column} = EXCLUDED.{column}" for column in columns[key_columns:]))
    if len(rows) < COPY_FROM:
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))}) {upsert}",
                           rows)
        return
    cursor.execute(f"CREATE TEMPORARY TABLE staged_{table} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
    with cursor.copy(f"COPY staged_{table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM staged_{table} {upsert}")


def _reason(text: str) -> str:
    """The why of a psycopg error in one line: "connection failed: connection to server at "h", port 5432
    failed: FATAL:  password authentication failed ..." -> "password authentication failed ..."."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")
    first = first.rpartition(" failed: ")[2] if " failed: " in first else first
    return re.sub(r"^(FATAL|ERROR):\s+", "", first).strip() or "unknown error"


def _secret_forms(password: str | None) -> list[str]:
    """The password as it may appear in a text (as given, URL-quoted), longest first; none when empty."""
    if not password:
        return []
    return sorted({password, quote(password, safe=""), quote(password)}, key=len, reverse=True)
