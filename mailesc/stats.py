"""The numbers of `mailesc report`: per period and group, how threads were answered and breaches reviewed.

Threads and breaches count in the period when the customer wrote (the moment the clock started). Response
times are business hours in the calendar of the thread's policy (wall-clock hours if that policy is gone)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Callable

from mailesc.clock import isoformat
from mailesc.history import History
from mailesc.model import Breach, Thread

if TYPE_CHECKING:  # for the annotations only: the CLI reads GROUPINGS without loading the policy machinery
    from mailesc.policies import Policies

GROUPINGS = ("policy", "cause", "customer", "mailbox", "weekday", "week")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HISTOGRAM_EDGES = (0, 0.5, 1, 2, 4, 8, 16, 24, 48)  # business hours; the last bin is "48 and more"
NO_BREACH, UNREVIEWED = "(no breach)", "unreviewed"

# Every figure of a report's totals and groups: (key, label, kind), in the order reports show them.
METRICS = (
    ("threads", "Threads opened by customers", "count"),
    ("responded", "Responded", "count"),
    ("responded_on_time", "Responded on time", "count"),
    ("responded_late", "Responded late", "count"),
    ("unanswered", "Unanswered", "count"),
    ("breaches", "Breaches (first and next responses)", "count"),
    ("breach_rate", "First-response breach rate", "percent"),
    ("first_response_p50_hours", "First response, median (business hours)", "hours"),
    ("first_response_p90_hours", "First response, 90th percentile (business hours)", "hours"),
    ("first_response_p95_hours", "First response, 95th percentile (business hours)", "hours"),
    ("acknowledged", "Breaches acknowledged by a manager", "count"),
    ("acknowledgement_p50_hours", "Deadline to acknowledgement, median", "hours"),
    ("acknowledgement_p90_hours", "Deadline to acknowledgement, 90th percentile", "hours"),
    ("unreviewed", "Breaches without a root cause", "count"),
    ("overdue_reviews", "Reviews overdue", "count"),
)



@dataclass(frozen=True)
class ThreadFacts:
    """What the report needs to know of one customer thread."""

    thread: Thread
    received: datetime
    zone: tzinfo
    response_hours: float | None  # business hours to the first team response; None: never answered
    breach: Breach | None  # of the first response


def build_report(history: History, policies: Policies, *, now: datetime, review_period: timedelta,
                 since: datetime | None = None, until: datetime | None = None, by: str | None = None) -> dict:
    def in_period(when: datetime) -> bool:
        return (since is None or when >= since) and (until is None or when < until)

    facts = [f for f in (_facts(t, history, policies) for t in history.threads.values())
             if f is not None and in_period(f.received)]
    breaches = [b for b in history.breaches.values() if in_period(b.received_at)]
    metrics = _Metrics(history, now, review_period)
    report = {"generated_at": isoformat(now), "since": isoformat(since), "until": isoformat(until), "by": by,
              "review_period_days": round(review_period / timedelta(days=1), 2),
              "totals": metrics(facts, breaches), "groups": [],
              "weekly": _weekly(facts), "response_time_histogram": _histogram(facts),
              "causes": _causes(breaches, history)}
    if by:
        key_of_thread, key_of_breach = _keys(by, history, policies)
        threads_by, breaches_by = _group(facts, key_of_thread), _group(breaches, key_of_breach)
        keys = sorted(threads_by.keys() | breaches_by.keys(), key=_order(by))
        report["groups"] = [{"key": key, **metrics(threads_by.get(key, []), breaches_by.get(key, []))}
                            for key in keys]
    return report


def _group(items: list, key_of: Callable) -> dict[str, list]:
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(key_of(item), []).append(item)
    return groups


def _facts(thread: Thread, history: History, policies: Policies) -> ThreadFacts | None:
    first = thread.first_customer_message()
    if first is None:
        return None
    rule = policies.get(thread.policy)
    reply = thread.first_response_after(first.arrived)
    hours = None
    if reply is not None:
        spent = rule.calendar.between(first.arrived, reply.arrived) if rule else reply.arrived - first.arrived
        hours = spent / timedelta(hours=1)
    breach_id = thread.breach_ids.get(0)
    return ThreadFacts(thread=thread, received=first.arrived, zone=rule.calendar.zone if rule else timezone.utc,
                       response_hours=hours, breach=history.breaches.get(breach_id) if breach_id else None)


class _Metrics:
    """METRICS for any set of threads and breaches (the keys are documented in the README)."""

    def __init__(self, history: History, now: datetime, review_period: timedelta):
        self.reviews, self.now, self.period = history.reviews, now, review_period

    def __call__(self, facts: list[ThreadFacts], breaches: list[Breach]) -> dict:
        answered = [f.response_hours for f in facts if f.response_hours is not None]
        late = sum(1 for f in facts if f.response_hours is not None and f.breach is not None)
        acknowledged = [(b.acknowledged_at - b.due_at) / timedelta(hours=1) for b in breaches if b.acknowledged_at]
        unreviewed = [b for b in breaches if self.reviews.current(b.id) is None]
        return {
            "threads": len(facts),
            "responded": len(answered),
            "responded_on_time": len(answered) - late,
            "responded_late": late,
            "unanswered": len(facts) - len(answered),
            "breaches": len(breaches),
            "breach_rate": round(sum(1 for f in facts if f.breach is not None) / len(facts), 4) if facts else 0.0,
            "first_response_p50_hours": percentile(answered, 50),
            "first_response_p90_hours": percentile(answered, 90),
            "first_response_p95_hours": percentile(answered, 95),
            "acknowledged": len(acknowledged),
            "acknowledgement_p50_hours": percentile(acknowledged, 50),
            "acknowledgement_p90_hours": percentile(acknowledged, 90),
            "unreviewed": len(unreviewed),
            "overdue_reviews": sum(1 for b in unreviewed if self.reviews.overdue(b, self.now, self.period)),
        }


def percentile(values: list[float], p: int) -> float | None:
    """The p-th percentile, interpolated between the nearest values (like a spreadsheet's PERCENTILE.INC)."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 2)


def _keys(by: str, history: History, policies: Policies) -> tuple[Callable, Callable]:
    """How to find the group of a thread and of a breach, for `--by`."""
    def zone_of(policy: str | None) -> tzinfo:
        rule = policies.get(policy)
        return rule.calendar.zone if rule else timezone.utc

    def cause(breach: Breach | None) -> str:
        if breach is None:
            return NO_BREACH
        current = history.reviews.current(breach.id)
        return current.cause if current else UNREVIEWED

    if by == "policy":
        return (lambda f: f.thread.policy or "(none)"), (lambda b: b.policy)
    if by == "customer":
        return (lambda f: f.thread.first_customer_message().sender), (lambda b: b.customer)
    if by == "cause":
        return (lambda f: cause(f.breach)), cause
    if by == "mailbox":
        return (lambda f: f.thread.mailbox), (lambda b: b.mailbox)
    label = _weekday if by == "weekday" else _week
    return (lambda f: label(f.received.astimezone(f.zone))), (lambda b: label(b.received_at.astimezone(
        zone_of(b.policy))))


def _order(by: str) -> Callable:
    if by == "weekday":
        return WEEKDAYS.index
    return lambda key: key


def _weekday(when: datetime) -> str:
    return WEEKDAYS[when.weekday()]


def _week(when: datetime) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def _weekly(facts: list[ThreadFacts]) -> list[dict]:
    """Threads and breached threads per ISO week, every week from the first to the last (none left out)."""
    if not facts:
        return []
    mondays: dict[date, list[ThreadFacts]] = {}
    for f in facts:
        local = f.received.astimezone(f.zone).date()
        mondays.setdefault(local - timedelta(days=local.weekday()), []).append(f)
    weeks, monday = [], min(mondays)
    while monday <= max(mondays):
        week = mondays.get(monday, [])
        breached = sum(1 for f in week if f.breach is not None)
        weeks.append({"week": _week(datetime.combine(monday, datetime.min.time())), "start": monday.isoformat(),
                      "threads": len(week), "breaches": breached,
                      "breach_rate": round(breached / len(week), 4) if week else 0.0})
        monday += timedelta(days=7)
    return weeks


def _histogram(facts: list[ThreadFacts]) -> list[dict]:
    hours = [f.response_hours for f in facts if f.response_hours is not None]
    if not hours:
        return []
    bins = list(zip(HISTOGRAM_EDGES, HISTOGRAM_EDGES[1:] + (None,)))
    return [{"from_hours": low, "to_hours": high,
             "threads": sum(1 for h in hours if h >= low and (high is None or h < high))} for low, high in bins]


def _causes(breaches: list[Breach], history: History) -> list[dict]:
    counts: dict[str, int] = {}
    for breach in breaches:
        current = history.reviews.current(breach.id)
        cause = current.cause if current else UNREVIEWED
        counts[cause] = counts.get(cause, 0) + 1
    most_first = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"cause": cause, "breaches": n} for cause, n in most_first]
