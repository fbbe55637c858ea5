"""First-response clocks: pure functions of (thread, rule, now). No mail, no store, no system clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailesc.model import Thread
from mailesc.policies import Level, Rule


@dataclass(frozen=True)
class Step:
    """One rung of the ladder with the moment it falls due."""

    level: Level
    at: datetime


@dataclass(frozen=True)
class Verdict:
    received_at: datetime
    due_at: datetime
    responded_at: datetime | None
    breached: bool  # the deadline passed (by `now`) before any response
    warn_due: bool  # the warning time has come, the deadline has not, and nobody answered
    warn_at: datetime | None
    due_steps: tuple[Step, ...]  # levels that are due at `now` and may be sent (no response yet)
    next_at: datetime | None  # the next moment this thread needs looking at, if any


def ladder(rule: Rule, due_at: datetime) -> list[Step]:
    return [Step(level, rule.calendar.add(due_at, level.after)) for level in rule.escalate]


def evaluate(thread: Thread, rule: Rule, now: datetime) -> Verdict | None:
    """Where the thread's first-response clock stands at `now`; None if no clock runs for it."""
    first = thread.first_customer_message()
    if first is None or thread.due_at is None:
        return None
    response = thread.first_response_after(first.arrived)
    responded_at = response.arrived if response else None
    due_at, warn_at = thread.due_at, rule.warn_at(first.arrived)
    if responded_at is not None:
        return Verdict(first.arrived, due_at, responded_at, responded_at > due_at, False, warn_at, (), None)
    steps = ladder(rule, due_at)
    upcoming = [when for when in (warn_at, due_at, *(step.at for step in steps)) if when and when > now]
    return Verdict(
        received_at=first.arrived, due_at=due_at, responded_at=None, breached=now >= due_at,
        warn_due=warn_at is not None and warn_at <= now < due_at, warn_at=warn_at,
        due_steps=tuple(step for step in steps if step.at <= now), next_at=min(upcoming, default=None))
