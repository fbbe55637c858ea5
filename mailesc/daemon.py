"""`mailesc run`: cycle on a schedule, wake early for the next deadline or when the mailbox reports new mail
(IMAP IDLE), stop cleanly on SIGTERM/SIGINT.

Between cycles the daemon sleeps in the source's wait() (IDLE where the server offers it, else a plain sleep)
until the earliest of: the next poll, the next deadline or retry, new mail, a stop signal."""

from __future__ import annotations

import logging
import random
import signal
import threading
from datetime import datetime, timedelta

import schedule

from mailesc.clock import Clock
from mailesc.cycle import Engine
from mailesc.errors import MailescError, StoreError
from mailesc.sources import wait_for_mail

log = logging.getLogger("mailesc.daemon")
MAX_SLEEP = 300.0  # seconds: wake at least this often even with nothing scheduled
MAX_BACKOFF = 300.0  # seconds between polls of a mailbox that keeps failing


class Daemon:
    def __init__(self, engine: Engine, clock: Clock, poll_seconds: float):
        self.engine, self.clock = engine, clock
        self.stopping = threading.Event()
        self.poll_seconds = poll_seconds
        self.failed_polls = 0
        self.scheduler = schedule.Scheduler()
        self.poll_job = self.scheduler.every(poll_seconds).seconds.do(self.cycle)

    def run(self) -> None:
        self._install_signal_handlers()
        log.info("mailesc started")
        self.cycle()
        while not self.stopping.is_set():
            self.scheduler.run_pending()
            if self.stopping.is_set():
                break
            deadline = self.engine.next_deadline(self.clock.now())
            news = wait_for_mail(self.engine.source, self._seconds_to_sleep(deadline), self.stopping)
            if self.stopping.is_set():
                break
            if news:
                self.cycle()
                if not self.failed_polls:  # the mailbox was just read: the next poll can wait its full interval
                    self.poll_job.next_run = datetime.now() + timedelta(seconds=self.poll_seconds)
            elif deadline is not None and self.clock.now() >= deadline:
                self.cycle()
        log.info("mailesc stopped")

    def cycle(self) -> None:
        now = self.clock.now()
        try:
            report = self.engine.cycle(now)
        except StoreError:
            raise  # the store cannot be written: running on would lose records
        except MailescError as error:
            log.error("cycle failed: %s", error)
            return
        self._watch_mailbox(report.source_error)
        if report.fetched or report.escalations_recorded or report.mails_sent:
            log.info("cycle: %d new message(s), %d breach(es), %d mail(s) sent",
                     report.fetched, report.breaches, report.mails_sent)

    def _watch_mailbox(self, error: str | None) -> None:
        """One log line when the mailbox becomes unreachable and one when it is back; meanwhile polls back
        off (with jitter, so many daemons do not hammer a recovering server in step)."""
        if error is None:
            if self.failed_polls:
                log.warning("the mailbox is reachable again after %d failed poll(s)", self.failed_polls)
            self.failed_polls = 0
            return
        self.failed_polls += 1
        if self.failed_polls == 1:
            log.warning("%s; retrying with backoff, deadlines are still checked on what is known", error)
        delay = min(self.poll_seconds * 2 ** self.failed_polls, MAX_BACKOFF) * random.uniform(0.8, 1.2)
        self.poll_job.next_run = datetime.now() + timedelta(seconds=delay)  # schedule works in local time

    def _seconds_to_sleep(self, deadline) -> float:
        until_poll = self.scheduler.idle_seconds
        until_poll = MAX_SLEEP if until_poll is None else max(until_poll, 0.0)
        until_deadline = MAX_SLEEP if deadline is None else (deadline - self.clock.now()).total_seconds()
        return max(0.0, min(until_poll, until_deadline, MAX_SLEEP))

    def _install_signal_handlers(self) -> None:
        def stop(signum, _frame):
            log.info("received %s, stopping after the current step", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


