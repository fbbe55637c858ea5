"""Regressions found by hand computation, each fixed in mailesc.hours:

1. The always-open shortcut computed on the wall clock, an hour off across a DST change.
2. `between` decided "reversed?" on the wall clock, ignoring `fold`, inside a repeated hour.
3. `between` stopped counting after three years; `add` gave up on calendars open almost all the time.
4. An unknown subdivision was reported as an unknown country."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mailesc.hours import make_calendar

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TEHRAN = ZoneInfo("Asia/Tehran")
SYDNEY = ZoneInfo("Australia/Sydney")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
H = timedelta(hours=1)
M = timedelta(minutes=1)
D = timedelta(days=1)

CALENDARS = {
    "berlin-24/7": make_calendar("b", "Europe/Berlin"),
    "new-york-24/7": make_calendar("ny", "America/New_York"),
    "tehran-24/7": make_calendar("thr", "Asia/Tehran"),
    "sydney-24/7": make_calendar("syd", "Australia/Sydney"),
    "lord-howe-24/7": make_calendar("lhi", "Australia/Lord_Howe"),
    "always": make_calendar("always"),
    "berlin-24/7-xmas": make_calendar("bx", "Europe/Berlin", None, ["12-25"]),
    "berlin-sunday-night": make_calendar("sn", "Europe/Berlin", {"sun": "02:30-06:00"}),
    "utc-24/7-xmas": make_calendar("ux", "UTC", None, ["12-25"]),
}


def assert_moment(result, expected, calendar):
    assert result.astimezone(UTC) == expected.astimezone(UTC), f"{result.isoformat()} != {expected.isoformat()}"
    assert result.utcoffset() == expected.utcoffset()
    assert result.utcoffset() == result.astimezone(UTC).astimezone(calendar.zone).utcoffset()


ADD = [
    pytest.param("berlin-24/7", datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 4 * H,
                 datetime(2026, 3, 29, 5, 30, tzinfo=BERLIN),  # 23:30Z + 4h = 03:30Z = 05:30+02:00
                 id="berlin-spring"),
    pytest.param("berlin-24/7", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 4 * H,
                 datetime(2026, 10, 25, 3, 30, tzinfo=BERLIN),  # 22:30Z + 4h = 02:30Z = 03:30+01:00
                 id="berlin-fall"),
    pytest.param("berlin-24/7", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 3 * H,
                 datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN),  # 22:30Z + 3h = 01:30Z = 02:30+01:00
                 id="berlin-fall-second-0230"),
    pytest.param("new-york-24/7", datetime(2026, 3, 8, 0, 30, tzinfo=NEW_YORK), 4 * H,
                 datetime(2026, 3, 8, 5, 30, tzinfo=NEW_YORK),  # 05:30Z + 4h = 09:30Z = 05:30-04:00
                 id="new-york-spring"),
    pytest.param("new-york-24/7", datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), 4 * H,
                 datetime(2026, 11, 1, 3, 30, tzinfo=NEW_YORK),  # 04:30Z + 4h = 08:30Z = 03:30-05:00
                 id="new-york-fall"),
    pytest.param("tehran-24/7", datetime(2021, 3, 21, 22, 30, tzinfo=TEHRAN), 4 * H,
                 datetime(2021, 3, 22, 3, 30, tzinfo=TEHRAN),  # 19:00Z + 4h = 23:00Z = 03:30+04:30
                 id="tehran-2021-spring"),
    pytest.param("tehran-24/7", datetime(2021, 9, 21, 21, 30, tzinfo=TEHRAN), 4 * H,
                 datetime(2021, 9, 22, 0, 30, tzinfo=TEHRAN),  # 17:00Z + 4h = 21:00Z = 00:30+03:30
                 id="tehran-2021-fall"),
    pytest.param("sydney-24/7", datetime(2026, 4, 5, 0, 30, tzinfo=SYDNEY), 4 * H,
                 datetime(2026, 4, 5, 3, 30, tzinfo=SYDNEY),  # 13:30Z + 4h = 17:30Z = 03:30+10:00
                 id="sydney-dst-end"),
    pytest.param("sydney-24/7", datetime(2026, 10, 4, 0, 30, tzinfo=SYDNEY), 4 * H,
                 datetime(2026, 10, 4, 5, 30, tzinfo=SYDNEY),  # 14:30Z + 4h = 18:30Z = 05:30+11:00
                 id="sydney-dst-start"),
    pytest.param("lord-howe-24/7", datetime(2026, 4, 5, 0, 30, tzinfo=LORD_HOWE), 4 * H,
                 datetime(2026, 4, 5, 4, 0, tzinfo=LORD_HOWE),  # 13:30Z + 4h = 17:30Z = 04:00+10:30
                 id="lord-howe-dst-end"),
    pytest.param("lord-howe-24/7", datetime(2026, 10, 4, 0, 30, tzinfo=LORD_HOWE), 4 * H,
                 datetime(2026, 10, 4, 5, 0, tzinfo=LORD_HOWE),  # 14:00Z + 4h = 18:00Z = 05:00+11:00
                 id="lord-howe-dst-start"),
    pytest.param("always", datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 4 * H,
                 datetime(2026, 3, 29, 3, 30, tzinfo=UTC),  # 00:30+01:00 = 23:30Z, + 4h = 03:30Z
                 id="utc-calendar-berlin-input"),
    pytest.param("always", datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), M,
                 datetime(2026, 10, 25, 1, 31, tzinfo=UTC),  # second 02:30 = 01:30Z, + 1min = 01:31Z
                 id="utc-calendar-berlin-second-0230"),
    pytest.param("utc-24/7-xmas", datetime(2026, 1, 1, tzinfo=UTC), 1200 * D,
                 datetime(2029, 4, 18, tzinfo=UTC),  # 364 + 364 + 365 open days to 2029-01-01, + 107 days
                 id="open-but-far-away"),
]


@pytest.mark.parametrize("name, start, duration, expected", ADD)
def test_add(name, start, duration, expected):
    calendar = CALENDARS[name]
    assert_moment(calendar.add(start, duration), expected, calendar)


BETWEEN = [
    pytest.param("berlin-24/7", datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN), 23 * H,
                 id="berlin-short-day"),  # 2026-03-29 lasts 23h
    pytest.param("berlin-24/7", datetime(2026, 10, 25, tzinfo=BERLIN), datetime(2026, 10, 26, tzinfo=BERLIN), 25 * H,
                 id="berlin-long-day"),  # 2026-10-25 lasts 25h
    pytest.param("berlin-24/7", datetime(2026, 3, 28, 22, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 6, 0, tzinfo=BERLIN),
                 7 * H, id="berlin-spring-night"),  # 21:00Z to 04:00Z
    pytest.param("berlin-24/7", datetime(2026, 3, 30, tzinfo=BERLIN), datetime(2026, 3, 29, tzinfo=BERLIN), -23 * H,
                 id="berlin-short-day-reversed"),
    pytest.param("berlin-24/7-xmas", datetime(2026, 10, 25, 2, 40, tzinfo=BERLIN),
                 datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=BERLIN), 30 * M,
                 id="fold-forward"),  # 00:40Z to 01:10Z, all open
    pytest.param("berlin-24/7-xmas", datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=BERLIN),
                 datetime(2026, 10, 25, 2, 40, tzinfo=BERLIN), -30 * M,
                 id="fold-backward"),  # 01:10Z back to 00:40Z
    pytest.param("berlin-sunday-night", datetime(2026, 10, 25, 2, 45, tzinfo=BERLIN),
                 datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=BERLIN), 30 * M,
                 id="fold-forward-sunday-night"),  # open from 00:30Z: 00:45Z to 01:15Z
    pytest.param("utc-24/7-xmas", datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC), 1457 * D,
                 id="four-years"),  # 365 + 365 + 366 + 365 = 1461 days, minus four Christmas Days
]


@pytest.mark.parametrize("name, start, end, expected", BETWEEN)
def test_between(name, start, end, expected):
    assert CALENDARS[name].between(start, end) == expected


def test_unknown_subdivision_is_named():
    with pytest.raises(ValueError, match="XX"):
        make_calendar("bad", country="DE", subdivision="XX")
