"""Workers and mailbox leases on PostgreSQL: at most one worker works a mailbox at a time, and the mailboxes are
spread evenly over the workers that are alive.

Why this shape:
- A worker row (``workers``) and one lease row per mailbox (``leases``: owner, expires_at) are renewed together by
  ``renew()`` every ``lease_seconds / 3``: a worker that dies (SIGKILL, power cut, network cut) stops renewing, its
  row and its leases expire after ``lease_seconds`` and the others take them over at their next ``balance()``.
  Every time that decides anything is the database's ``now()``, so clocks of different machines never disagree.
- The worker itself cannot ask the database whether it still holds a lease once the database is gone, so it keeps
  its own deadline per lease on the local monotonic clock: the moment just BEFORE the transaction that set
  ``expires_at = now() + lease_seconds`` began, plus ``lease_seconds``. The database's ``now()`` of that
  transaction is later than that moment, so the lease cannot have expired in the database before the local
  deadline passes. ``holds()`` is False from that deadline on, without waiting for anything: a worker cut off from
  the database stops escalating before another worker may take its mailboxes (and send what it would send).
- Fencing: ``fence()`` runs first in every flush of a mailbox's records (``PostgresBox.flush``) and locks the
  lease row (``FOR UPDATE``) until the flush commits; a worker whose lease is gone or expired writes nothing and
  gets ``LeaseLost``. A worker stopped while writing (SIGSTOP) cannot write after another took over.
- ``balance()`` takes free or expired leases with ``FOR UPDATE SKIP LOCKED``, the free ones first, each worker in
  an order of its own (a hash of the mailbox and the worker id), so workers starting together seldom queue on the
  same rows; a row is taken only by an UPDATE that checks again that it is free, so two workers never hold one.
- How long an even spread takes: a worker that joins is counted at once (its row is written when it starts), so
  at the next ``balance()`` of each worker the ones above the new fair share give back what is too much and the
  newcomer takes it at its own next ``balance()``: two balance rounds (about ``2 * lease_seconds / 3`` when the
  daemon balances every ``balance_seconds`` = ``lease_seconds / 3``). When a worker dies, its mailboxes are free
  to take ``lease_seconds`` after its last renewal, and taken at the next balance round of the others after that:
  at most ``lease_seconds + balance_seconds`` after the death.

The background thread has a connection of its own (renewals go on while the main thread is busy in a long
cycle); ``balance()``, ``release_all()`` and ``fence()`` use the store's connection, from the thread that works
the mailboxes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable

from mailesc.errors import LeaseLost, StoreError
from mailesc.stores.postgres import INSTALLATION, PostgresStore, psycopg

log = logging.getLogger("mailesc.leases")
FORGET_AFTER = 10  # lease lengths after which the row of a worker that stopped renewing is deleted


def new_worker_id() -> str:
    """host:pid:random: readable in ``status``, unique even when a pid is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Membership:
    """This process as one worker of the installation: its worker row and the leases it holds.

        membership = Membership(store, lease_seconds=30)   # registers the worker row; wires the store's fence
        membership.start()                                 # renews every lease_seconds / 3 in the background
        taken, released = membership.balance(["support", "billing", "vip"])
        if membership.holds("support"): ...               # work the mailbox
        membership.release_all()                           # on SIGTERM: the others take over at once
    """

    def __init__(self, store: PostgresStore, lease_seconds: float, worker_id: str | None = None):
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be more than 0")
        self.store = store
        self.lease_seconds = float(lease_seconds)
        self.worker_id = worker_id or new_worker_id()
        self._lock = threading.Lock()  # guards _held, touched by the renewing thread and the working thread
        self._held: dict[str, float] = {}  # mailbox -> local monotonic deadline of the lease
        self._renew_lock = threading.Lock()  # one renewal at a time on the renewing connection
        self._renew_connection = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_renewal: float | None = None  # monotonic time of the last successful renewal
        self.last_error: str | None = None  # why the last renewal failed (no secrets, no customer data)
        host, pid = socket.gethostname(), os.getpid()
        self._forget_frozen_transactions(store)
        begun = time.monotonic()
        with store._errors("registering the worker"):
            store.connection().execute(
                "INSERT INTO workers (id, host, pid, started_at, renewed_at, expires_at) "
                "VALUES (%s, %s, %s, now(), now(), now() + make_interval(secs => %s)) "
                "ON CONFLICT (id) DO UPDATE SET renewed_at = now(), expires_at = EXCLUDED.expires_at",
                (self.worker_id, host, pid, self.lease_seconds))
        self.last_renewal = begun
        store.membership = self  # from now on every flush of a mailbox's records is fenced

    def _frozen_transaction_ms(self) -> int:
        return max(1000, int(self.lease_seconds * 500))

    def _forget_frozen_transactions(self, store: PostgresStore) -> None:
        """A worker frozen (SIGSTOP, a stalled VM) in the middle of a flush holds its lease row locked, and
        ``balance()`` of the others skips locked rows: the mailbox would stay stuck as long as the freeze. So the
        server ends any transaction of this worker left idle for half a lease (``idle_in_transaction_session_
        timeout``; a flush sends its statements back to back), on the store's connection now and on every one it
        makes again."""
        setting = f"-c idle_in_transaction_session_timeout={self._frozen_transaction_ms()}"
        store._args["options"] = f"{store._args.get('options', '')} {setting}".strip()
        with store._errors("registering the worker"):
            store.connection().execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                                       (str(self._frozen_transaction_ms()),))

    @property
    def balance_seconds(self) -> float:
        """How often to call ``balance()`` (and how often the thread renews): a third of a lease."""
        return self.lease_seconds / 3

    # -- what this worker holds -------------------------------------------------------------------------------

    def holds(self, mailbox: str) -> bool:
        """True while the lease is ours AND cannot have expired in the database: False at once when the local
        deadline passed (renewals failing: the database or the network is gone)."""
        with self._lock:
            deadline = self._held.get(mailbox)
        return deadline is not None and time.monotonic() < deadline

    def held(self) -> set[str]:
        """The mailboxes this worker may work now (as ``holds``)."""
        now = time.monotonic()
        with self._lock:
            return {mailbox for mailbox, deadline in self._held.items() if now < deadline}

    # -- renewing ---------------------------------------------------------------------------------------------

    def renew(self) -> frozenset[str]:
        """Renew the worker row and every lease held, in one short transaction; returns the mailboxes found lost
        (taken by another worker, or their rows gone), which are no longer held. Raises StoreUnavailable when the
        database cannot be reached (nothing is renewed then: ``holds`` turns False when the deadlines pass)."""
        with self._renew_lock:
            with self._lock:
                asked = sorted(self._held)
            begun = time.monotonic()
            with self.store._errors("renewing the leases"):
                connection = self._renewing_connection()
                try:
                    with connection.transaction():
                        connection.execute(
                            "INSERT INTO workers (id, host, pid, started_at, renewed_at, expires_at) "
                            "VALUES (%s, %s, %s, now(), now(), now() + make_interval(secs => %s)) "
                            "ON CONFLICT (id) DO UPDATE SET renewed_at = now(), expires_at = EXCLUDED.expires_at",
                            (self.worker_id, socket.gethostname(), os.getpid(), self.lease_seconds))
                        # Ours even if expired: nobody took it meanwhile (taking rewrites the owner), so it is safe
                        # to keep; a lease another worker took is not ours any more.
                        kept = {row[0] for row in connection.execute(
                            "UPDATE leases SET renewed_at = now(), expires_at = now() + make_interval(secs => %s) "
                            "WHERE owner = %s AND mailbox = ANY(%s) RETURNING mailbox",
                            (self.lease_seconds, self.worker_id, asked))}
                except BaseException:
                    self._drop_renewing_connection()
                    raise
            with self._lock:
                # only what is still held: a lease the working thread gave back meanwhile (balance) is not lost
                lost = frozenset(m for m in asked if m not in kept and m in self._held)
                for mailbox in kept:
                    if mailbox in self._held:
                        self._held[mailbox] = begun + self.lease_seconds
                for mailbox in lost:
                    self._held.pop(mailbox, None)
            self.last_renewal, self.last_error = begun, None
        for mailbox in lost:
            self.store.drop_box(mailbox)
            log.warning("the lease of mailbox %s was taken by another worker: it is no longer worked here",
                        mailbox)
        return lost

    def _renewing_connection(self):
        """A connection of the renewals' own, made again after a failure; it gives up on a dead network after
        about ``lease_seconds`` (TCP user timeout, statement timeout) rather than hanging for minutes."""
        if self._renew_connection is None or self._renew_connection.closed or self._renew_connection.broken:
            self._drop_renewing_connection()
            budget_ms = max(1000, int(self.lease_seconds * 1000))
            self._renew_connection = psycopg.connect(
                **{key: value for key, value in self.store._args.items() if key not in ("options", "application_name")},
                autocommit=True, application_name="mailesc leases",
                connect_timeout=max(2, math.ceil(self.lease_seconds / 3)), tcp_user_timeout=budget_ms,
                keepalives=1, keepalives_idle=max(1, int(self.lease_seconds / 3)), keepalives_interval=1,
                keepalives_count=3, options=f"-c statement_timeout={budget_ms} -c lock_timeout={budget_ms} "
                        f"-c idle_in_transaction_session_timeout={self._frozen_transaction_ms()}")
        return self._renew_connection

    def _drop_renewing_connection(self) -> None:
        if self._renew_connection is not None:
            try:
                self._renew_connection.close()
            except Exception:  # closing a broken connection must not hide why it broke
                pass
            self._renew_connection = None

    def start(self) -> "Membership":
        """Renew every ``lease_seconds / 3`` in a background thread until ``stop()``."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._renew_forever, name="mailesc-leases", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (the leases stay until they expire, or until ``release_all``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._renew_lock:
            self._drop_renewing_connection()

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.balance_seconds):
            try:
                self.renew()
            except StoreError as error:
                self.last_error = str(error)
                log.warning("renewing the leases failed: %s; the mailboxes stop being worked %.0f s after the "
                            "last renewal", error, self.lease_seconds)
            except Exception:  # the thread must not die silently: the leases would just expire
                self.last_error = "internal error"
                log.exception("renewing the leases failed")

    # -- spreading the mailboxes ------------------------------------------------------------------------------

    def balance(self, mailboxes: Iterable[str]) -> tuple[set[str], set[str]]:
        """Take free or expired leases up to the fair share (ceil(mailboxes / live workers)) and give back those
        above it (and those of mailboxes no longer configured); returns (taken, released). One transaction."""
        wanted = sorted(set(mailboxes) - {INSTALLATION})
        begun = time.monotonic()
        with self.store._errors("balancing the leases"):
            connection = self.store.connection()
            with connection.transaction():
                connection.execute("INSERT INTO leases (mailbox) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                                   (wanted,))
                # rows of workers gone long ago (killed: they never said goodbye); one that was only frozen
                # writes its row again at its next renewal
                connection.execute("DELETE FROM workers WHERE expires_at < now() - make_interval(secs => %s)",
                                   (FORGET_AFTER * self.lease_seconds,))
                workers = connection.execute(
                    "SELECT count(*) FROM workers WHERE expires_at > now() OR id = %s",
                    (self.worker_id,)).fetchone()[0]
                share = math.ceil(len(wanted) / max(1, workers))
                # ours, expired or not: nobody took them (taking rewrites the owner)
                mine = {row[0] for row in connection.execute(
                    "SELECT mailbox FROM leases WHERE owner = %s FOR UPDATE", (self.worker_id,))}
                keep = sorted((m for m in mine if m in wanted), key=self._preference)[:share]
                released = mine - set(keep)
                with self._lock:  # no longer worked from now on, even if this transaction fails
                    for mailbox in released:
                        self._held.pop(mailbox, None)
                if released:
                    connection.execute("UPDATE leases SET owner = NULL, renewed_at = NULL, expires_at = NULL "
                                       "WHERE owner = %s AND mailbox = ANY(%s)", (self.worker_id, sorted(released)))
                if keep:  # taken again now: renewed in the same stroke, expired or not
                    connection.execute("UPDATE leases SET renewed_at = now(), "
                                       "expires_at = now() + make_interval(secs => %s) "
                                       "WHERE owner = %s AND mailbox = ANY(%s)",
                                       (self.lease_seconds, self.worker_id, keep))
                taken: set[str] = set()
                missing = share - len(keep)
                if missing > 0:
                    # the free ones first, then the expired ones; in this worker's own order, skipping rows another
                    # worker is taking (or fencing) right now
                    candidates = [row[0] for row in connection.execute(
                        "SELECT mailbox FROM leases WHERE mailbox = ANY(%s) "
                        "AND (owner IS NULL OR expires_at IS NULL OR expires_at <= now()) "
                        "ORDER BY owner IS NOT NULL, md5(mailbox || %s) LIMIT %s FOR UPDATE SKIP LOCKED",
                        (wanted, self.worker_id, missing))]
                    if candidates:
                        taken = {row[0] for row in connection.execute(
                            "UPDATE leases SET owner = %s, acquired_at = now(), renewed_at = now(), "
                            "expires_at = now() + make_interval(secs => %s) WHERE mailbox = ANY(%s) "
                            "AND (owner IS NULL OR expires_at IS NULL OR expires_at <= now()) RETURNING mailbox",
                            (self.worker_id, self.lease_seconds, candidates))}
        with self._lock:
            for mailbox in set(keep) | taken:
                self._held[mailbox] = begun + self.lease_seconds
        for mailbox in released | taken:
            self.store.drop_box(mailbox)  # taken: load it fresh, another worker may have changed it
        if taken:
            # the installation's records too (the daily digest's delivery): the worker that held the mailbox
            # before may have written them since this one loaded them; stale, the digest would go out twice
            self.store.drop_box(INSTALLATION)
        if taken or released:
            log.info("leases: took %d, gave back %d; holding %d of %d mailboxes (%d live workers)",
                     len(taken), len(released), len(keep) + len(taken), len(wanted), workers)
        return taken, released

    def _preference(self, mailbox: str) -> str:
        """This worker's own order of the mailboxes: which to keep when giving some back."""
        return hashlib.md5((mailbox + self.worker_id).encode()).hexdigest()

    # -- leaving ----------------------------------------------------------------------------------------------

    def release_all(self) -> None:
        """Give every lease and the worker row back at once (SIGTERM): the others take over at their next
        balance, without waiting for the leases to expire. Local holds end first, whatever the database says."""
        self.stop()
        with self._lock:
            released = set(self._held)
            self._held.clear()
        for mailbox in released:
            self.store.drop_box(mailbox)
        with self.store._errors("giving the leases back"):
            connection = self.store.connection()
            with connection.transaction():
                connection.execute("UPDATE leases SET owner = NULL, renewed_at = NULL, expires_at = NULL "
                                   "WHERE owner = %s", (self.worker_id,))
                connection.execute("DELETE FROM workers WHERE id = %s", (self.worker_id,))
        # the membership stays wired: a flush after this is refused (LeaseLost), never written unfenced
        log.info("leases: gave back every mailbox (%d) and left", len(released))

    # -- fencing ----------------------------------------------------------------------------------------------

    def fence(self, cursor, mailbox: str) -> None:
        """First step of a flush of ``mailbox``'s records: lock its lease row until the flush commits; raise
        LeaseLost (the flush writes nothing) when the lease is not ours or has expired."""
        row = cursor.execute("SELECT owner, expires_at > now() FROM leases WHERE mailbox = %s FOR UPDATE",
                             (mailbox,)).fetchone()
        if row is None or row[0] != self.worker_id or not row[1]:
            with self._lock:
                self._held.pop(mailbox, None)
            self.store.drop_box(mailbox)  # if it is ever taken again, its records are loaded afresh
            raise LeaseLost(f"this worker no longer holds the lease of mailbox {mailbox!r}: nothing was written; "
                            f"the worker that holds it now works it")


def leases_status(store: PostgresStore) -> list[dict]:
    """Per mailbox with a lease row: who holds it (owner, host, pid; None when free), expires_at (ISO 8601) and
    the seconds left (negative: expired, free to take), with the database's clock. For ``mailesc status``."""
    with store._errors("reading the leases"):
        rows = store.connection().execute(
            "SELECT l.mailbox, l.owner, w.host, w.pid, l.expires_at, "
            "extract(epoch FROM l.expires_at - now())::float8 "
            "FROM leases l LEFT JOIN workers w ON w.id = l.owner ORDER BY l.mailbox").fetchall()
    return [{"mailbox": mailbox, "owner": owner, "host": host, "pid": pid,
             "expires_at": expires_at.isoformat() if expires_at else None,
             "seconds_left": round(left, 1) if left is not None else None}
            for mailbox, owner, host, pid, expires_at, left in rows]


def workers_status(store: PostgresStore) -> list[dict]:
    """The live workers (row not expired): id, host, pid, started_at, expires_at and how many leases each
    holds now. For ``mailesc status``."""
    with store._errors("reading the workers"):
        rows = store.connection().execute(
            "SELECT w.id, w.host, w.pid, w.started_at, w.expires_at, "
            "(SELECT count(*) FROM leases l WHERE l.owner = w.id AND l.expires_at > now()) "
            "FROM workers w WHERE w.expires_at > now() ORDER BY w.started_at, w.id").fetchall()
    return [{"id": worker, "host": host, "pid": pid, "started_at": started.isoformat(),
             "expires_at": expires.isoformat(), "leases": held}
            for worker, host, pid, started, expires, held in rows]
