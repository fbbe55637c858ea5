"""The deadline heap: which threads a cycle looks at, and when the daemon wakes next."""

from datetime import datetime, timedelta, timezone

import pytest

from mailesc.agenda import Agenda

T0 = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# (steps, now for take_due, threads due, next wake-up after taking)
# a step is ("wake", thread, minutes or None), ("changed", thread) or ("forget", thread)
CASES = [
    ("every thread is looked at once at the start", [], 0, {"a", "b"}, None),
    ("nothing due before its time", [("take", 0), ("wake", "a", 10)], 5, set(), at(10)),
    ("due at its time", [("take", 0), ("wake", "a", 10)], 10, {"a"}, None),
    ("rescheduled: the old time is stale", [("take", 0), ("wake", "a", 10), ("wake", "a", 20)], 15, set(), at(20)),
    ("no wake-up: only a change brings it back", [("take", 0), ("wake", "a", None)], 99, set(), None),
    ("a change makes it due now", [("take", 0), ("wake", "a", 50), ("changed", "b")], 1, {"b"}, at(50)),
    ("forgotten (archived): never again", [("take", 0), ("wake", "a", 5), ("forget", "a")], 10, set(), None),
    ("earliest of many", [("take", 0), ("wake", "a", 30), ("wake", "b", 20)], 25, {"b"}, at(30)),
]


@pytest.mark.parametrize("name, steps, now, due, next_at", CASES, ids=[case[0] for case in CASES])
def test_agenda(name, steps, now, due, next_at):
    agenda = Agenda(["a", "b"])
    for step in steps:
        if step[0] == "take":
            agenda.take_due(at(step[1]))
        elif step[0] == "wake":
            agenda.wake(step[1], None if step[2] is None else at(step[2]))
        elif step[0] == "changed":
            agenda.changed(step[1])
        else:
            agenda.forget(step[1])
    assert agenda.take_due(at(now)) == due
    assert agenda.next_at(at(now)) == next_at


def test_a_changed_thread_makes_the_next_moment_now():
    agenda = Agenda()
    agenda.wake("a", at(30))
    agenda.changed("b")
    assert agenda.next_at(at(1)) == at(1)
