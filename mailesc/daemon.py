"""`mailesc run`: cycle on a schedule, wake early for the next deadline, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading

import schedule

from mailesc.clock import Clock
from mailesc.cycle import Engine
from mailesc.errors import MailescError, StoreError

log = logging.getLogger("mailesc.daemon")
MAX_SLEEP = 300.0  # seconds: wake at least this often even with nothing scheduled


class Daemon:
    def __init__(self, engine: Engine, clock: Clock, poll_seconds: float):
        self.engine, self.clock = engine, clock
        self.stopping = threading.Event()
        self.scheduler = schedule.Scheduler()
        self.scheduler.every(poll_seconds).seconds.do(self.cycle)

    def run(self) -> None:
        self._install_signal_handlers()
        log.info("mailesc started")
        self.cycle()
        while not self.stopping.is_set():
            self.scheduler.run_pending()
            deadline = self.engine.next_deadline(self.clock.now())
            if self.stopping.wait(self._seconds_to_sleep(deadline)):
                break
            if deadline is not None and self.clock.now() >= deadline:
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
        if report.fetched or report.escalations_recorded or report.mails_sent:
            log.info("cycle: %d new message(s), %d breach(es), %d mail(s) sent",
                     report.fetched, report.breaches, report.mails_sent)

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


