"""The daemon's sleep: it waits in the source (IMAP IDLE) until the next poll or deadline, cycles at once when
the source reports new mail, and falls back to a plain sleep for sources that cannot wait."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.clock import SystemClock
from mailesc.cycle import CycleReport
from mailesc.daemon import Daemon
from mailesc.errors import MailescError
from mailesc.sources import wait_for_mail


class FakeEngine:
    def __init__(self, source, deadline_in: float | None = None, stop_after: int = 3):
        self.source, self.cycles, self.stop_after = source, [], stop_after
        self.deadline = None if deadline_in is None else datetime.now(timezone.utc) + timedelta(seconds=deadline_in)
        self.daemon = None

    def cycle(self, now):
        self.cycles.append(time.monotonic())
        if len(self.cycles) >= self.stop_after:
            self.daemon.stopping.set()
        return CycleReport()

    def next_deadline(self, now):
        return self.deadline if self.deadline and self.deadline > now else None


class IdleSource:
    """Reports new mail on the second wait; records the timeouts it was given."""

    def __init__(self):
        self.timeouts = []

    def wait(self, timeout, stop):
        self.timeouts.append(timeout)
        if len(self.timeouts) == 2:
            return True
        stop.wait(min(timeout, 0.05))
        return False


def run(engine, poll_seconds=60.0):
    daemon = Daemon(engine, SystemClock(), poll_seconds)
    engine.daemon = daemon
    watchdog = threading.Timer(10, daemon.stopping.set)
    watchdog.start()
    try:
        daemon.run()
    finally:
        watchdog.cancel()
    return daemon


def test_new_mail_reported_by_the_source_runs_a_cycle_at_once():
    source = IdleSource()
    engine = FakeEngine(source, stop_after=2)
    started = time.monotonic()
    daemon = run(engine)
    assert len(engine.cycles) == 2  # the first at start, the second because the source said so
    assert engine.cycles[1] - started < 2
    assert 55 <= source.timeouts[0] <= 60  # slept toward the next poll, not a fixed short interval
    assert daemon.poll_job.next_run > datetime.now() + timedelta(seconds=50)  # the poll moved back a full interval


class QuietSource:
    """Never reports mail: waits out its timeouts."""

    def __init__(self):
        self.timeouts = []

    def wait(self, timeout, stop):
        self.timeouts.append(timeout)
        stop.wait(timeout)
        return False


def test_the_wait_ends_at_the_next_deadline_and_a_cycle_runs_then():
    source = QuietSource()
    engine = FakeEngine(source, deadline_in=0.5, stop_after=2)
    started = time.monotonic()
    run(engine)
    assert len(engine.cycles) == 2
    assert source.timeouts[0] <= 0.5
    assert 0.4 <= engine.cycles[1] - started < 3


def test_sources_without_wait_sleep_on_the_stop_event():
    stop = threading.Event()
    started = time.monotonic()
    assert wait_for_mail(object(), 0.2, stop) is False
    assert 0.15 <= time.monotonic() - started < 2
    stop.set()
    started = time.monotonic()
    assert wait_for_mail(object(), 30, stop) is False
    assert time.monotonic() - started < 1


class FailingEngine:
    """A cycle that fails as a whole, with a deadline that stays due: the setting of the old hot loop."""

    def __init__(self, reasons):
        self.source, self.reasons, self.cycles, self.daemon = QuietSource(), list(reasons), 0, None

    def cycle(self, now):
        self.cycles += 1
        reason = self.reasons[min(self.cycles, len(self.reasons)) - 1]
        if reason is None:
            self.daemon.stopping.set()  # the test ends at the first cycle that works
            return CycleReport()
        raise MailescError(reason)

    def next_deadline(self, now):
        return now - timedelta(seconds=1)


class CountingStop(threading.Event):
    """Records every pause the daemon takes and stops it after `limit` of them (no real waiting)."""

    def __init__(self, limit):
        super().__init__()
        self.pauses, self.limit = [], limit

    def wait(self, timeout=None):
        self.pauses.append(timeout)
        if len(self.pauses) >= self.limit:
            self.set()
        return self.is_set()


def test_a_failing_cycle_is_logged_once_and_backed_off(caplog):
    engine = FailingEngine(["cannot read the password file"])
    daemon = engine.daemon = Daemon(engine, SystemClock(), poll_seconds=1)
    daemon.stopping = CountingStop(limit=8)
    with caplog.at_level(logging.INFO, logger="mailesc.daemon"):
        daemon.run()
    failures = [r.getMessage() for r in caplog.records if "cycle failed" in r.getMessage()]
    assert failures == ["cycle failed: cannot read the password file; retrying with backoff"]
    backoff = [pause for pause in daemon.stopping.pauses if pause]
    assert backoff == [2, 4, 8, 16, 32, 64, 128, 256][:len(backoff)] and len(backoff) >= 4, daemon.stopping.pauses
    assert engine.cycles == len(backoff)  # one cycle per pause: no spinning on the due deadline


def test_a_new_reason_is_logged_and_success_is_logged_once(caplog):
    engine = FailingEngine(["first reason", "first reason", "second reason", None])
    daemon = engine.daemon = Daemon(engine, SystemClock(), poll_seconds=1)
    daemon.stopping = CountingStop(limit=12)
    with caplog.at_level(logging.INFO, logger="mailesc.daemon"):
        daemon.run()
    messages = [r.getMessage() for r in caplog.records if "cycle" in r.getMessage()]
    assert messages[:3] == ["cycle failed: first reason; retrying with backoff",
                            "cycle failed: second reason; retrying with backoff",
                            "a cycle succeeded again after 3 failed one(s)"], messages


class PollingEngine:
    """Cycles whose mailbox poll reports the given errors in turn (None: read fine)."""

    def __init__(self, errors):
        self.source, self.errors, self.cycles = QuietSource(), list(errors), 0

    def cycle(self, now):
        self.cycles += 1
        return CycleReport(source_error=self.errors[min(self.cycles, len(self.errors)) - 1])

    def next_deadline(self, now):
        return None


def test_a_mailbox_error_is_logged_once_per_reason_and_its_end_once(caplog):
    errors = ["cannot reach the IMAP server", "cannot reach the IMAP server", "mailbox.password_file: cannot read",
              "mailbox.password_file: cannot read", "mailbox.password_file: cannot read", None]
    daemon = Daemon(PollingEngine(errors), SystemClock(), poll_seconds=1)
    with caplog.at_level(logging.INFO, logger="mailesc.daemon"):
        for _ in errors:
            daemon.cycle()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "cannot reach the IMAP server; retrying with backoff, deadlines are still checked on what is known",
        "the mailbox still cannot be read, now: mailbox.password_file: cannot read",
        "the mailbox is reachable again after 5 failed poll(s)"]


def test_polls_of_a_failing_mailbox_really_back_off_when_the_scheduler_runs_them():
    """`schedule` sets the next run after the job returns; the backoff the failed poll asked for must win."""
    daemon = Daemon(PollingEngine(["cannot reach the IMAP server"]), SystemClock(), poll_seconds=1)
    waits = []
    for _ in range(4):
        daemon.poll_job.next_run = datetime.now() - timedelta(seconds=1)  # the poll is due
        daemon.scheduler.run_pending()
        daemon._hold_back_poll()  # what run() does after every run_pending()
        waits.append((daemon.poll_job.next_run - datetime.now()).total_seconds())
    assert daemon.failed_polls == 4
    for failed, wait in enumerate(waits, start=1):
        assert 2 ** failed * 0.8 - 0.5 <= wait <= 2 ** failed * 1.2, waits  # 2 s, 4 s, 8 s, 16 s (with jitter)



@pytest.mark.parametrize("poll_seconds, failures, pause", [
    (30, 0, 30), (30, 1, 60), (30, 3, 240), (30, 4, 300), (30, 5000, 300),
    (1.5, 1, 3.0), (1.5, 1023, 300), (1.5, 5000, 300), (60.0, 100_000, 300), (600, 3, 300),
])
def test_the_backoff_pause_doubles_to_its_cap_and_never_overflows(poll_seconds, failures, pause):
    """A float poll_seconds times 2**1024 raised OverflowError: days of a failing mailbox ended the daemon."""
    daemon = Daemon(FakeEngine(source=None), SystemClock(), poll_seconds)
    assert daemon._backoff_seconds(failures) == pause
