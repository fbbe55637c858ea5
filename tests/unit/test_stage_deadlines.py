"""The deadlines stage on its own: a thread's clock looked at `now` leaves the records it should (a warning, a
breach, its escalation levels, a breach closed as answered late) and wakes the thread again when its next level
falls due; table-driven, on a real file store with threads as intake leaves them."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from mailesc.hours import Calendar, ClosedDays
from mailesc.model import Delivery, MailKind, QueuedMail, Status
from mailesc.policies import EarlyWarning, Level
from mailesc.stages.deadlines import Deadlines
from mailesc.stages.intake import Intake
from mailesc.stages.state import CycleReport
from mailesc.stages.timing import Timing
from mailesc.store import Store
from tests.unit.stage_world import (CUSTOMER, DIRECTOR, MANAGER, T0, H, MemorySource, put, raw, rule, state_of,
                                    thread_of)

LEAD = "lead@example.test"
WARNED = rule(warning=EarlyWarning(to=(LEAD,), before=timedelta(minutes=15)))  # warned at T0 + 45 min
M = timedelta(minutes=1)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "mailesc.json") as opened:
        yield opened


def deadlines_of(state) -> Deadlines:
    return Deadlines(state, Timing(state, MemorySource()))


def acknowledged_breach(box, thread) -> None:
    """Level 1 went out at the deadline and the manager answered it."""
    breach = box.new_breach(thread=thread.id, customer=CUSTOMER, subject="Cannot log in", policy="standard",
                                    received_at=T0, due_at=T0 + H, clock=0)
    thread.breach_ids[0] = breach.id
    box.enqueue(QueuedMail(kind=MailKind.ESCALATION, message_id="<esc1@example.test>", to=[MANAGER], at=T0 + H,
                           template="escalation", level=1, delivery=Delivery.SENT), thread=thread, breach=breach)
    breach.acknowledged_by, breach.acknowledged_at = MANAGER, T0 + 90 * M


CASES = [
    # what, the rule, the team's answer, the first start / history cutoff / given breach, now,
    # the warnings recorded, (the breach's status, its escalation levels) or None, the thread's next wake-up
    ("before the warning", WARNED, None, {}, T0 + 30 * M, 0, None, T0 + 45 * M),
    ("the warning is due", WARNED, None, {}, T0 + 50 * M, 1, None, T0 + H),
    ("no warning in the rule", rule(), None, {}, T0 + 50 * M, 0, None, T0 + H),
    ("the deadline passed: level 1", rule(), None, {}, T0 + H, 0, (Status.OPEN, [1]), T0 + 3 * H),
    ("looked at late: every level due is owed", rule(), None, {}, T0 + 3 * H, 0, (Status.OPEN, [1, 2]), None),
    ("first start after both levels fell due: the current level only", rule(), None,
     {"first_start": T0 + 3 * H}, T0 + 3 * H, 0, (Status.OPEN, [2]), None),
    ("first start after level 1 fell due, before level 2: level 1", rule(), None,
     {"first_start": T0 + 2 * H}, T0 + 2 * H, 0, (Status.OPEN, [1]), T0 + 3 * H),
    ("an acknowledged breach climbs no further", rule(), None, {"acknowledged": True}, T0 + 3 * H, 0,
     (Status.OPEN, [1]), None),
    ("answered in time", WARNED, T0 + 30 * M, {}, T0 + 3 * H, 0, None, None),
    ("answered late: the breach is closed, no level sent", rule(), T0 + 2 * H, {}, T0 + 3 * H, 0,
     (Status.RESPONDED_LATE, []), None),
    ("history: mail before `since` starts no clock", WARNED, None, {"history_before": T0 + M}, T0 + 3 * H, 0, None,
     None),
    ("mail after `since` counts", rule(), None, {"history_before": T0 - M}, T0 + H, 0, (Status.OPEN, [1]),
     T0 + 3 * H),
]


@pytest.mark.parametrize("what, the_rule, answered_at, given, now, warnings, breach, wakes_at", CASES,
                         ids=[row[0] for row in CASES])
def test_a_clock_looked_at_now(store, what, the_rule, answered_at, given, now, warnings, breach, wakes_at):
    thread = thread_of(T0, answered_at=answered_at)
    store.box("default").put_thread(thread)
    if given.get("acknowledged"):
        acknowledged_breach(store.box("default"), thread)
    state = state_of(store, the_rule)  # a start over these records: every thread looked at once
    state.first_start, state.history_before = given.get("first_start"), given.get("history_before")
    report = CycleReport()
    deadlines_of(state).escalate(now, report)
    notices = [notice for notice in thread.notices if notice.kind == MailKind.WARNING]
    assert [(n.to, n.at) for n in notices] == [([LEAD], now)] * warnings and report.warnings_recorded == warnings
    records = list(state.store.breaches.values())
    if breach is None:
        assert records == [] and thread.breach_ids == {}
    else:
        [record] = records
        status, levels = breach
        assert (record.status, [e.level for e in record.escalations], thread.breach_ids) == (
            status, levels, {0: record.id})
        assert (record.received_at, record.due_at, record.customer) == (T0, T0 + H, CUSTOMER)
        new_levels = [e for e in record.escalations if e.at == now]
        assert [e.to for e in new_levels] == [[MANAGER] if e.level == 1 else [DIRECTOR] for e in new_levels]
        assert report.escalations_recorded == len(new_levels)
        assert all(state.escalations[e.message_id] is record for e in record.escalations)  # replies acknowledge
    assert state.agenda.next_at(now) == wakes_at


def test_the_ladder_climbs_at_the_wake_ups_it_sets(store):
    """Looked at only when the agenda says so: level 1 at the deadline, level 2 two hours later, once each."""
    state = state_of(store)
    thread = put(state, thread_of(T0))
    deadlines = deadlines_of(state)
    seen = []
    now = T0
    while (when := state.agenda.next_at(now)) is not None:
        now = when
        report = CycleReport()
        deadlines.escalate(now, report)
        seen.append((now, report.breaches, report.escalations_recorded))
    assert seen == [(T0, 0, 0), (T0 + H, 1, 1), (T0 + 3 * H, 0, 1)]
    [breach] = state.store.breaches.values()
    assert [(e.level, e.at) for e in breach.escalations] == [(1, T0 + H), (2, T0 + 3 * H)]
    assert thread.breach_ids == {0: breach.id}


def test_breach_ids_follow_the_deadlines(store):
    state = state_of(store)
    put(state, thread_of(T0 + 20 * M, thread_id="<late@customer.example>"))
    put(state, thread_of(T0, thread_id="<early@customer.example>"))
    deadlines_of(state).escalate(T0 + 2 * H, CycleReport())
    assert {b.thread: b.id for b in state.store.breaches.values()} == {"<early@customer.example>": 1,
                                                                      "<late@customer.example>": 2}


@pytest.mark.parametrize("policy, clock_error", [("gone", None), ("standard", "no open time")])
def test_a_thread_without_a_usable_rule_climbs_no_ladder(store, policy, clock_error):
    state = state_of(store)
    thread = thread_of(T0, policy=policy)
    thread.clock_error = clock_error
    put(state, thread)
    deadlines_of(state).escalate(T0 + 3 * H, CycleReport())
    assert state.store.breaches == {} and thread.notices == []


def test_a_level_that_can_never_be_timed_flags_the_thread_instead_of_stopping(store):
    """Open on Mondays only, and every later Monday is a holiday: level 2 (20 open hours after the deadline)
    never comes."""
    mondays = frozenset((T0 + timedelta(weeks=n)).date() for n in range(1, 200))
    ends = Calendar(name="ends", hours={0: ((time(0), None),)}, closed=ClosedDays(once=mondays))
    state = state_of(store, rule(calendar=ends, escalate=(Level(1, timedelta(0), (MANAGER,)),
                                                          Level(2, 20 * H, (DIRECTOR,)))))
    thread = put(state, thread_of(T0))
    report = CycleReport()
    deadlines_of(state).escalate(T0 + 2 * H, report)
    assert report.untimed == 1 and "no open time" in thread.clock_error and state.store.breaches == {}


def test_a_reply_taken_in_by_intake_stops_the_ladder_the_deadlines_stage_climbs(store):
    """The two stages through their shared state: intake acknowledges the breach the deadlines stage recorded."""
    state = state_of(store)
    source = MemorySource()
    timing = Timing(state, source)
    intake, deadlines = Intake(state, timing, source), Deadlines(state, timing)
    put(state, thread_of(T0))
    deadlines.escalate(T0 + H, CycleReport())
    [breach] = state.store.breaches.values()
    [level_1] = breach.escalations
    intake.ingest([raw(T0 + 90 * M, sender=MANAGER, to="escalations@example.test", subject="Re: Cannot log in",
                       in_reply_to=level_1.message_id)], T0 + 90 * M, CycleReport())
    report = CycleReport()
    deadlines.escalate(T0 + 3 * H, report)
    assert breach.acknowledged_by == MANAGER and report.escalations_recorded == 0
    assert [e.level for e in breach.escalations] == [1]
