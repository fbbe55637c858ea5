"""`mailesc run`: cycle on a schedule, wake early for the next deadline or when the mailbox reports new mail
(IMAP IDLE), stop cleanly on SIGTERM/SIGINT, reload the policies and templates on SIGHUP.

Between cycles the daemon sleeps in the source's wait() (IDLE where the server offers it, else a plain sleep)
until the earliest of: the next poll, the next deadline or retry, new mail, a signal. Signal handlers only set
flags; the loop does the work between two steps, so a reload never lands in the middle of a cycle."""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time
from datetime import datetime, timedelta
from typing import Callable

import schedule

from mailesc.clock import Clock
from mailesc.cycle import Engine
from mailesc.worker import Worker
from mailesc.errors import MailescError, StoreError, StoreUnavailable
from mailesc.logs import detail, fields
from mailesc.sources import wait_for_mail

log = logging.getLogger("mailesc.daemon")
MAX_SLEEP = 300.0  # seconds: wake at least this often even with nothing scheduled
MAX_BACKOFF = 300.0  # seconds between polls of a mailbox that keeps failing


class Daemon:
    def __init__(self, engine: Engine | Worker, clock: Clock, poll_seconds: float,
                 reload: Callable[[], str] | None = None):
        """`engine`: what a cycle runs, an Engine or a Worker (every mailbox of the config). `reload` loads the policies and templates again and puts them in use, returning what it loaded;
        it raises a MailescError (and changes nothing) when they are not valid."""
        self.engine, self.clock, self.reload = engine, clock, reload
        self.wake = threading.Event()  # ends the wait for mail early: set by a stop and by SIGHUP
        self.stopping = _Stop(self.wake)
        self.hangup = threading.Event()  # SIGHUP came: reload between two steps
        self.poll_seconds = poll_seconds
        self.failed_polls = 0
        self.last_poll_error: str | None = None
        self.backoff_until: datetime | None = None  # no poll before this while the mailbox keeps failing
        self.failed_cycles = 0  # cycles that failed as a whole, and the last reason
        self.last_failure: str | None = None
        self.scheduler = schedule.Scheduler()
        # schedule annotates the interval as int, but it takes the float poll_seconds alike (it makes a timedelta)
        self.poll_job = self.scheduler.every(poll_seconds).seconds.do(self.cycle)  # type: ignore[arg-type]

    def run(self) -> None:
        self._install_signal_handlers()
        log.info("mailesc started")
        self.cycle()
        while not self.stopping.is_set():
            self.scheduler.run_pending()
            self._hold_back_poll()
            self._reload_if_asked()
            if self.stopping.is_set():
                break
            deadline = self.engine.next_deadline(self.clock.now())
            seconds = self._seconds_to_sleep(deadline)
            log.debug("waiting up to %.1f s for new mail (next deadline %s)", seconds,
                      deadline.isoformat() if deadline else "none")
            news = wait_for_mail(self.engine.source, seconds, self.wake)
            if self.stopping.is_set():
                break
            if self.hangup.is_set():
                continue  # reload first; the loop comes back here for the deadline
            if news:
                self.cycle()
                if not self.failed_polls:  # the mailbox was just read: the next poll can wait its full interval
                    self.poll_job.next_run = datetime.now() + timedelta(seconds=self.poll_seconds)
            elif deadline is not None and self.clock.now() >= deadline:
                self.cycle()
        log.info("mailesc stopped")

    def cycle(self) -> None:
        now = self.clock.now()
        started = time.monotonic()
        try:
            report = self.engine.cycle(now)
        except StoreUnavailable as error:  # the database is out of reach: nothing was written, try again later
            self._cycle_failed(str(error))
            return
        except StoreError:
            raise  # the store cannot be written: running on would lose records
        except MailescError as error:
            self._cycle_failed(str(error))
            return
        if self.failed_cycles:
            log.warning("a cycle succeeded again after %d failed one(s)", self.failed_cycles)
            self.failed_cycles, self.last_failure = 0, None
        self._watch_mailbox(report.source_error)
        counts = {"fetched": report.fetched, "threads_opened": report.threads_opened, "breaches": report.breaches,
                  "escalations_recorded": report.escalations_recorded, "mails_sent": report.mails_sent,
                  "mails_waiting": report.mails_waiting, "quarantined": report.quarantined}
        eventful = report.fetched or report.escalations_recorded or report.mails_sent
        summary = fields if eventful else detail  # an idle cycle is one line from -v on, and none without it
        log.info("cycle: %d new message(s), %d thread(s) opened, %d breach(es), %d escalation(s) recorded, "
                 "%d mail(s) sent, %d waiting, %d quarantined", *counts.values(),
                 extra=summary(**counts, seconds=round(time.monotonic() - started, 3)))

    def _reload_if_asked(self) -> None:
        """After SIGHUP: load the policies and templates again; the new ones are used only when valid,
        otherwise the ones in use stay (and the log says why)."""
        self.wake.clear()
        if self.stopping.is_set():
            self.wake.set()  # a stop that came meanwhile must still end the next wait at once
        if not self.hangup.is_set():
            return
        self.hangup.clear()
        if self.reload is None:
            log.warning("received SIGHUP: this daemon has nothing to reload")
            return
        log.info("received SIGHUP: reloading the policies and templates")
        try:
            loaded = self.reload()
        except MailescError as error:
            for problem in str(error).splitlines():
                log.error("reload refused, the policies and templates in use stay: %s", problem,
                          extra=fields(reload="refused"))
            return
        except Exception as error:  # a reload must never end the daemon: what runs now keeps running
            log.error("reload failed, the policies and templates in use stay: internal error: %s: %s",
                      type(error).__name__, error, extra=fields(reload="failed"))
            log.debug("reload failed", exc_info=True)
            return
        log.info("reloaded: %s", loaded, extra=fields(reload="done"))

    def _backoff_seconds(self, failures: int) -> float:
        """`poll_seconds` doubled per failure, at most MAX_BACKOFF. The doublings are capped before the power
        (as in outbox.retry_time): a float poll_seconds times 2**1024 would raise OverflowError after days of a
        mailbox that keeps failing."""
        doublings = max(0, math.ceil(math.log2(MAX_BACKOFF / self.poll_seconds))) if self.poll_seconds > 0 else 0
        return min(self.poll_seconds * 2 ** min(failures, doublings), MAX_BACKOFF)

    def _cycle_failed(self, error: str) -> None:
        """A cycle that failed as a whole is logged once (again only when the reason changes) and waited out
        with a growing pause: a deadline that stays due must not make the daemon spin."""
        self.failed_cycles += 1
        if error != self.last_failure:
            log.error("cycle failed: %s; retrying with backoff", error)
            self.last_failure = error
        self.stopping.wait(self._backoff_seconds(self.failed_cycles))

    def _watch_mailbox(self, error: str | None) -> None:
        """One log line when the mailbox becomes unreachable, one if the reason changes meanwhile (the server is
        back but the password file is gone) and one when it is back; meanwhile polls back off (with jitter, so
        many daemons do not hammer a recovering server in step)."""
        if error is None:
            if self.failed_polls:
                log.warning("the mailbox is reachable again after %d failed poll(s)", self.failed_polls)
            self.failed_polls, self.last_poll_error = 0, None
            return
        self.failed_polls += 1
        if self.failed_polls == 1:
            log.warning("%s; retrying with backoff, deadlines are still checked on what is known", error)
        elif error != self.last_poll_error:
            log.warning("the mailbox still cannot be read, now: %s", error)
        self.last_poll_error = error
        delay = self._backoff_seconds(self.failed_polls) * random.uniform(0.8, 1.2)
        self.backoff_until = datetime.now() + timedelta(seconds=delay)  # schedule works in local time
        self._hold_back_poll()

    def _hold_back_poll(self) -> None:
        """Keep the next poll behind the backoff. Needed after every scheduled run too: `schedule` sets a job's
        next run (a plain interval) after the job returns, over what the failed poll asked for."""
        if self.failed_polls and self.backoff_until and self.poll_job.next_run < self.backoff_until:
            self.poll_job.next_run = self.backoff_until

    def _seconds_to_sleep(self, deadline) -> float:
        until_poll = self.scheduler.idle_seconds
        until_poll = MAX_SLEEP if until_poll is None else max(until_poll, 0.0)
        until_deadline = MAX_SLEEP if deadline is None else (deadline - self.clock.now()).total_seconds()
        return max(0.0, min(until_poll, until_deadline, MAX_SLEEP))

    def _install_signal_handlers(self) -> None:
        def stop(signum, _frame):
            log.info("received %s, stopping after the current step", signal.Signals(signum).name)
            self.stopping.set()

        def hangup(_signum, _frame):
            self.hangup.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hangup)


class _Stop(threading.Event):
    """The stop flag: setting it (a signal, or a caller) also ends a wait for mail at once."""

    def __init__(self, wake: threading.Event):
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake.set()
