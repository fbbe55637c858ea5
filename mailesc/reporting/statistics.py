"""The numbers of `mailesc report`: per period and group, how threads were answered and breaches reviewed.

Threads and breaches count in the period when the customer wrote (the moment the clock started). Response
times are business hours in the calendar of the thread's policy, as kept with the thread when it was answered
(wall-clock hours if that policy is gone). The records come from either store as light rows
(reporting.queries): no thread's messages are read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Callable

from mailesc.clock import isoformat
from mailesc.model import Breach
from mailesc.reporting.queries import ReportRecords, StoredBreach, ThreadFacts
from mailesc.reviews import Reviews

if TYPE_CHECKING:  # for the annotations only: the CLI reads GROUPINGS without loading the policy machinery
    from mailesc.policies import Policies, Rule

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



@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, 100k times
class Counted:
    """A customer thread as the report counts it."""

    facts: ThreadFacts
    received: datetime
    zone: tzinfo
    response_hours: float | None  # business hours to the first team response; None: never answered
    breach: StoredBreach | Breach | None  # of the first response


@dataclass(frozen=True)
class Tally:
    """The figures of one group (or of the totals), counted in Python (tally()) or in SQL (PostgreSQL):
    metrics() turns them into the documented METRICS."""

    threads: int
    responded: int
    responded_late: int
    breached_threads: int  # threads whose first response breached
    response_percentiles: dict[int, float | None]  # 50, 90, 95 -> business hours
    breaches: int
    acknowledged: int
    acknowledgement_percentiles: dict[int, float | None]  # 50, 90 -> hours
    unreviewed: int
    overdue_reviews: int

    def metrics(self) -> dict:
        return {
            "threads": self.threads,
            "responded": self.responded,
            "responded_on_time": self.responded - self.responded_late,
            "responded_late": self.responded_late,
            "unanswered": self.threads - self.responded,
            "breaches": self.breaches,
            "breach_rate": round(self.breached_threads / self.threads, 4) if self.threads else 0.0,
            "first_response_p50_hours": self.response_percentiles[50],
            "first_response_p90_hours": self.response_percentiles[90],
            "first_response_p95_hours": self.response_percentiles[95],
            "acknowledged": self.acknowledged,
            "acknowledgement_p50_hours": self.acknowledgement_percentiles[50],
            "acknowledgement_p90_hours": self.acknowledgement_percentiles[90],
            "unreviewed": self.unreviewed,
            "overdue_reviews": self.overdue_reviews,
        }


@dataclass
class Counts:
    """Everything a report is made of, however it was counted: the totals, the groups (key -> Tally), threads
    and breached threads per local Monday, threads per response-time bin, breaches per cause."""

    totals: Tally
    groups: dict[str, Tally]
    weeks: dict[date, tuple[int, int]]
    histogram: list[int]  # one count per HISTOGRAM_EDGES bin (empty: no answered thread)
    causes: dict[str, int]


def build_report(records: ReportRecords, policies: Policies, *, now: datetime, review_period: timedelta,
                 since: datetime | None = None, until: datetime | None = None, by: str | None = None) -> dict:
    """The report of `records` (counted here, in Python: the file store, tests)."""
    return assemble(count(records, policies, now=now, review_period=review_period, since=since, until=until, by=by),
                    now=now, review_period=review_period, since=since, until=until, by=by)


def assemble(counts: Counts, *, now: datetime, review_period: timedelta, since: datetime | None,
             until: datetime | None, by: str | None) -> dict:
    """The documented report (what `report --json` prints) from its counts."""
    return {"generated_at": isoformat(now), "since": isoformat(since), "until": isoformat(until), "by": by,
            "review_period_days": round(review_period / timedelta(days=1), 2),
            "totals": counts.totals.metrics(),
            "groups": [{"key": key, **counts.groups[key].metrics()} for key in sorted(counts.groups, key=_order(by))]
            if by else [],
            "weekly": _weekly(counts.weeks), "response_time_histogram": _histogram(counts.histogram),
            "causes": _causes(counts.causes)}


def count(records: ReportRecords, policies: Policies, *, now: datetime, review_period: timedelta,
          since: datetime | None = None, until: datetime | None = None, by: str | None = None) -> Counts:
    def in_period(when: datetime) -> bool:
        return (since is None or when >= since) and (until is None or when < until)

    rules: dict[str | None, Rule | None] = {}  # each policy looked up once, not once per thread
    for thread in records.threads:
        if thread.policy not in rules:
            rules[thread.policy] = policies.get(thread.policy)
    counted = [_counted(f, records, rules[f.policy]) for f in records.threads if in_period(f.received)]
    breaches = [b for b in records.breaches.values() if in_period(b.received_at)]
    reviews = records.reviews
    groups = {}
    if by:
        key_of_thread, key_of_breach = _keys(by, reviews, policies)
        threads_by, breaches_by = _group(counted, key_of_thread), _group(breaches, key_of_breach)
        groups = {key: tally(threads_by.get(key, []), breaches_by.get(key, []), reviews, now, review_period)
                  for key in threads_by.keys() | breaches_by.keys()}
    weeks: dict[date, list[int]] = {}
    for f in counted:
        local = f.received.astimezone(f.zone).date()
        week = weeks.setdefault(local - timedelta(days=local.weekday()), [0, 0])
        week[0] += 1
        week[1] += f.breach is not None
    hours = [f.response_hours for f in counted if f.response_hours is not None]
    causes: dict[str, int] = {}
    for breach in breaches:
        cause = _cause(reviews, breach.id)
        causes[cause] = causes.get(cause, 0) + 1
    return Counts(totals=tally(counted, breaches, reviews, now, review_period), groups=groups,
                  weeks={monday: (n, breached) for monday, (n, breached) in weeks.items()},
                  histogram=[sum(1 for h in hours if h >= low and (high is None or h < high)) for low, high in _bins()]
                  if hours else [],
                  causes=causes)


def _group(items: list, key_of: Callable) -> dict[str, list]:
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(key_of(item), []).append(item)
    return groups


def _counted(facts: ThreadFacts, records: ReportRecords, rule: Rule | None) -> Counted:
    """The business hours are the ones kept with the thread when it was answered; counted here only for a
    thread without them (written before they were kept), and in wall-clock hours when its policy (`rule`) is
    gone."""
    return Counted(facts=facts, received=facts.received, zone=rule.calendar.zone if rule else timezone.utc,
                   response_hours=first_response_hours(facts, rule),
                   breach=records.breaches.get(facts.breach) if facts.breach else None)


def first_response_hours(facts: ThreadFacts, rule: Rule | None) -> float | None:
    """The first response's business hours as a report counts them: those kept with the thread, else (a
    record written before they were kept) counted in its policy's calendar; wall-clock hours when its policy
    is gone; None when it is unanswered."""
    if facts.responded is None:
        return None
    if rule is None:
        return (facts.responded - facts.received) / timedelta(hours=1)
    if facts.hours is not None:
        return facts.hours
    return rule.calendar.between(facts.received, facts.responded) / timedelta(hours=1)


def tally(facts: list[Counted], breaches: list, reviews: Reviews, now: datetime, period: timedelta) -> Tally:
    """A group's figures (the keys are documented in the README)."""
    answered = [f.response_hours for f in facts if f.response_hours is not None]
    acknowledged = [(b.acknowledged_at - b.due_at) / timedelta(hours=1) for b in breaches if b.acknowledged_at]
    unreviewed = [b for b in breaches if reviews.current(b.id) is None]
    return Tally(threads=len(facts), responded=len(answered),
                 responded_late=sum(1 for f in facts if f.response_hours is not None and f.breach is not None),
                 breached_threads=sum(1 for f in facts if f.breach is not None),
                 response_percentiles=percentiles(answered, (50, 90, 95)), breaches=len(breaches),
                 acknowledged=len(acknowledged), acknowledgement_percentiles=percentiles(acknowledged, (50, 90)),
                 unreviewed=len(unreviewed),
                 overdue_reviews=sum(1 for b in unreviewed if reviews.overdue(b, now, period)))


def percentiles(values: list[float], ps: tuple[int, ...]) -> dict[int, float | None]:
    ordered = sorted(values)
    return {p: interpolate(len(ordered), lambda j: ordered[j], p) for p in ps}


def percentile(values: list[float], p: int) -> float | None:
    """The p-th percentile, interpolated between the nearest values (like a spreadsheet's PERCENTILE.INC)."""
    return percentiles(values, (p,))[p]


def interpolate(n: int, at: Callable[[int], float], p: int) -> float | None:
    """The p-th percentile of n sorted values, `at(j)` being the j-th (from 0): statistics.quantiles' inclusive
    method (a spreadsheet's PERCENTILE.INC), rounded to 2 places. It needs only the two values around the
    position, which SQL can hand over without the others (stores/postgres.py)."""
    if n == 0:
        return None
    if n == 1:
        return round(at(0), 2)
    j, delta = percentile_position(n, p)
    return round((at(j) * (100 - delta) + at(j + 1) * delta) / 100, 2)


def percentile_position(n: int, p: int) -> tuple[int, int]:
    """(index of the value below the p-th percentile of n values, the weight of the one above, in hundredths)."""
    return divmod(p * (n - 1), 100)


def _keys(by: str, reviews: Reviews, policies: Policies) -> tuple[Callable, Callable]:
    """How to find the group of a thread and of a breach, for `--by`."""
    def zone_of(policy: str | None) -> tzinfo:
        rule = policies.get(policy)
        return rule.calendar.zone if rule else timezone.utc

    def cause(breach) -> str:
        return NO_BREACH if breach is None else _cause(reviews, breach.id)

    if by == "policy":
        return (lambda f: f.facts.policy or "(none)"), (lambda b: b.policy)
    if by == "customer":
        return (lambda f: f.facts.customer), (lambda b: b.customer)
    if by == "cause":
        return (lambda f: cause(f.breach)), cause
    if by == "mailbox":
        return (lambda f: f.facts.mailbox), (lambda b: b.mailbox)
    label = _weekday if by == "weekday" else _week
    return (lambda f: label(f.received.astimezone(f.zone))), (lambda b: label(b.received_at.astimezone(
        zone_of(b.policy))))


def _cause(reviews: Reviews, breach_id: int) -> str:
    """The root cause that stands for a breach (UNREVIEWED: none)."""
    current = reviews.current(breach_id)
    return current.cause if current is not None and current.cause is not None else UNREVIEWED


def _order(by: str) -> Callable:
    if by == "weekday":
        return WEEKDAYS.index
    return lambda key: key


def _weekday(when: datetime) -> str:
    return WEEKDAYS[when.weekday()]


def _week(when: datetime) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def _weekly(weeks: dict[date, tuple[int, int]]) -> list[dict]:
    """Threads and breached threads per ISO week, every week from the first to the last (none left out)."""
    if not weeks:
        return []
    result, monday = [], min(weeks)
    while monday <= max(weeks):
        threads, breached = weeks.get(monday, (0, 0))
        result.append({"week": _week(datetime.combine(monday, datetime.min.time())), "start": monday.isoformat(),
                       "threads": threads, "breaches": breached,
                       "breach_rate": round(breached / threads, 4) if threads else 0.0})
        monday += timedelta(days=7)
    return result


def _bins() -> list[tuple[float, float | None]]:
    return list(zip(HISTOGRAM_EDGES, HISTOGRAM_EDGES[1:] + (None,)))


def _histogram(counts: list[int]) -> list[dict]:
    return [{"from_hours": low, "to_hours": high, "threads": n} for (low, high), n in zip(_bins(), counts)]


def _causes(counts: dict[str, int]) -> list[dict]:
    most_first = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"cause": cause, "breaches": n} for cause, n in most_first]
