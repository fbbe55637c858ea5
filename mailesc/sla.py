"""First-response clocks: pure functions of (thread, rule, now). No mail, no store, no system clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailesc.model import Thread
from mailesc.policies import Level, Rule


@dataclass(frozen=True)
class Step:
    """One rung of the ladder with the moment it falls due."""

    level: Level
    at: datetime


@dataclass(frozen=True)
class Verdict:
    clock: int  # 0: the first response; 1, 2, ...: next responses
    received_at: datetime  # when the customer message that started this clock arrived
    due_at: datetime
    responded_at: datetime | None
    breached: bool  # the deadline passed (by `now`) before any response
    warn_due: bool  # the warning time has come, the deadline has not, and nobody answered
    warn_at: datetime | None
    due_steps: tuple[Step, ...]  # levels that are due at `now` and may be sent (no response yet)
    next_at: datetime | None  # the next moment this thread needs looking at, if any


def ladder(rule: Rule, due_at: datetime) -> list[Step]:
    return [Step(level, rule.calendar.add(due_at, level.after)) for level in rule.escalate]


def evaluate(thread: Thread, rule: Rule, now: datetime) -> list[Verdict]:
    """Where each of the thread's clocks stands at `now`: the first response, then (with `next_response`)
    one more each time the customer writes again after the team answered. Empty if no clock runs."""
    first = thread.first_customer_message()
    if first is None or thread.due_at is None:
        return []
    verdicts = [_verdict(thread, rule, 0, first.arrived, thread.due_at, rule.warn_at(first.arrived), now)]
    while rule.next_response is not None and (answered := verdicts[-1].responded_at) is not None:
        again = thread.first_customer_message_after(answered)
        if again is None:
            break
        due = rule.calendar.add(again.arrived, rule.next_response)
        verdicts.append(_verdict(thread, rule, len(verdicts), again.arrived, due, None, now))
    return verdicts


def _verdict(thread: Thread, rule: Rule, clock: int, started: datetime, due_at: datetime,
             warn_at: datetime | None, now: datetime) -> Verdict:
    response = thread.first_response_after(started)
    if response is not None:
        return Verdict(clock, started, due_at, response.arrived, response.arrived > due_at, False, warn_at, (), None)
    steps = ladder(rule, due_at)
    upcoming = [when for when in (warn_at, due_at, *(step.at for step in steps)) if when and when > now]
    return Verdict(
        clock=clock, received_at=started, due_at=due_at, responded_at=None, breached=now >= due_at,
        warn_due=warn_at is not None and warn_at <= now < due_at, warn_at=warn_at,
        due_steps=tuple(step for step in steps if step.at <= now), next_at=min(upcoming, default=None))


def response_hours(thread: Thread, rule: Rule | None) -> float | None:
    """Business hours from the thread's first customer message to the first team response after it, in the
    calendar of `rule` (wall-clock hours without one: its policy is gone); None while it is unanswered. The
    engine keeps it on the thread (Thread.response_hours) and reports read it back."""
    first = thread.first_customer_message()
    reply = thread.first_response_after(first.arrived) if first is not None else None
    if first is None or reply is None:
        return None
    spent = rule.calendar.between(first.arrived, reply.arrived) if rule else reply.arrived - first.arrived
    return spent / timedelta(hours=1)
