"""hours.Calendar keeps each day's open periods (in UTC) for the next deadline: the periods, and so every
deadline, are those worked out afresh, for every calendar of test_hours (DST changes, holidays, overnight and
24:00 intervals, closed days), the first time and from what is kept; the kept days stay within their bound."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from mailesc import hours
from mailesc.hours import CLOSED_STREAK, make_calendar
from tests.unit.test_hours import BERLIN_HOURS, CALENDARS

UTC = timezone.utc
STARTS = [datetime(2025, 12, 20, 5, 17, tzinfo=UTC) + timedelta(hours=31 * n) for n in range(330)]  # ~14 months


def fresh_periods(calendar, start):
    """The open periods from `start` as hours.py worked them out before it kept days (copied from it)."""
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    closed_days = 0
    while closed_days <= CLOSED_STREAK:
        found = False
        if calendar.closed is None or day not in calendar.closed:
            for opens_at, closes_at in calendar._intervals(day):
                opens, closes = calendar._utc(day, opens_at), calendar._utc(day, closes_at)
                if closes > opens:
                    found = True
                    if closes > start:
                        yield max(opens, start), closes
        closed_days = 0 if found else closed_days + 1
        day += timedelta(days=1)


@pytest.mark.parametrize("name", sorted(CALENDARS))
def test_kept_days_give_the_periods_worked_out_afresh(name):
    calendar = CALENDARS[name]
    for _ in range(2):  # the first time fills what is kept, the second reads it
        for start in STARTS:
            expected = list(itertools.islice(fresh_periods(calendar, start), 12))
            assert list(itertools.islice(calendar._open_periods(start), 12)) == expected, start
            for length in (timedelta(minutes=1), timedelta(hours=9), timedelta(hours=50)):
                assert calendar.add(start, length) == _add_afresh(calendar, start, length), (start, length)


def _add_afresh(calendar, start, duration):
    if calendar.always_open:
        return (start + duration).astimezone(calendar.zone)
    remaining = duration
    for opens, closes in fresh_periods(calendar, start):
        if remaining <= closes - opens:
            return (opens + remaining).astimezone(calendar.zone)
        remaining -= closes - opens


def test_a_calendar_that_never_opens_still_says_so():
    never = make_calendar("never", "Europe/Berlin", {})
    for _ in range(2):
        with pytest.raises(ValueError, match="no open time"):
            never.add(STARTS[0], timedelta(hours=1))


def test_the_kept_days_stay_within_their_bound_and_change_neither_equality_nor_repr(monkeypatch):
    monkeypatch.setattr(hours, "DAYS_KEPT", 10)
    calendar = make_calendar("plain", "Europe/Berlin", BERLIN_HOURS, ["2026-06-10", "07-01"])
    twin = make_calendar("plain", "Europe/Berlin", BERLIN_HOURS, ["2026-06-10", "07-01"])
    for start in STARTS:
        assert calendar.add(start, timedelta(hours=30)) == twin.add(start, timedelta(hours=30))
        assert len(calendar.__dict__["_days"]) <= 10
    assert calendar == twin and repr(calendar) == repr(make_calendar("plain", "Europe/Berlin", BERLIN_HOURS,
                                                                     ["2026-06-10", "07-01"]))
