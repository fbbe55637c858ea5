"""The door to state: what the engine, the worker and the commands may ask of a store, whichever it is.

Two stores implement it: the embedded file (`mailesc.store.Store`, the zero-setup default) and PostgreSQL
(`mailesc.stores.postgres.PostgresStore`, for many mailboxes on many machines). Both keep a mailbox's live records
in memory while a worker works it and write its changes, all or nothing, at `flush()`; they differ in where the
records live and who else may read them meanwhile.

A store is split by mailbox: `box(name)` is one mailbox's part (its threads, breaches, quarantine and small named
records), `installation` the records of the whole installation (the daily digest's delivery, the last breach
id). Thread ids are unique within their mailbox only; breach ids within the installation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from mailesc.model import Breach, Quarantined, QueuedMail, Thread

if TYPE_CHECKING:
    from mailesc.history import History
    from mailesc.policies import Policies
    from mailesc.queue import Queued
    from mailesc.reporting.queries import BreachFilter, StoredBreach
    from mailesc.reporting.statistics import Counts
    from mailesc.reviews import ReviewEntry, Reviews


class MailboxStore(Protocol):
    """One mailbox's live (not archived) records: what an Engine works on.

    The records are read-only properties here: a store keeps them in its own kind of mapping (a dict, a table
    written at flush), and nobody but the store replaces them."""

    @property
    def name(self) -> str: ...

    @property
    def threads(self) -> Mapping[str, Thread]:  # by thread id
        ...

    @property
    def breaches(self) -> Mapping[int, Breach]:  # by breach id
        ...

    @property
    def quarantine(self) -> Mapping[str, Quarantined]:  # by the source's message key
        ...

    @property
    def outgoing(self) -> Mapping[str, QueuedMail]:  # mails of no single thread (digests), by Message-ID
        ...

    @property
    def sync(self) -> MutableMapping[str, dict]:  # the source's bookmarks, per folder
        ...

    @property
    def health(self) -> MutableMapping[str, dict]:  # the last poll and failure, for `status`
        ...

    @property
    def meta(self) -> MutableMapping[str, dict]:  # the first start (the anchor of `[mailbox] since`)
        ...

    def put_thread(self, thread: Thread) -> None: ...

    def new_breach(self, **values) -> Breach: ...

    def put_breach(self, breach: Breach) -> None: ...

    def put_quarantined(self, item: Quarantined) -> None: ...

    def drop_quarantined(self, key: str) -> None: ...

    def first_start(self, now: datetime) -> datetime: ...

    # -- the outgoing-mail queue (mailesc/queue.py; sent by mailesc/outbox.py) --

    def enqueue(self, mail: QueuedMail, *, thread: Thread | None = None, breach: Breach | None = None) -> None:
        """Record a mail that fell due, unsent, with its owner (an escalation on `breach`, a warning or an
        acknowledgement on `thread`; none for a digest, kept in `outgoing`), written at the next flush: the
        write-ahead record the outbox sends from."""

    def put_mail(self, mail: QueuedMail, *, thread: Thread | None = None, breach: Breach | None = None) -> None:
        """A queued mail's delivery changed (tried, sent, failed, retry time): its owner is written at the next
        flush."""

    def pending_mails(self) -> list["Queued"]:
        """Every unsent mail of the box with its owner, escalations first (by breach id): found through an index
        the box keeps, never by walking every breach and thread."""

    def requeue(self) -> None:
        """Look for unsent mails again: an admin's request (`breaches resend`) put some back behind the box's
        back."""

    def archive(self, threads: list[Thread]) -> None:
        """Out of the live records at the next flush, with their breaches; kept for history and reports."""

    def flush(self) -> None:
        """Write every change since the last flush, all or nothing (on PostgreSQL: fenced by the mailbox's
        lease, raising LeaseLost when this worker no longer holds it)."""

    def may_send(self) -> bool:
        """Whether this process may still send the mailbox's mails (asked after the commit that records them and
        right before the send): on PostgreSQL, False once its lease may have run out."""

    def record_poll(self, at: datetime) -> None:
        """A successful poll, for `status` to tell a live worker from a dead one."""

    # -- asked by purpose: what the engine needs at a start, without walking every thread --

    def agenda_state(self, fingerprint: str) -> tuple[dict[str, datetime], set[str]] | None:
        """(each thread's next wake-up, the threads changed since last evaluated) as kept by the store for
        policies with this fingerprint (agenda.policies_fingerprint); None: every clock must be evaluated."""

    def keep_agenda(self, agenda, fingerprint: str) -> None:
        """Keep `agenda`'s wake-ups with each flush (the file store's index), valid for this fingerprint."""

    def untimed_threads(self) -> list[Thread]:
        """The threads their policy could not time (Thread.clock_error), by id."""

    def last_archived(self) -> datetime | None:
        """When the box was last looked through for threads to archive, by any process."""

    def archive_looked(self, at: datetime) -> None:
        """The box was looked through for threads to archive at `at` (written at the next flush)."""


class Store(Protocol):
    """A whole store: every mailbox's part, the installation's records, the signing secret."""

    installation: MailboxStore
    shared: bool  # several workers may work it at once, each mailbox under a lease (PostgreSQL)

    def box(self, name: str) -> MailboxStore: ...

    def mailboxes(self) -> list[MailboxStore]:
        """Every mailbox with records (the installation's box left out)."""

    def installation_secret(self) -> bytes:
        """The secret that signs the installation's Message-IDs and markers: the same for every worker."""

    def close(self) -> None: ...


class Records(Store, Protocol):
    """What admin commands read and write, through `app.open_records(config)` (workers or the daemon may be
    running): the history for reports, one breach, breach lists filtered by the store (SQL on PostgreSQL), the
    reviews (appended by anyone at any time), and when a poll last succeeded."""

    def history(self, threads: bool = True) -> "History":
        """Everything on record, live and archived, with the reviews."""

    def count_report(self, policies: "Policies", *, now: datetime, review_period: timedelta,
                     since: datetime | None = None, until: datetime | None = None,
                     by: str | None = None) -> "Counts":
        """`report`'s counts of the period (reporting.statistics.assemble makes the report of them): the file
        store counts its records in Python, PostgreSQL in SQL."""

    def select_breaches(self, wanted: "BreachFilter", now: datetime, period: timedelta,
                        limit: int | None = None) -> tuple[Iterable["StoredBreach"], "Reviews", bool]:
        """(the breaches `wanted` lets through, oldest first (with `limit` the newest that many), their reviews
        (filled in as the breaches are read), whether any breach is on record at all)."""

    def find_breach(self, breach_id: int) -> tuple[Thread | None, Breach | None]: ...

    def reviews(self, of: list[int] | None = None) -> "Reviews": ...

    def record_review(self, entry: "ReviewEntry") -> "ReviewEntry":
        """Append a review entry (its cause checked by the caller)."""

    def last_polls(self) -> tuple[datetime | None, str | None]:
        """(when a poll last succeeded, why that cannot be read)."""
