"""Business-time arithmetic. Every deadline in mailesc is computed here, nowhere else.

A calendar is a time zone, opening hours per weekday and closed days. Open time is counted in real
elapsed time, so a night on which the clocks change is as long as it really is; opening hours are
wall-clock times in the calendar's zone (08:00 is 08:00 in summer and in winter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Iterator
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOSED_STREAK = 3 * 366  # this many closed days in a row: the calendar never opens (again)
DAYS_KEPT = 4096  # days whose open periods a calendar keeps (see Calendar._day_periods)

Interval = tuple[time, time | None]  # None as the end means midnight at the end of the day (24:00)


@dataclass(frozen=True)
class ClosedDays:
    """Public holidays and the team's own closed days."""

    once: frozenset[date] = frozenset()  # "2026-04-03"
    yearly: frozenset[tuple[int, int]] = frozenset()  # "12-24": (month, day)
    public: holidays.HolidayBase | None = field(default=None, compare=False)  # from the `holidays` package

    def __contains__(self, day: date) -> bool:
        return day in self.once or (day.month, day.day) in self.yearly or (self.public is not None and day in self.public)


@dataclass(frozen=True)
class Calendar:
    name: str = "always"
    zone: tzinfo = timezone.utc
    hours: dict[int, tuple[Interval, ...]] | None = None  # weekday (0 = Monday) -> open intervals; None: always
    closed: ClosedDays | None = None

    @property
    def always_open(self) -> bool:
        return self.hours is None and self.closed is None

    @property
    def never_open(self) -> bool:
        """Opening hours on no day (`hours = {}`): no deadline in this calendar could ever fall due."""
        return self.hours is not None and not any(self.hours.values())

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of open time after `start`, at the calendar's offset.

        Starting in closed time, the clock starts at the next opening; a zero duration is `start` itself."""
        start = start.astimezone(timezone.utc)  # arithmetic in UTC: real elapsed time, not wall-clock time
        if duration <= timedelta(0):
            return start.astimezone(self.zone)
        if self.always_open:
            return (start + duration).astimezone(self.zone)
        remaining = duration
        for opens, closes in self._open_periods(start):
            length = closes - opens
            if remaining <= length:
                return (opens + remaining).astimezone(self.zone)
            remaining -= length
        raise ValueError(f"calendar {self.name!r} has no open time within {CLOSED_STREAK} days after "
                         f"{start.isoformat()}")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time from `start` to `end` (negative when `end` is before `start`)."""
        start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
        if end < start:
            return -self.between(end, start)
        if self.always_open:
            return end - start
        total = timedelta(0)
        for opens, closes in self._open_periods(start):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total

    def _open_periods(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open periods from `start` (UTC) on, in order, as UTC datetimes (the first one cut at `start`).
        Ends after CLOSED_STREAK days in a row without any open time."""
        day = start.astimezone(self.zone).date() - timedelta(days=1)  # a period may span midnight in UTC
        closed_days = 0
        while closed_days <= CLOSED_STREAK:
            periods = self._day_periods(day)
            for opens, closes in periods:
                if closes > start:
                    yield max(opens, start), closes
            closed_days = 0 if periods else closed_days + 1
            day += timedelta(days=1)

    def _day_periods(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open periods of `day` as UTC datetimes (none on a closed day), kept per calendar for the next
        deadline: every clock of a replay or a busy mailbox asks for the same few weeks again, and working
        them out (zone conversions, holiday look-ups) was several per cent of a replay. A pure function of the day;
        at most DAYS_KEPT days are kept (then it starts afresh)."""
        kept = self.__dict__.get("_days")
        if kept is None:
            kept = {}
            object.__setattr__(self, "_days", kept)  # frozen: a cache, no field (equality and repr stay)
        periods = kept.get(day)
        if periods is None:
            periods = self._work_out_periods(day)
            if len(kept) >= DAYS_KEPT:
                kept.clear()
            kept[day] = periods
        return periods

    def _work_out_periods(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        if self.closed is not None and day in self.closed:
            return ()
        utc = ((self._utc(day, opens_at), self._utc(day, closes_at)) for opens_at, closes_at in self._intervals(day))
        return tuple((opens, closes) for opens, closes in utc if closes > opens)

    def _intervals(self, day: date) -> tuple[Interval, ...]:
        if self.hours is None:
            return ((time(0), None),)
        return self.hours.get(day.weekday(), ())

    def _utc(self, day: date, wall: time | None) -> datetime:
        """A wall-clock time of `day` in UTC. In a DST gap it is read with the offset before the change
        (02:30 on a spring-forward night is 03:30); in a repeated hour, the first occurrence counts."""
        if wall is None:
            day, wall = day + timedelta(days=1), time(0)
        return datetime.combine(day, wall, tzinfo=self.zone).astimezone(timezone.utc)


ALWAYS_OPEN = Calendar()


class CalendarError(ValueError):
    """Every problem found in one calendar's values, each as (key, what is wrong), so that a policy file's
    author sees them all at once."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{key}: {text}" if key else text for key, text in problems))


def make_calendar(name: str, zone: str = "UTC", hours: dict[str, str] | None = None, holidays_list=(),
                  country: str | None = None, subdivision: str | None = None) -> Calendar:
    """A calendar from policy-file values; raises CalendarError (a ValueError) naming every problem by key."""
    problems: list[tuple[str, str]] = []

    def attempt(key: str, make, *args):
        try:
            return make(*args)
        except (ValueError, TypeError, AttributeError) as error:
            problems.append((key, str(error)))
            return None

    timezone_ = attempt("timezone", _zone, zone)
    parsed = None if hours is None else attempt("hours", _hours_table, hours, problems)
    if not isinstance(holidays_list, (list, tuple)):
        problems.append(("holidays", 'must be a list like ["12-24", "2026-04-03"]'))
        holidays_list = ()
    days = [day for text in holidays_list if (day := attempt("holidays", _holiday, text)) is not None]
    public = None
    if country is not None:
        public = attempt("holidays_country", _public_holidays, country, None)
        if public is not None and subdivision is not None:
            public = attempt("holidays_subdiv", _public_holidays, country, subdivision)
    elif subdivision is not None:
        problems.append(("holidays_subdiv", "only means something with holidays_country"))
    if problems:
        raise CalendarError(problems)
    closed = None
    if days or country:
        closed = ClosedDays(once=frozenset(d for d in days if isinstance(d, date)),
                            yearly=frozenset(d for d in days if isinstance(d, tuple)), public=public)
    return Calendar(name=name, zone=timezone_, hours=parsed, closed=closed)


def _hours_table(hours, problems: list[tuple[str, str]]) -> dict[int, tuple[Interval, ...]] | None:
    """`hours` day by day, so that every bad day is named (each as `hours.DAY`)."""
    if not isinstance(hours, dict):
        raise TypeError('must be a table like { mon = "08:00-18:00" }')
    parsed = {}
    for day, text in hours.items():
        try:
            parsed.update(parse_hours({day: text}))
        except (ValueError, TypeError) as error:
            problems.append((f"hours.{day}", str(error)))
    return parsed


def _holiday(text: str | date) -> date | tuple[int, int]:
    if isinstance(text, date) and not isinstance(text, datetime):
        return text  # TOML reads an unquoted 2026-04-03 as a date
    try:
        if not isinstance(text, str):
            raise TypeError(text)  # a TOML time or number: no day
        if len(text) == 5:  # MM-DD, every year
            month, day = map(int, text.split("-"))
            date(2024, month, day)  # a leap year: 02-29 is allowed
            return month, day
        return date.fromisoformat(text)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not a holiday; write MM-DD (every year) or YYYY-MM-DD (once)") from None


def _public_holidays(country: str, subdivision: str | None) -> holidays.HolidayBase:
    import holidays  # loads slowly (every country's rules): only for a calendar with holidays_country

    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(f"the holidays package knows no country {country!r} "
                         f"(use an ISO 3166 code such as DE, US, AU)")
    if subdivision is not None and subdivision not in supported[country]:
        raise ValueError(f"{country} has no subdivision {subdivision!r} "
                         f"(it has: {', '.join(supported[country])})")
    return holidays.country_holidays(country, subdiv=subdivision)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError, TypeError):
        raise ValueError(f"{name!r} is not an IANA time zone name (like Europe/Berlin)") from None


def parse_hours(hours: dict[str, str]) -> dict[int, tuple[Interval, ...]]:
    """{"mon": "08:00-18:00", "fri": "08:00-13:00,14:00-18:00"} -> weekday -> intervals."""
    parsed = {}
    for day, text in hours.items():
        if day not in WEEKDAYS:
            raise ValueError(f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}")
        intervals = tuple(_interval(part.strip()) for part in str(text).split(",") if part.strip())
        ordered = sorted(intervals, key=lambda i: i[0])
        for (_, end), (begin, _) in zip(ordered, ordered[1:]):
            if end is None or end > begin:
                raise ValueError(f"{day}: the intervals in {text!r} overlap")
        parsed[WEEKDAYS.index(day)] = tuple(ordered)
    return parsed


def _interval(text: str) -> Interval:
    try:
        begin, end = (part.strip() for part in text.split("-"))
        opens, closes = _clock(begin), (None if end == "24:00" else _clock(end))
    except ValueError:
        raise ValueError(f"{text!r} is not an interval like 08:00-18:00") from None
    if closes is not None and closes <= opens:
        raise ValueError(f"{text!r} closes before it opens")
    return opens, closes


def _clock(text: str) -> time:
    hour, minute = text.split(":")
    if len(minute) != 2:
        raise ValueError(text)
    return time(int(hour), int(minute))
