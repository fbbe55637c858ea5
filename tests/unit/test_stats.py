"""`mailesc report` numbers on hand-built histories: every figure is counted by hand in the comments."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from mailesc import sla
from mailesc.hours import make_calendar
from mailesc.model import Breach, Kind, Status, Thread, ThreadMessage
from mailesc.policies import Policies, Rule
from mailesc.reviews import ReviewEntry, Reviews
from mailesc.reporting.queries import ReportRecords
from mailesc.reporting.statistics import build_report, percentile

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OFFICE = make_calendar("office", "UTC", {day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")})


@pytest.mark.parametrize("values, p, expected", [
    ([], 50, None),
    ([3.0], 95, 3.0),
    ([1.0, 2.0], 50, 1.5),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
    ([1.0, 2.0, 3.0, 4.0], 90, 3.7),          # 1 + 0.9 * 3 = 3.7th position: 3 + 0.7
    ([4.0, 1.0, 3.0, 2.0], 90, 3.7),          # order does not matter
    (list(range(1, 101)), 95, 95.05),
    ([0.5] * 10, 90, 0.5),
])
def test_percentiles_interpolate_like_a_spreadsheet(values, p, expected):
    assert percentile(values, p) == expected


def _rule(name: str, calendar=OFFICE) -> Rule:
    return Rule(name=name, source="test", match=None, first_response=timedelta(hours=4), calendar=calendar,
                escalate=())


def _thread(number: int, policy: str, received: datetime, answered: datetime | None, customer: str,
            breach_id: int | None = None) -> Thread:
    messages = [ThreadMessage(key=f"c{number}", folder="INBOX", message_id=f"<c{number}@x>", kind=Kind.CUSTOMER,
                              sender=customer, arrived=received)]
    if answered:
        messages.append(ThreadMessage(key=f"t{number}", folder="Sent", message_id=f"<t{number}@x>", kind=Kind.TEAM,
                                      sender="agent@example.test", arrived=answered))
    return Thread(id=f"<c{number}@x>", subject=f"thread {number}", messages=messages, policy=policy,
                  due_at=received + timedelta(hours=4), breach_ids={0: breach_id} if breach_id else {})


def _breach(number: int, thread: Thread, *, acknowledged_after_h: float | None = None) -> Breach:
    first = thread.messages[0]
    reply = thread.first_response_after(first.arrived)
    due = OFFICE.add(first.arrived, timedelta(hours=4))
    return Breach(id=number, thread=thread.id, customer=first.sender, subject=thread.subject, policy=thread.policy,
                  received_at=first.arrived, due_at=due, status=Status.RESPONDED_LATE if reply else Status.OPEN,
                  responded_at=reply.arrived if reply else None,
                  acknowledged_by="boss@example.test" if acknowledged_after_h is not None else None,
                  acknowledged_at=due + timedelta(hours=acknowledged_after_h) if acknowledged_after_h is not None
                  else None)


def _history():
    """Week of Mon 2026-11-02 (office hours 9-17 UTC):
      1 gold  Mon 09:00, answered Mon 10:00            -> 1.0 business hour, on time
      2 gold  Mon 16:00, answered Tue 11:00            -> 1 + 2 = 3.0 h, on time
      3 basic Tue 09:00, answered Tue 15:00            -> 6.0 h: breach 1, late; reviewed: staffing
      4 basic Fri 15:00, never answered                -> breach 2, acknowledged 2 h after its deadline; unreviewed
    Week of 2026-11-09: nothing. Week of 2026-11-16:
      5 gold  Wed 2026-11-18 09:00, answered 09:30     -> 0.5 h, on time
    """
    t = [_thread(1, "gold", datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC), "a@one.example"),
         _thread(2, "gold", datetime(2026, 11, 2, 16, tzinfo=UTC), datetime(2026, 11, 3, 11, tzinfo=UTC), "b@one.example"),
         _thread(3, "basic", datetime(2026, 11, 3, 9, tzinfo=UTC), datetime(2026, 11, 3, 15, tzinfo=UTC), "c@two.example",
                 breach_id=1),
         _thread(4, "basic", datetime(2026, 11, 6, 15, tzinfo=UTC), None, "c@two.example", breach_id=2),
         _thread(5, "gold", datetime(2026, 11, 18, 9, tzinfo=UTC), datetime(2026, 11, 18, 9, 30, tzinfo=UTC),
                 "a@one.example")]
    breaches = [_breach(1, t[2]), _breach(2, t[3], acknowledged_after_h=2)]
    reviews = Reviews([ReviewEntry(breach=1, at=NOW, by="alice", action="review", cause="staffing")])
    history = ReportRecords.of(t, breaches, reviews)
    return history, Policies(rules=(_rule("gold"), _rule("basic")), calendars={"office": OFFICE})


def _report(**options):
    history, policies = _history()
    return build_report(history, policies, now=NOW, review_period=timedelta(days=30), **options)


def test_totals_count_threads_responses_breaches_and_reviews():
    totals = _report()["totals"]
    assert totals == {
        "threads": 5, "responded": 4, "responded_on_time": 3, "responded_late": 1, "unanswered": 1,
        "breaches": 2, "breach_rate": 0.4,
        "first_response_p50_hours": 2.0,    # of 0.5, 1, 3, 6: between 1 and 3
        "first_response_p90_hours": 5.1,    # 3 + 0.7 * (6 - 3)
        "first_response_p95_hours": 5.55,
        "acknowledged": 1, "acknowledgement_p50_hours": 2.0, "acknowledgement_p90_hours": 2.0,
        "unreviewed": 1,
        "overdue_reviews": 0,               # breach 2 fell due on 2026-11-09: 14 days ago
    }


@pytest.mark.parametrize("by, expected", [
    ("policy", {"basic": (2, 2, 1), "gold": (3, 0, 0)}),
    ("customer", {"a@one.example": (2, 0, 0), "b@one.example": (1, 0, 0), "c@two.example": (2, 2, 1)}),
    ("weekday", {"Mon": (2, 0, 0), "Tue": (1, 1, 0), "Fri": (1, 1, 1), "Wed": (1, 0, 0)}),
    ("week", {"2026-W45": (4, 2, 1), "2026-W47": (1, 0, 0)}),
    ("cause", {"(no breach)": (3, 0, 0), "staffing": (1, 1, 0), "unreviewed": (1, 1, 1)}),
])
def test_groups_split_threads_and_breaches_the_same_way(by, expected):
    """(threads, breaches, unreviewed) per group; groups add up to the totals."""
    report = _report(by=by)
    got = {g["key"]: (g["threads"], g["breaches"], g["unreviewed"]) for g in report["groups"]}
    assert got == expected
    for metric in ("threads", "breaches", "responded", "unreviewed"):
        assert sum(g[metric] for g in report["groups"]) == report["totals"][metric]


def test_weekdays_come_in_calendar_order():
    assert [g["key"] for g in _report(by="weekday")["groups"]] == ["Mon", "Tue", "Wed", "Fri"]


def test_weekly_series_has_every_week_even_empty_ones():
    assert _report()["weekly"] == [
        {"week": "2026-W45", "start": "2026-11-02", "threads": 4, "breaches": 2, "breach_rate": 0.5},
        {"week": "2026-W46", "start": "2026-11-09", "threads": 0, "breaches": 0, "breach_rate": 0.0},
        {"week": "2026-W47", "start": "2026-11-16", "threads": 1, "breaches": 0, "breach_rate": 0.0},
    ]


def test_histogram_bins_answered_threads_by_business_hours():
    bins = {(b["from_hours"], b["to_hours"]): b["threads"] for b in _report()["response_time_histogram"]}
    assert bins[(0.5, 1)] == 1 and bins[(1, 2)] == 1 and bins[(2, 4)] == 1 and bins[(4, 8)] == 1
    assert sum(bins.values()) == 4 and bins[(48, None)] == 0


@pytest.mark.parametrize("since, until, threads, breaches", [
    (None, None, 5, 2),
    (datetime(2026, 11, 3, tzinfo=UTC), None, 3, 2),
    (None, datetime(2026, 11, 3, tzinfo=UTC), 2, 0),
    (datetime(2026, 11, 7, tzinfo=UTC), datetime(2026, 11, 17, tzinfo=UTC), 0, 0),
])
def test_the_period_counts_by_when_the_customer_wrote(since, until, threads, breaches):
    totals = _report(since=since, until=until)["totals"]
    assert (totals["threads"], totals["breaches"]) == (threads, breaches)


def test_overdue_reviews_count_after_the_review_period():
    history, policies = _history()
    later = NOW + timedelta(days=20)  # breach 2's deadline is now 34 days back
    assert build_report(history, policies, now=later, review_period=timedelta(days=30))["totals"]["overdue_reviews"] == 1


def test_causes_list_the_most_frequent_first():
    assert _report()["causes"] == [{"cause": "staffing", "breaches": 1}, {"cause": "unreviewed", "breaches": 1}]


def test_a_policy_no_longer_configured_counts_wall_clock_hours():
    history, _ = _history()
    report = build_report(history, Policies(rules=()), now=NOW, review_period=timedelta(days=30))
    # thread 2: Mon 16:00 -> Tue 11:00 is 19 wall-clock hours
    assert report["totals"]["first_response_p95_hours"] > 15


def test_an_empty_history_gives_zeros_and_no_percentiles():
    report = build_report(ReportRecords(), Policies(rules=()), now=NOW, review_period=timedelta(days=30))
    assert report["totals"]["threads"] == 0 and report["totals"]["breach_rate"] == 0.0
    assert report["totals"]["first_response_p50_hours"] is None
    assert report["weekly"] == [] and report["response_time_histogram"] == [] and report["causes"] == []


def test_the_hours_kept_with_an_answered_thread_are_the_ones_counted():
    """The engine keeps each thread's business hours when it is answered (sla.response_hours); the report reads
    them instead of running the calendar again. A thread without them (written before) is counted as before."""
    history, policies = _history()
    kept = ReportRecords([replace(f, hours=10.0) if f.customer == "a@one.example" else f for f in history.threads],
                         history.breaches, history.reviews)
    # threads 1 and 5 (customer a@) now count 10.0 h each instead of 1.0 and 0.5; 2 and 3 keep 3.0 and 6.0
    report = build_report(kept, policies, now=NOW, review_period=timedelta(days=30), by="customer")
    assert report["groups"][0]["key"] == "a@one.example" and report["groups"][0]["first_response_p50_hours"] == 10.0
    assert report["totals"]["first_response_p50_hours"] == 8.0  # 3, 6, 10, 10: between 6 and 10


@pytest.mark.parametrize("answered, expected", [
    (None, None),                                                        # unanswered: nothing to count
    (datetime(2026, 11, 2, 10, tzinfo=UTC), 1.0),                        # Mon 09:00 -> 10:00
    (datetime(2026, 11, 3, 11, tzinfo=UTC), 3.0),                        # Mon 16:00 (1 h) + Tue 09-11 (2 h)
])
def test_the_engine_keeps_business_hours_of_the_first_response(answered, expected):
    received = datetime(2026, 11, 2, 9, tzinfo=UTC) if answered is None or answered.day == 2 else \
        datetime(2026, 11, 2, 16, tzinfo=UTC)
    thread = _thread(1, "gold", received, answered, "a@one.example")
    assert sla.response_hours(thread, _rule("gold")) == expected
