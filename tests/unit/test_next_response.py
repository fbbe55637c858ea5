"""next_response: a new clock each time the customer writes again after the team answered."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mailesc.model import Kind
from mailesc.sla import evaluate
from tests.unit.test_sla import DUE, RULE, T0, H, M, thread, tm

NEXT = replace(RULE, next_response=2 * H)
C, T, I = Kind.CUSTOMER, Kind.TEAM, Kind.INTERNAL


@pytest.mark.parametrize("later, now, expected", [
    # team answers at +1h; the customer writes again at +2h; nobody answers: due +4h, breached at +5h
    ([tm(T, T0 + H), tm(C, T0 + 2 * H)], T0 + 5 * H,
     [(0, T0, DUE, T0 + H, False), (1, T0 + 2 * H, T0 + 4 * H, None, True)]),
    # ... and at +3h the clock still runs
    ([tm(T, T0 + H), tm(C, T0 + 2 * H)], T0 + 3 * H,
     [(0, T0, DUE, T0 + H, False), (1, T0 + 2 * H, T0 + 4 * H, None, False)]),
    # the team answers again at +5h: the second clock was missed by one hour
    ([tm(T, T0 + H), tm(C, T0 + 2 * H), tm(T, T0 + 5 * H)], T0 + 6 * H,
     [(0, T0, DUE, T0 + H, False), (1, T0 + 2 * H, T0 + 4 * H, T0 + 5 * H, True)]),
    # two customer messages in a row: the clock starts at the first of them
    ([tm(T, T0 + H), tm(C, T0 + 2 * H), tm(C, T0 + 3 * H)], T0 + 3 * H,
     [(0, T0, DUE, T0 + H, False), (1, T0 + 2 * H, T0 + 4 * H, None, False)]),
    # three clocks: answered, answered, waiting
    ([tm(T, T0 + H), tm(C, T0 + 2 * H), tm(T, T0 + 3 * H), tm(C, T0 + 4 * H)], T0 + 4 * H + M,
     [(0, T0, DUE, T0 + H, False), (1, T0 + 2 * H, T0 + 4 * H, T0 + 3 * H, False),
      (2, T0 + 4 * H, T0 + 6 * H, None, False)]),
    # an internal forward is no answer, so the customer's chaser starts no new clock
    ([tm(I, T0 + H), tm(C, T0 + 2 * H)], T0 + 3 * H, [(0, T0, DUE, None, False)]),
    # the team answers but the customer stays quiet: one clock
    ([tm(T, T0 + H)], T0 + 9 * H, [(0, T0, DUE, T0 + H, False)]),
], ids=["waiting-and-breached", "still-running", "answered-late", "chasers", "three-clocks", "internal-is-no-answer",
        "quiet-customer"])
def test_next_response_clocks(later, now, expected):
    verdicts = evaluate(thread(*later), NEXT, now)
    assert [(v.clock, v.received_at, v.due_at, v.responded_at, v.breached) for v in verdicts] == expected


def test_without_next_response_only_the_first_response_counts():
    verdicts = evaluate(thread(tm(T, T0 + H), tm(C, T0 + 2 * H)), RULE, T0 + 9 * H)
    assert [(v.clock, v.breached) for v in verdicts] == [(0, False)]


def test_a_next_response_clock_has_its_own_ladder():
    [_, second] = evaluate(thread(tm(T, T0 + H), tm(C, T0 + 2 * H)), NEXT, T0 + 6 * H)
    assert [step.level.number for step in second.due_steps] == [1, 2]  # due +4h, level 2 two hours later
    assert second.next_at is None and second.warn_at is None
