"""SIGHUP in the daemon's loop: the reload runs between two steps, a refused one is logged line by line and the
daemon goes on; a stop set by anyone ends a wait at once. (tests/integration/test_logging.py sends real signals.)"""

from __future__ import annotations

import logging
import threading

from mailesc.clock import SystemClock
from mailesc.cycle import CycleReport
from mailesc.daemon import Daemon
from mailesc.errors import ConfigError


class Engine:
    def __init__(self, source):
        self.source, self.cycles = source, 0

    def cycle(self, now):
        self.cycles += 1
        return CycleReport()

    def next_deadline(self, now):
        return None


class Source:
    """Plays one action per wait (a SIGHUP, a stop), then waits on the event it is given like IMAP IDLE does;
    records whether each wait ended because that event was set."""

    def __init__(self, actions):
        self.actions, self.ended_by_event, self.daemon = list(actions), [], None

    def wait(self, timeout, stop):
        action = self.actions.pop(0) if self.actions else "stop"
        if action == "hangup":  # what the SIGHUP handler does
            self.daemon.hangup.set()
            self.daemon.wake.set()
        elif action == "stop":
            threading.Timer(0.05, self.daemon.stopping.set).start()  # from another thread, while waiting
        self.ended_by_event.append(stop.wait(min(timeout, 5)))  # a wait nothing ends fails the test, not hangs it
        return False


def run(actions, reload):
    source = Source(actions)
    daemon = Daemon(Engine(source), SystemClock(), poll_seconds=3600.0, reload=reload)
    source.daemon = daemon
    watchdog = threading.Timer(20, daemon.stopping.set)
    watchdog.start()
    try:
        daemon.run()
    finally:
        watchdog.cancel()
    return daemon, source


class Reloads:
    """Refuses the first reload with two problems, accepts the next."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls == 1:
            raise ConfigError.many([("policies/rules.toml", "rule[0].first_response", "'soon' is not a duration"),
                                    ("policies/rules.toml", "rule[1].calendar", "unknown calendar 'x'")])
        return "2 rule(s) from policies: a, b"


def messages(caplog, level=None):
    return [r.getMessage() for r in caplog.records if r.name == "mailesc.daemon" and level in (None, r.levelno)]


def test_a_refused_reload_is_logged_per_problem_and_the_next_one_is_taken(caplog):
    caplog.set_level(logging.INFO, logger="mailesc")
    reloads = Reloads()

    daemon, source = run(["hangup", "hangup", "stop"], reloads)

    assert reloads.calls == 2
    assert messages(caplog, logging.ERROR) == [
        "reload refused, the policies and templates in use stay: policies/rules.toml: rule[0].first_response: "
        "'soon' is not a duration",
        "reload refused, the policies and templates in use stay: policies/rules.toml: rule[1].calendar: "
        "unknown calendar 'x'"]
    said = messages(caplog)
    assert said.count("received SIGHUP: reloading the policies and templates") == 2
    assert "reloaded: 2 rule(s) from policies: a, b" in said
    assert said[-1] == "mailesc stopped"
    assert source.ended_by_event == [True, True, True]  # each SIGHUP and the stop ended the wait


def test_a_reload_that_breaks_unexpectedly_leaves_the_daemon_running(caplog):
    caplog.set_level(logging.INFO, logger="mailesc")

    def broken():
        raise KeyError("calendar")

    daemon, source = run(["hangup", "hangup", "stop"], broken)

    errors = messages(caplog, logging.ERROR)
    assert errors == ["reload failed, the policies and templates in use stay: internal error: KeyError: 'calendar'"] * 2
    assert messages(caplog)[-1] == "mailesc stopped"


def test_without_a_reload_a_sighup_is_said_and_ignored(caplog):
    caplog.set_level(logging.INFO, logger="mailesc")
    run(["hangup", "stop"], None)
    assert "received SIGHUP: this daemon has nothing to reload" in messages(caplog, logging.WARNING)


def test_a_stop_set_by_the_program_ends_a_wait_at_once():
    daemon, source = run(["stop"], None)
    assert source.ended_by_event == [True] and daemon.stopping.is_set()
