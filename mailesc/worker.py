"""Every mailbox one process works, as one engine to the daemon.

A config may name many mailboxes (`[[mailbox]]`); each gets an Engine of its own (its source, its part of the
store, its team and policies). The daemon drives one Worker the way it drove one engine: a cycle cycles each
mailbox in the order of the config, the next deadline is the earliest of all, and waiting for mail waits on
every mailbox's source at once (IDLE on each). The installation-wide daily digest goes out after the mailboxes'
cycles, once per installation.

One mailbox failing (its server down, a message it cannot read) never holds back the others: its engine records
the failure in its own health, and the cycle goes on with the next mailbox."""

from __future__ import annotations

import logging
import threading
from dataclasses import fields as dataclass_fields
from datetime import datetime

from mailesc.cycle import CycleReport, Engine
from mailesc.errors import MailescError, StoreError
from mailesc.logs import fields
from mailesc.sources import wait_for_mail

log = logging.getLogger("mailesc.worker")


class Worker:
    def __init__(self, engines: list[Engine], daily=None):
        self.engines, self.daily = list(engines), daily
        self._failures: dict[str, str] = {}  # mailbox -> why its last cycle failed as a whole (logged once)

    @property
    def source(self) -> "Worker":
        """What the daemon waits on for news: this worker, which waits on every mailbox (see wait())."""
        return self

    @property
    def names(self) -> list[str]:
        return [engine.store.name for engine in self.engines]

    def cycle(self, now: datetime) -> CycleReport:
        """One cycle of every mailbox, then the daily digest. A mailbox whose cycle fails as a whole (not its
        source: that is in its report) is logged, once per reason, and the others go on; when every mailbox
        failed, the error is raised, for the daemon's backoff."""
        reports, failed = {}, None
        for engine in self.engines:
            try:
                reports[engine.store.name] = engine.cycle(now)
            except StoreError:
                raise  # the store cannot be written: running on would lose records
            except MailescError as error:
                failed = error
                self._failed(engine.store.name, str(error))
            else:
                self._recovered(engine.store.name)
        if failed is not None and not reports:
            raise failed
        report = merged(reports)
        if self.daily is not None:
            self.daily.run(now)
            if (waiting := self.daily.waiting()) is not None:
                report.mails_waiting += 1
                report.transport_error = report.transport_error or waiting
        return report

    def next_deadline(self, now: datetime) -> datetime | None:
        times = [engine.next_deadline(now) for engine in self.engines]
        if self.daily is not None:
            due = self.daily.due_at(now)
            times.append(due if due and due > now else None)
        return min((when for when in times if when is not None), default=None)

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait on every mailbox's source at once (one thread each beside the first), until one reports news,
        `stop` is set or `timeout` passes. A source with news sets `stop`, which ends the other waits (the daemon
        clears it before its next wait); True when any mailbox may have new mail."""
        sources = [engine.source for engine in self.engines]
        if len(sources) == 1:
            return wait_for_mail(sources[0], timeout, stop)
        news = []

        def wait_on(source) -> None:
            try:
                if wait_for_mail(source, timeout, stop):
                    news.append(source)
                    stop.set()
            except Exception:  # noqa: BLE001 - a wait that breaks is a poll that comes now, for that mailbox
                log.debug("waiting for mail failed", exc_info=True)
                news.append(source)
                stop.set()

        threads = [threading.Thread(target=wait_on, args=(source,), daemon=True) for source in sources[1:]]
        for thread in threads:
            thread.start()
        wait_on(sources[0])
        for thread in threads:
            thread.join()
        return bool(news)

    def use(self, policies_of, templates) -> None:
        """SIGHUP: new policies (`policies_of(mailbox name)`) and templates for every engine."""
        for engine in self.engines:
            engine.use(policies_of(engine.store.name), templates)
        if self.daily is not None:
            self.daily.templates = templates

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
