"""Every mailbox one process works, as one engine to the daemon.

A config may name many mailboxes (`[[mailbox]]`); each gets an Engine of its own (its source, its part of the
store, its team and policies), made by `make_engine(name)`. The daemon drives one Worker the way it drove one
engine: a cycle cycles the mailboxes whose time has come (new mail, a deadline, or their poll), the next deadline
is the earliest of all, and waiting for mail waits on every mailbox's source at once (IDLE on each). The
installation-wide daily digest goes out after the mailboxes' cycles, once per installation.

With the PostgreSQL store several workers share the mailboxes through leases (stores/leases.py): a worker works
only the mailboxes it holds, takes its fair share at every balance, drops a mailbox the moment its lease may have
expired (a lost database included: it must not send what another worker will send), and gives everything back
when it stops. The daily digest is sent by the worker that holds the first configured mailbox.

One mailbox failing (its server down, a message it cannot read) never holds back the others: its engine records
the failure in its own health, and the cycle goes on with the next mailbox."""

from __future__ import annotations

import logging
import threading
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mailesc.cycle import CycleReport, Engine
from mailesc.errors import LeaseLost, MailescError, StoreError, StoreUnavailable
from mailesc.logs import fields
from mailesc.requests import apply_requests
from mailesc.sources import wait_for_mail

if TYPE_CHECKING:
    from mailesc.app import EngineFactory, Setup
    from mailesc.daily import DailyDigest
    from mailesc.sources import Source
    from mailesc.stores.leases import Membership

log = logging.getLogger("mailesc.worker")


class Worker:
    def __init__(self, names: list[str], make_engine: EngineFactory, *, daily: DailyDigest | None = None,
                 membership: Membership | None = None, poll_every: timedelta | None = None):
        """`names`: the configured mailboxes in the config's order; `make_engine(name)`: a mailbox's Engine (an
        app.EngineFactory); `membership`: this process's leases (None: it
        works every mailbox); `poll_every`: with several mailboxes, a mailbox is polled when it reports news, when
        a deadline of its own is due, or when its last poll is this old (None: at every cycle)."""
        self.names, self.make_engine, self.daily, self.membership = list(names), make_engine, daily, membership
        self.poll_every = poll_every
        self.engines: dict[str, Engine] = {}
        if membership is not None:
            membership.store.daily_mailbox = self.names[0]  # the installation's records: under the digest's sender
        if membership is None:
            self.engines = {name: make_engine(name) for name in self.names}
        self._polled: dict[str, datetime] = {}  # mailbox -> when its engine last cycled
        self._news: set[str] = set()  # mailboxes whose source reported news while waiting
        self._balanced_at: datetime | None = None
        self._failures: dict[str, str] = {}  # mailbox -> why its last cycle failed as a whole (logged once)

    @property
    def source(self) -> "Worker":
        """What the daemon waits on for news: this worker, which waits on every mailbox (see wait())."""
        return self

    def cycle(self, now: datetime) -> CycleReport:
        """One cycle of every mailbox whose time has come, then the daily digest. A mailbox whose cycle fails as
        a whole (not its source: that is in its report) is logged, once per reason, and the others go on; when
        every mailbox cycled failed, the error is raised, for the daemon's backoff."""
        if self.membership is not None:
            self._balance(self.membership, now)
        reports: dict[str, CycleReport] = {}
        failed: MailescError | None = None
        for name in self._due(now):
            engine = self.engines[name]
            try:
                if apply_requests(engine.store, now):  # an admin's resend or quarantine retry (PostgreSQL)
                    engine.outbox.rescan()
                reports[name] = engine.cycle(now)
            except LeaseLost as error:
                log.warning("mailbox %s is no longer worked here: %s", name, error, extra=fields(mailbox=name))
                self._drop(name)
                continue
            except StoreError as error:
                if not isinstance(error, StoreUnavailable):
                    raise  # the store cannot be written: running on would lose records
                failed = error  # the database is out of reach: nothing was written; tried again, with backoff
                self._failed(name, str(error))
                if self.membership is not None:
                    self._drop(name)  # what it holds in memory may be ahead of the database: loaded afresh later
                continue
            except MailescError as error:
                failed = error
                self._failed(name, str(error))
                continue
            self._polled[name] = now
            self._news.discard(name)
            self._recovered(name)
        if failed is not None and not reports:
            raise failed
        report = merged(reports)
        if self.daily is not None and self._sends_daily():
            try:
                self.daily.run(now)
            except LeaseLost as error:  # the first mailbox went to another worker: that one sends the digest
                log.warning("the daily digest is left to another worker: %s", error)
            if (waiting := self.daily.waiting()) is not None:
                report.mails_waiting += 1
                report.transport_error = report.transport_error or waiting
        return report

    def next_deadline(self, now: datetime) -> datetime | None:
        """The earliest of: every engine's next deadline or retry, the daily digest, the next lease balance (a
        dead worker's mailboxes are taken over then), each mailbox's next poll."""
        times = [engine.next_deadline(now) for engine in self.engines.values()]
        if self.daily is not None and self._sends_daily():
            due = self.daily.due_at(now)
            times.append(due if due and due > now else None)
        if self.membership is not None and self._balanced_at is not None:
            times.append(self._balanced_at + timedelta(seconds=self.membership.balance_seconds))
        return min((when for when in times if when is not None), default=None)

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait on every mailbox's source at once (one thread each beside the first), until one reports news,
        `stop` is set or `timeout` passes. A source with news sets `stop`, which ends the other waits (the daemon
        clears it before its next wait); True when any mailbox may have new mail."""
        engines = list(self.engines.items())
        if not engines:
            stop.wait(max(timeout, 0.0))
            return False
        if len(engines) == 1:
            news = wait_for_mail(engines[0][1].source, timeout, stop)
            if news:
                self._news.add(engines[0][0])
            return news
        found = set()

        def wait_on(name: str, source: Source) -> None:
            try:
                news = wait_for_mail(source, timeout, stop)
            except Exception:  # noqa: BLE001 - a wait that breaks is a poll that comes now, for that mailbox
                log.debug("waiting for mail in mailbox %s failed", name, exc_info=True)
                news = True
            if news:
                found.add(name)
                stop.set()

        threads = [threading.Thread(target=wait_on, args=(name, engine.source), daemon=True,
                                    name=f"mailesc-wait-{name}") for name, engine in engines[1:]]
        for thread in threads:
            thread.start()
        wait_on(*(engines[0][0], engines[0][1].source))
        for thread in threads:
            thread.join()
        self._news |= found
        return bool(found)

    def use(self, setup: Setup) -> None:
        """SIGHUP: new policies and templates (`setup`: app.Setup) for every engine, and for the engines made
        later (`make_engine` is an app.EngineFactory, which makes them with its `setup`)."""
        for name, engine in self.engines.items():
            engine.use(setup.policies_of(name), setup.templates)
        self.make_engine.setup = setup
        if self.daily is not None:
            self.daily.templates = setup.templates

    def close(self) -> None:
        """Stop: give the leases back at once (the other workers take over without waiting for them to expire)
        and close every mailbox's connection."""
        if self.membership is not None:
            try:
                self.membership.release_all()
            except StoreError as error:  # they expire by themselves: lease_seconds later the others take over
                log.warning("the leases could not be given back (%s): the other workers take the mailboxes over "
                            "when they expire", error)
        for name in list(self.engines):
            self._close_engine(name)

    # -- which mailboxes, when -------------------------------------------------------------------------------

    def _due(self, now: datetime) -> list[str]:
        """The mailboxes to cycle now, in the config's order: all of them with a single mailbox or no poll
        interval; otherwise those with news, a deadline due, or a poll due."""
        held = [name for name in self.names if name in self.engines]
        if len(held) <= 1 or self.poll_every is None:
            return held
        due = []
        for name in held:
            last = self._polled.get(name)
            deadline = self.engines[name].next_deadline(now)
            if (name in self._news or last is None or now - last >= self.poll_every * 0.9
                    or (deadline is not None and deadline <= now)):
                due.append(name)
        return due

    def _balance(self, membership: Membership, now: datetime) -> None:
        """Every balance_seconds: take this worker's fair share of the mailboxes and give back what is too much;
        at every cycle: stop working a mailbox whose lease may have expired."""
        if self._balanced_at is None or now - self._balanced_at >= timedelta(seconds=membership.balance_seconds):
            self._balanced_at = now
            try:
                membership.balance(self.names)
            except StoreError as error:
                log.warning("the leases could not be balanced: %s; the mailboxes held stay worked until their "
                            "leases run out", error)
        held = membership.held()
        for name in list(self.engines):
            if name not in held:
                log.info("mailbox %s is no longer worked here (its lease went to another worker or ran out)", name,
                         extra=fields(mailbox=name))
                self._drop(name)
        for name in self.names:
            if name in held and name not in self.engines:
                try:
                    self.engines[name] = self.make_engine(name)  # loads its records
                except StoreUnavailable as error:
                    self._failed(name, str(error))
                    continue
                log.info("mailbox %s is worked here now", name, extra=fields(mailbox=name))
                self._news.add(name)  # read it at once: mail may have waited while nobody held it

    def _sends_daily(self) -> bool:
        """The daily digest goes out from one worker only: the one working the first configured mailbox."""
        return self.membership is None or self.membership.holds(self.names[0])

    def _drop(self, name: str) -> None:
        self._close_engine(name)
        self._polled.pop(name, None)
        self._news.discard(name)
        drop_box = getattr(getattr(self.membership, "store", None), "drop_box", None)
        if drop_box is not None:
            drop_box(name)  # taken again later: its records are loaded afresh

    def _close_engine(self, name: str) -> None:
        engine = self.engines.pop(name, None)
        if engine is not None:
            try:
                engine.source.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not stop the worker
                log.debug("closing the source of mailbox %s failed", name, exc_info=True)

    def _failed(self, mailbox: str, error: str) -> None:
        if self._failures.get(mailbox) != error:
            log.error("the cycle of mailbox %s failed: %s; the other mailboxes go on", mailbox, error,
                      extra=fields(mailbox=mailbox))
            self._failures[mailbox] = error

    def _recovered(self, mailbox: str) -> None:
        if self._failures.pop(mailbox, None) is not None:
            log.warning("the cycle of mailbox %s succeeded again", mailbox, extra=fields(mailbox=mailbox))


_COUNTS = [field.name for field in dataclass_fields(CycleReport) if field.type in ("int", int)]


def merged(reports: dict[str, CycleReport]) -> CycleReport:
    """One report for a cycle of several mailboxes (by name): counts added up; the errors, each named by its
    mailbox."""
    if len(reports) == 1:
        return next(iter(reports.values()))
    total = CycleReport(**{name: sum(getattr(report, name) for report in reports.values()) for name in _COUNTS})
    for field in ("source_error", "transport_error"):
        said = [f"mailbox {name}: {error}" for name, report in reports.items() if (error := getattr(report, field))]
        setattr(total, field, "; ".join(said) or None)
    return total
