"""Business-time arithmetic in mailesc.hours, checked against deadlines worked out by hand.

Every expected value below was computed on paper the way a support manager would (open hours left today,
then the next open day, ...), not copied from the code. The one-line comment next to each case shows the sum.
Instants are compared in UTC, and the result must carry the calendar zone's offset at that instant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mailesc.hours import Calendar, make_calendar, parse_hours

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
TEHRAN = ZoneInfo("Asia/Tehran")
TOKYO = ZoneInfo("Asia/Tokyo")
SYDNEY = ZoneInfo("Australia/Sydney")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
PLUS_9 = timezone(timedelta(hours=9))

H = timedelta(hours=1)
M = timedelta(minutes=1)

BERLIN_HOURS = {"mon": "08:00-18:00", "tue": "08:00-18:00", "wed": "08:00-18:00", "thu": "08:00-18:00",
                "fri": "08:00-13:00,14:00-18:00"}
WEEKDAYS_9_17 = {day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}

CALENDARS: dict[str, Calendar] = {
    # Berlin support desk: lunch break on Fridays, own closed days plus Berlin's public holidays.
    "berlin": make_calendar("berlin", "Europe/Berlin", BERLIN_HOURS, ["01-01", "12-24", "2026-04-03"],
                            country="DE", subdivision="BE"),
    # The same hours in Hamburg: Women's Day (03-08) is a Berlin-only holiday.
    "hamburg": make_calendar("hamburg", "Europe/Berlin", BERLIN_HOURS, country="DE", subdivision="HH"),
    # No public holidays, one closed day once (2026-06-10) and one every year (07-01).
    "plain": make_calendar("plain", "Europe/Berlin", BERLIN_HOURS, ["2026-06-10", "07-01"]),
    # Open around the clock in Berlin ...
    "berlin-24/7": make_calendar("berlin-24/7", "Europe/Berlin"),
    # ... and around the clock except Christmas Day (this takes the opening-hours code path, not the shortcut).
    "berlin-24/7-xmas": make_calendar("berlin-24/7-xmas", "Europe/Berlin", None, ["12-25"]),
    # Only on Sunday nights, 02:30-06:00: 02:30 does not exist on 2026-03-29 and exists twice on 2026-10-25.
    "berlin-sunday-night": make_calendar("berlin-sunday-night", "Europe/Berlin", {"sun": "02:30-06:00"}),
    # Weekend on-call: Friday 16:00 to Sunday 06:00 without a break ("24:00" as an end).
    "berlin-weekend": make_calendar("berlin-weekend", "Europe/Berlin",
                                    {"fri": "16:00-24:00", "sat": "00:00-24:00", "sun": "00:00-06:00"}),
    "always": make_calendar("always"),  # UTC, always open
    "new-york-24/7-xmas": make_calendar("ny", "America/New_York", None, ["12-25"]),
    "new-york": make_calendar("ny", "America/New_York", WEEKDAYS_9_17),
    "sao-paulo-24/7": make_calendar("sp", "America/Sao_Paulo"),
    "sao-paulo": make_calendar("sp", "America/Sao_Paulo", {d: "09:00-18:00" for d in WEEKDAYS_9_17}),
    "los-angeles": make_calendar("la", "America/Los_Angeles", WEEKDAYS_9_17),
    "tehran": make_calendar("tehran", "Asia/Tehran", {d: "08:00-16:00" for d in ("sun", "mon", "tue", "wed", "thu")}),
    "tehran-24/7-xmas": make_calendar("tehran", "Asia/Tehran", None, ["12-25"]),
    "sydney-24/7-xmas": make_calendar("syd", "Australia/Sydney", None, ["12-25"]),
    "sydney": make_calendar("syd", "Australia/Sydney", WEEKDAYS_9_17),
    "sydney-nsw": make_calendar("syd", "Australia/Sydney", WEEKDAYS_9_17, country="AU", subdivision="NSW"),
    "lord-howe-24/7-xmas": make_calendar("lhi", "Australia/Lord_Howe", None, ["12-25"]),
    "lord-howe": make_calendar("lhi", "Australia/Lord_Howe", WEEKDAYS_9_17),
}


def assert_moment(result: datetime, expected: datetime, calendar: Calendar) -> None:
    """Same instant as `expected`, shown at the calendar zone's offset at that instant."""
    assert result.astimezone(UTC) == expected.astimezone(UTC), f"{result.isoformat()} != {expected.isoformat()}"
    assert result.utcoffset() == expected.utcoffset(), f"{result.isoformat()} != {expected.isoformat()}"
    assert result.utcoffset() == result.astimezone(UTC).astimezone(calendar.zone).utcoffset()


def case(id_, calendar, start, amount, expected):
    return pytest.param(calendar, start, amount, expected, id=id_)


ADD_CASES = [
    # --- Berlin, an ordinary winter week (2026-01-12 is a Monday, +01:00) ---
    case("berlin-within-a-day", "berlin", datetime(2026, 1, 12, 9, 0, tzinfo=BERLIN), 3 * H,
         datetime(2026, 1, 12, 12, 0, tzinfo=BERLIN)),  # Mon 09:00 + 3h = 12:00
    case("berlin-overnight", "berlin", datetime(2026, 1, 12, 16, 0, tzinfo=BERLIN), 4 * H,
         datetime(2026, 1, 13, 10, 0, tzinfo=BERLIN)),  # Mon 16-18 = 2h, Tue 08:00 + 2h
    case("berlin-across-weekend", "berlin", datetime(2026, 1, 16, 16, 0, tzinfo=BERLIN), 4 * H,
         datetime(2026, 1, 19, 10, 0, tzinfo=BERLIN)),  # Fri 16-18 = 2h, Sat/Sun closed, Mon 08:00 + 2h
    case("berlin-across-friday-lunch", "berlin", datetime(2026, 1, 16, 12, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 16, 15, 0, tzinfo=BERLIN)),  # Fri 12-13 = 1h, lunch, 14:00 + 1h
    case("berlin-start-in-lunch", "berlin", datetime(2026, 1, 16, 13, 30, tzinfo=BERLIN), H,
         datetime(2026, 1, 16, 15, 0, tzinfo=BERLIN)),  # clock starts 14:00, + 1h
    case("berlin-ends-exactly-at-lunch", "berlin", datetime(2026, 1, 16, 11, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 16, 13, 0, tzinfo=BERLIN)),  # Fri 11-13 = 2h: 13:00, not 14:00
    case("berlin-friday-full-day", "berlin", datetime(2026, 1, 16, 8, 0, tzinfo=BERLIN), 9 * H,
         datetime(2026, 1, 16, 18, 0, tzinfo=BERLIN)),  # Fri 08-13 = 5h + 14-18 = 4h = 9h: Fri 18:00
    case("berlin-start-saturday", "berlin", datetime(2026, 1, 17, 10, 0, tzinfo=BERLIN), 3 * H,
         datetime(2026, 1, 19, 11, 0, tzinfo=BERLIN)),  # Sat closed, Mon 08:00 + 3h
    case("berlin-start-sunday-night", "berlin", datetime(2026, 1, 18, 23, 59, tzinfo=BERLIN), M,
         datetime(2026, 1, 19, 8, 1, tzinfo=BERLIN)),  # Sun closed, Mon 08:00 + 1min
    case("berlin-start-before-opening", "berlin", datetime(2026, 1, 13, 6, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 13, 10, 0, tzinfo=BERLIN)),  # Tue opens 08:00, + 2h
    case("berlin-start-after-closing", "berlin", datetime(2026, 1, 13, 19, 30, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 14, 10, 0, tzinfo=BERLIN)),  # Tue closed at 18:00, Wed 08:00 + 2h
    case("berlin-ends-exactly-at-closing", "berlin", datetime(2026, 1, 13, 16, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 13, 18, 0, tzinfo=BERLIN)),  # Tue 16-18 = 2h: 18:00, not Wed 08:00
    case("berlin-friday-ends-exactly-at-closing", "berlin", datetime(2026, 1, 16, 17, 0, tzinfo=BERLIN), H,
         datetime(2026, 1, 16, 18, 0, tzinfo=BERLIN)),  # Fri 17-18 = 1h: Fri 18:00, not Mon 08:00
    case("berlin-start-exactly-at-closing", "berlin", datetime(2026, 1, 13, 18, 0, tzinfo=BERLIN), H,
         datetime(2026, 1, 14, 9, 0, tzinfo=BERLIN)),  # nothing left Tue, Wed 08:00 + 1h
    case("berlin-whole-day", "berlin", datetime(2026, 1, 14, 8, 0, tzinfo=BERLIN), 10 * H,
         datetime(2026, 1, 14, 18, 0, tzinfo=BERLIN)),  # Wed 08-18 = 10h
    case("berlin-whole-day-plus-1min", "berlin", datetime(2026, 1, 14, 8, 0, tzinfo=BERLIN), 10 * H + M,
         datetime(2026, 1, 15, 8, 1, tzinfo=BERLIN)),  # Wed 10h, Thu 08:00 + 1min
    case("berlin-whole-week-49h", "berlin", datetime(2026, 1, 12, 8, 0, tzinfo=BERLIN), 49 * H,
         datetime(2026, 1, 16, 18, 0, tzinfo=BERLIN)),  # Mon-Thu 4*10h + Fri 9h = 49h: Fri 18:00
    case("berlin-whole-week-plus-1min", "berlin", datetime(2026, 1, 12, 8, 0, tzinfo=BERLIN), 49 * H + M,
         datetime(2026, 1, 19, 8, 1, tzinfo=BERLIN)),  # 49h end Fri 18:00, then Mon 08:00 + 1min
    case("berlin-summer-across-weekend", "berlin", datetime(2026, 6, 12, 16, 0, tzinfo=BERLIN), 4 * H,
         datetime(2026, 6, 15, 10, 0, tzinfo=BERLIN)),  # +02:00: Fri 16-18 = 2h, Mon 08:00 + 2h
    # --- Berlin closed days ---
    case("berlin-christmas-2026", "berlin", datetime(2026, 12, 23, 16, 0, tzinfo=BERLIN), 4 * H,
         datetime(2026, 12, 28, 10, 0, tzinfo=BERLIN)),  # Wed 16-18 2h; 24 own, 25 public, weekend; Mon 08:00 + 2h
    case("berlin-christmas-2026-ends-at-closing", "berlin", datetime(2026, 12, 23, 8, 0, tzinfo=BERLIN), 20 * H,
         datetime(2026, 12, 28, 18, 0, tzinfo=BERLIN)),  # Wed 10h, 24-27 closed, Mon 28 10h: 18:00
    case("berlin-between-the-years", "berlin", datetime(2026, 12, 29, 8, 0, tzinfo=BERLIN), 25 * H,
         datetime(2026, 12, 31, 13, 0, tzinfo=BERLIN)),  # Tue 10h + Wed 10h + Thu 31 08:00 + 5h (12-31 is open)
    case("berlin-year-end-2026-2027", "berlin", datetime(2026, 12, 31, 17, 0, tzinfo=BERLIN), 3 * H,
         datetime(2027, 1, 4, 10, 0, tzinfo=BERLIN)),  # Thu 17-18 = 1h; Fri 01-01 closed, weekend; Mon 08:00 + 2h
    case("berlin-christmas-2025", "berlin", datetime(2025, 12, 23, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2025, 12, 29, 9, 0, tzinfo=BERLIN)),  # Tue 1h; Wed 24 own, Thu 25/Fri 26 public; Mon 08:00 + 1h
    case("berlin-new-year-2026-thursday", "berlin", datetime(2025, 12, 31, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 2, 9, 0, tzinfo=BERLIN)),  # Wed 17-18 = 1h; Thu 01-01 closed; Fri 02 08:00 + 1h
    case("berlin-christmas-eve-2027-friday", "berlin", datetime(2027, 12, 23, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2027, 12, 27, 9, 0, tzinfo=BERLIN)),  # Thu 1h; Fri 24 (yearly) closed, weekend; Mon 27 08:00 + 1h
    case("berlin-good-friday-easter-monday", "berlin", datetime(2026, 4, 2, 17, 0, tzinfo=BERLIN), 3 * H,
         datetime(2026, 4, 7, 10, 0, tzinfo=BERLIN)),  # +02:00: Thu 1h; Fri 3 + Mon 6 closed; Tue 08:00 + 2h
    case("berlin-unity-day-2025-friday", "berlin", datetime(2025, 10, 2, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2025, 10, 6, 9, 0, tzinfo=BERLIN)),  # Thu 1h; Fri 10-03 closed, weekend; Mon 08:00 + 1h
    case("berlin-unity-day-2026-saturday", "berlin", datetime(2026, 10, 2, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 10, 5, 9, 0, tzinfo=BERLIN)),  # Fri 10-02 17-18 = 1h; 10-03 is a Saturday anyway; Mon + 1h
    case("berlin-womens-day-2027", "berlin", datetime(2027, 3, 5, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2027, 3, 9, 9, 0, tzinfo=BERLIN)),  # Fri 1h; weekend; Mon 03-08 closed in BE; Tue 08:00 + 1h
    case("hamburg-womens-day-2027-open", "hamburg", datetime(2027, 3, 5, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2027, 3, 8, 9, 0, tzinfo=BERLIN)),  # Fri 1h; weekend; Mon 03-08 open in HH: 08:00 + 1h
    case("plain-once-2026-06-10", "plain", datetime(2026, 6, 9, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 6, 11, 9, 0, tzinfo=BERLIN)),  # Tue 1h; Wed 2026-06-10 closed; Thu 08:00 + 1h
    case("plain-once-is-not-yearly", "plain", datetime(2027, 6, 9, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2027, 6, 10, 9, 0, tzinfo=BERLIN)),  # Wed 1h; Thu 2027-06-10 is open: 08:00 + 1h
    case("plain-yearly-07-01-2026", "plain", datetime(2026, 6, 30, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 7, 2, 9, 0, tzinfo=BERLIN)),  # Tue 1h; Wed 07-01 closed; Thu 08:00 + 1h
    case("plain-yearly-07-01-2027", "plain", datetime(2027, 6, 30, 17, 0, tzinfo=BERLIN), 2 * H,
         datetime(2027, 7, 2, 9, 0, tzinfo=BERLIN)),  # Wed 1h; Thu 07-01 closed; Fri 08:00 + 1h
    # --- Berlin DST: opening hours stay on the wall clock ---
    case("berlin-spring-forward-weekend", "berlin", datetime(2026, 3, 27, 14, 0, tzinfo=BERLIN), 8 * H,
         datetime(2026, 3, 30, 12, 0, tzinfo=BERLIN)),  # Fri 14-18 = 4h (+01:00); Mon 08:00 + 4h (+02:00)
    case("berlin-fall-back-weekend", "berlin", datetime(2026, 10, 23, 14, 0, tzinfo=BERLIN), 8 * H,
         datetime(2026, 10, 26, 12, 0, tzinfo=BERLIN)),  # Fri 14-18 = 4h (+02:00); Mon 08:00 + 4h (+01:00)
    case("berlin-24/7-spring-forward", "berlin-24/7-xmas", datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 4 * H,
         datetime(2026, 3, 29, 5, 30, tzinfo=BERLIN)),  # 23:30Z + 4h = 03:30Z = 05:30+02:00 (02:00-03:00 skipped)
    case("berlin-24/7-fall-back", "berlin-24/7-xmas", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 4 * H,
         datetime(2026, 10, 25, 3, 30, tzinfo=BERLIN)),  # 22:30Z + 4h = 02:30Z = 03:30+01:00 (02:00-03:00 twice)
    case("berlin-24/7-first-0230", "berlin-24/7-xmas", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 2 * H,
         datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)),  # 22:30Z + 2h = 00:30Z = 02:30+02:00 (first 02:30)
    case("berlin-24/7-second-0230", "berlin-24/7-xmas", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 3 * H,
         datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)),  # 22:30Z + 3h = 01:30Z = 02:30+01:00 (second 02:30)
    case("berlin-24/7-christmas-day-closed", "berlin-24/7-xmas", datetime(2026, 12, 24, 20, 0, tzinfo=BERLIN),
         6 * H, datetime(2026, 12, 26, 2, 0, tzinfo=BERLIN)),  # 24th 20-24 = 4h; 25th closed; 26th 00:00 + 2h
    case("berlin-24/7-spring-utc-input", "berlin-24/7", datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 4 * H,
         datetime(2026, 3, 29, 5, 30, tzinfo=BERLIN)),  # 23:30Z (00:30+01:00) + 4h = 03:30Z = 05:30+02:00
    case("berlin-24/7-fall-utc-input", "berlin-24/7", datetime(2026, 10, 24, 22, 30, tzinfo=UTC), 4 * H,
         datetime(2026, 10, 25, 3, 30, tzinfo=BERLIN)),  # 22:30Z (00:30+02:00) + 4h = 02:30Z = 03:30+01:00
    case("sunday-night-ordinary", "berlin-sunday-night", datetime(2026, 1, 17, 12, 0, tzinfo=BERLIN), H,
         datetime(2026, 1, 18, 3, 30, tzinfo=BERLIN)),  # opens Sun 02:30, + 1h
    case("sunday-night-opens-in-gap", "berlin-sunday-night", datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), H,
         datetime(2026, 3, 29, 4, 30, tzinfo=BERLIN)),  # 02:30 read at +01:00 = 01:30Z = 03:30+02:00; + 1h
    case("sunday-night-opens-first-0230", "berlin-sunday-night", datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN), H,
         datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)),  # opens first 02:30 (00:30Z) + 1h = second 02:30
    case("weekend-on-call-across-midnight", "berlin-weekend", datetime(2026, 1, 16, 23, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 17, 1, 0, tzinfo=BERLIN)),  # Fri 23-24 = 1h, Sat 00:00 + 1h (24:00 meets 00:00)
    case("weekend-on-call-whole-shift", "berlin-weekend", datetime(2026, 1, 16, 12, 0, tzinfo=BERLIN), 38 * H,
         datetime(2026, 1, 18, 6, 0, tzinfo=BERLIN)),  # opens Fri 16:00: 8h + Sat 24h + Sun 6h = 38h: Sun 06:00
    case("weekend-on-call-next-week", "berlin-weekend", datetime(2026, 1, 18, 5, 0, tzinfo=BERLIN), 2 * H,
         datetime(2026, 1, 23, 17, 0, tzinfo=BERLIN)),  # Sun 05-06 = 1h; next Fri 16:00 + 1h
    case("weekend-on-call-spring-is-37h", "berlin-weekend", datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN), 37 * H,
         datetime(2026, 3, 29, 6, 0, tzinfo=BERLIN)),  # Fri 15:00Z to Sun 04:00Z = 37 real hours
    case("weekend-on-call-spring-38h", "berlin-weekend", datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN), 38 * H,
         datetime(2026, 4, 3, 17, 0, tzinfo=BERLIN)),  # the shift holds 37h; next Fri 16:00 + 1h
    case("weekend-on-call-fall-is-39h", "berlin-weekend", datetime(2026, 10, 23, 16, 0, tzinfo=BERLIN), 39 * H,
         datetime(2026, 10, 25, 6, 0, tzinfo=BERLIN)),  # Fri 14:00Z to Sun 05:00Z = 39 real hours
    # --- inputs at other offsets, Berlin calendar ---
    case("berlin-utc-input", "berlin", datetime(2026, 1, 16, 15, 0, tzinfo=UTC), 4 * H,
         datetime(2026, 1, 19, 10, 0, tzinfo=BERLIN)),  # 15:00Z = Fri 16:00+01:00: 2h Fri, Mon 08:00 + 2h
    case("berlin-plus9-input", "berlin", datetime(2026, 1, 17, 0, 0, tzinfo=PLUS_9), 4 * H,
         datetime(2026, 1, 19, 10, 0, tzinfo=BERLIN)),  # Sat 00:00+09:00 = Fri 16:00+01:00: as above
    case("berlin-tokyo-input", "berlin", datetime(2026, 1, 17, 0, 0, tzinfo=TOKYO), 4 * H,
         datetime(2026, 1, 19, 10, 0, tzinfo=BERLIN)),  # Tokyo is +09:00: as above
    case("berlin-new-york-input", "berlin", datetime(2026, 1, 16, 10, 0, tzinfo=NEW_YORK), 4 * H,
         datetime(2026, 1, 19, 10, 0, tzinfo=BERLIN)),  # 10:00-05:00 = 16:00+01:00: as above
    case("berlin-utc-input-summer", "berlin", datetime(2026, 6, 12, 14, 0, tzinfo=UTC), 4 * H,
         datetime(2026, 6, 15, 10, 0, tzinfo=BERLIN)),  # 14:00Z = Fri 16:00+02:00: 2h Fri, Mon 08:00 + 2h
    case("berlin-plus9-input-other-date", "berlin", datetime(2026, 1, 13, 6, 30, tzinfo=PLUS_9), H,
         datetime(2026, 1, 13, 9, 0, tzinfo=BERLIN)),  # Tue 06:30+09:00 = Mon 22:30+01:00, closed; Tue 08:00 + 1h
    case("berlin-utc-input-dst-weekend", "berlin", datetime(2026, 3, 27, 13, 0, tzinfo=UTC), 8 * H,
         datetime(2026, 3, 30, 12, 0, tzinfo=BERLIN)),  # 13:00Z = Fri 14:00+01:00: 4h Fri, Mon 08:00+02:00 + 4h
    # --- UTC default calendar ---
    case("utc-plain", "always", datetime(2026, 1, 12, 10, 0, tzinfo=UTC), 5 * H,
         datetime(2026, 1, 12, 15, 0, tzinfo=UTC)),  # 10:00 + 5h
    case("utc-into-leap-day", "always", datetime(2028, 2, 28, 12, 0, tzinfo=UTC), 24 * H,
         datetime(2028, 2, 29, 12, 0, tzinfo=UTC)),  # 2028 is a leap year: 02-28 + 1 day = 02-29
    case("utc-over-leap-day", "always", datetime(2028, 2, 28, 12, 0, tzinfo=UTC), 48 * H,
         datetime(2028, 3, 1, 12, 0, tzinfo=UTC)),  # 02-28 + 2 days = 03-01 (via 02-29)
    case("utc-no-leap-day-2027", "always", datetime(2027, 2, 28, 12, 0, tzinfo=UTC), 24 * H,
         datetime(2027, 3, 1, 12, 0, tzinfo=UTC)),  # 2027: 02-28 + 1 day = 03-01
    case("utc-year-end", "always", datetime(2026, 12, 31, 23, 0, tzinfo=UTC), 2 * H,
         datetime(2027, 1, 1, 1, 0, tzinfo=UTC)),  # 23:00 + 2h = 01:00 next year
    case("utc-ignores-berlin-dst", "always", datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 4 * H,
         datetime(2026, 3, 29, 4, 30, tzinfo=UTC)),  # UTC has no DST: 00:30 + 4h
    case("utc-plus9-input", "always", datetime(2026, 1, 12, 19, 0, tzinfo=PLUS_9), 5 * H,
         datetime(2026, 1, 12, 15, 0, tzinfo=UTC)),  # 19:00+09:00 = 10:00Z, + 5h, shown in UTC
    # --- America/New_York: spring 2026-03-08 02:00 -> 03:00, fall 2026-11-01 02:00 -> 01:00 ---
    case("new-york-24/7-spring", "new-york-24/7-xmas", datetime(2026, 3, 8, 0, 30, tzinfo=NEW_YORK), 4 * H,
         datetime(2026, 3, 8, 5, 30, tzinfo=NEW_YORK)),  # 05:30Z + 4h = 09:30Z = 05:30-04:00
    case("new-york-24/7-fall", "new-york-24/7-xmas", datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), 4 * H,
         datetime(2026, 11, 1, 3, 30, tzinfo=NEW_YORK)),  # 04:30Z + 4h = 08:30Z = 03:30-05:00
    case("new-york-24/7-first-0130", "new-york-24/7-xmas", datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), H,
         datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK)),  # 04:30Z + 1h = 05:30Z = 01:30-04:00
    case("new-york-24/7-second-0130", "new-york-24/7-xmas", datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), 2 * H,
         datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK)),  # 04:30Z + 2h = 06:30Z = 01:30-05:00
    case("new-york-spring-weekend", "new-york", datetime(2026, 3, 6, 15, 0, tzinfo=NEW_YORK), 4 * H,
         datetime(2026, 3, 9, 11, 0, tzinfo=NEW_YORK)),  # Fri 15-17 = 2h (-05:00); Mon 09:00-04:00 + 2h
    case("new-york-fall-weekend", "new-york", datetime(2026, 10, 30, 15, 0, tzinfo=NEW_YORK), 4 * H,
         datetime(2026, 11, 2, 11, 0, tzinfo=NEW_YORK)),  # Fri 15-17 = 2h (-04:00); Mon 09:00-05:00 + 2h
    # --- America/Sao_Paulo: -03:00 all year since 2019 ---
    case("sao-paulo-24/7-old-dst-date", "sao-paulo-24/7", datetime(2026, 11, 1, 0, 30, tzinfo=SAO_PAULO), 4 * H,
         datetime(2026, 11, 1, 4, 30, tzinfo=SAO_PAULO)),  # no DST any more: 00:30 + 4h = 04:30-03:00
    case("sao-paulo-across-weekend", "sao-paulo", datetime(2026, 1, 16, 17, 0, tzinfo=SAO_PAULO), 3 * H,
         datetime(2026, 1, 19, 11, 0, tzinfo=SAO_PAULO)),  # Fri 17-18 = 1h; Mon 09:00 + 2h
    # --- America/Los_Angeles, 09:00-17:00 Mon-Fri ---
    case("los-angeles-overnight", "los-angeles", datetime(2026, 1, 13, 10, 0, tzinfo=LOS_ANGELES), 8 * H,
         datetime(2026, 1, 14, 10, 0, tzinfo=LOS_ANGELES)),  # Tue 10-17 = 7h; Wed 09:00 + 1h
    case("los-angeles-spring-weekend", "los-angeles", datetime(2026, 3, 6, 16, 0, tzinfo=LOS_ANGELES), 3 * H,
         datetime(2026, 3, 9, 11, 0, tzinfo=LOS_ANGELES)),  # Fri 16-17 = 1h (-08:00); Mon 09:00-07:00 + 2h
    case("los-angeles-fall-weekend", "los-angeles", datetime(2026, 10, 30, 16, 0, tzinfo=LOS_ANGELES), 3 * H,
         datetime(2026, 11, 2, 11, 0, tzinfo=LOS_ANGELES)),  # Fri 16-17 = 1h (-07:00); Mon 09:00-08:00 + 2h
    case("los-angeles-utc-input", "los-angeles", datetime(2026, 3, 7, 0, 0, tzinfo=UTC), 3 * H,
         datetime(2026, 3, 9, 11, 0, tzinfo=LOS_ANGELES)),  # Sat 00:00Z = Fri 16:00-08:00: as above
    # --- Asia/Tehran: +03:30, Sun-Thu 08:00-16:00 (Friday and Saturday closed) ---
    case("tehran-across-iranian-weekend", "tehran", datetime(2026, 1, 15, 15, 0, tzinfo=TEHRAN), 3 * H,
         datetime(2026, 1, 18, 10, 0, tzinfo=TEHRAN)),  # Thu 15-16 = 1h; Fri/Sat closed; Sun 08:00 + 2h
    case("tehran-summer-2026-no-dst", "tehran", datetime(2026, 6, 24, 15, 0, tzinfo=TEHRAN), 2 * H,
         datetime(2026, 6, 25, 9, 0, tzinfo=TEHRAN)),  # still +03:30 in June: Wed 1h; Thu 08:00 + 1h
    case("tehran-start-friday", "tehran", datetime(2026, 6, 26, 10, 0, tzinfo=TEHRAN), H,
         datetime(2026, 6, 28, 9, 0, tzinfo=TEHRAN)),  # Fri, Sat closed; Sun 08:00 + 1h
    case("tehran-2021-dst-start-business", "tehran", datetime(2021, 3, 21, 15, 0, tzinfo=TEHRAN), 2 * H,
         datetime(2021, 3, 22, 9, 0, tzinfo=TEHRAN)),  # Sun 15-16 = 1h (+03:30); Mon 08:00+04:30 + 1h
    case("tehran-2021-dst-end-business", "tehran", datetime(2021, 9, 21, 15, 0, tzinfo=TEHRAN), 2 * H,
         datetime(2021, 9, 22, 9, 0, tzinfo=TEHRAN)),  # Tue 15-16 = 1h (+04:30); Wed 08:00+03:30 + 1h
    case("tehran-2021-24/7-dst-start", "tehran-24/7-xmas", datetime(2021, 3, 21, 22, 30, tzinfo=TEHRAN), 4 * H,
         datetime(2021, 3, 22, 3, 30, tzinfo=TEHRAN)),  # 19:00Z + 4h = 23:00Z = 03:30+04:30 (00:00-01:00 skipped)
    case("tehran-2021-24/7-dst-end", "tehran-24/7-xmas", datetime(2021, 9, 21, 21, 30, tzinfo=TEHRAN), 4 * H,
         datetime(2021, 9, 22, 0, 30, tzinfo=TEHRAN)),  # 17:00Z + 4h = 21:00Z = 00:30+03:30 (23:00-24:00 twice)
    # --- Australia/Sydney: DST ends 2026-04-05 03:00 -> 02:00, starts 2026-10-04 02:00 -> 03:00 ---
    case("sydney-24/7-dst-end", "sydney-24/7-xmas", datetime(2026, 4, 5, 0, 30, tzinfo=SYDNEY), 4 * H,
         datetime(2026, 4, 5, 3, 30, tzinfo=SYDNEY)),  # 13:30Z + 4h = 17:30Z = 03:30+10:00
    case("sydney-24/7-dst-start", "sydney-24/7-xmas", datetime(2026, 10, 4, 0, 30, tzinfo=SYDNEY), 4 * H,
         datetime(2026, 10, 4, 5, 30, tzinfo=SYDNEY)),  # 14:30Z + 4h = 18:30Z = 05:30+11:00
    case("sydney-dst-end-weekend", "sydney", datetime(2026, 4, 3, 16, 0, tzinfo=SYDNEY), 3 * H,
         datetime(2026, 4, 6, 11, 0, tzinfo=SYDNEY)),  # no holidays: Fri 16-17 = 1h (+11); Mon 09:00+10:00 + 2h
    case("sydney-dst-start-weekend", "sydney", datetime(2026, 10, 2, 16, 0, tzinfo=SYDNEY), 3 * H,
         datetime(2026, 10, 5, 11, 0, tzinfo=SYDNEY)),  # Fri 16-17 = 1h (+10); Mon 09:00+11:00 + 2h
    case("sydney-nsw-easter", "sydney-nsw", datetime(2026, 4, 2, 16, 0, tzinfo=SYDNEY), 3 * H,
         datetime(2026, 4, 7, 11, 0, tzinfo=SYDNEY)),  # Thu 1h; Easter Fri-Mon closed; Tue 09:00 + 2h
    case("sydney-nsw-labour-day", "sydney-nsw", datetime(2026, 10, 2, 16, 0, tzinfo=SYDNEY), 3 * H,
         datetime(2026, 10, 6, 11, 0, tzinfo=SYDNEY)),  # Fri 1h; weekend; Mon 10-05 Labour Day; Tue 09:00+11:00 + 2h
    # --- Australia/Lord_Howe: a 30-minute shift, +11:00 <-> +10:30 ---
    case("lord-howe-24/7-dst-end", "lord-howe-24/7-xmas", datetime(2026, 4, 5, 0, 30, tzinfo=LORD_HOWE), 4 * H,
         datetime(2026, 4, 5, 4, 0, tzinfo=LORD_HOWE)),  # 13:30Z + 4h = 17:30Z = 04:00+10:30
    case("lord-howe-24/7-dst-start", "lord-howe-24/7-xmas", datetime(2026, 10, 4, 0, 30, tzinfo=LORD_HOWE), 4 * H,
         datetime(2026, 10, 4, 5, 0, tzinfo=LORD_HOWE)),  # 14:00Z + 4h = 18:00Z = 05:00+11:00
    case("lord-howe-dst-end-weekend", "lord-howe", datetime(2026, 4, 3, 16, 0, tzinfo=LORD_HOWE), 3 * H,
         datetime(2026, 4, 6, 11, 0, tzinfo=LORD_HOWE)),  # Fri 16-17 = 1h (+11:00); Mon 09:00+10:30 + 2h
]


@pytest.mark.parametrize("name, start, duration, expected", ADD_CASES)
def test_add(name, start, duration, expected):
    calendar = CALENDARS[name]
    assert_moment(calendar.add(start, duration), expected, calendar)


ZERO_CASES = [
    case("berlin-open", "berlin", datetime(2026, 1, 13, 10, 0, tzinfo=BERLIN), None,
         datetime(2026, 1, 13, 10, 0, tzinfo=BERLIN)),  # Tue 10:00, open: itself
    case("berlin-saturday", "berlin", datetime(2026, 1, 17, 10, 0, tzinfo=BERLIN), None,
         datetime(2026, 1, 17, 10, 0, tzinfo=BERLIN)),  # closed, still itself (not Mon 08:00)
    case("berlin-lunch", "berlin", datetime(2026, 1, 16, 13, 30, tzinfo=BERLIN), None,
         datetime(2026, 1, 16, 13, 30, tzinfo=BERLIN)),  # in the lunch break: itself
    case("berlin-christmas-eve", "berlin", datetime(2026, 12, 24, 10, 0, tzinfo=BERLIN), None,
         datetime(2026, 12, 24, 10, 0, tzinfo=BERLIN)),  # closed day: itself
    case("berlin-utc-input", "berlin", datetime(2026, 1, 17, 9, 0, tzinfo=UTC), None,
         datetime(2026, 1, 17, 10, 0, tzinfo=BERLIN)),  # 09:00Z shown at Berlin's +01:00
    case("berlin-utc-input-summer", "berlin", datetime(2026, 7, 4, 9, 0, tzinfo=UTC), None,
         datetime(2026, 7, 4, 11, 0, tzinfo=BERLIN)),  # 09:00Z shown at Berlin's +02:00
    case("always", "always", datetime(2028, 2, 29, 12, 0, tzinfo=UTC), None,
         datetime(2028, 2, 29, 12, 0, tzinfo=UTC)),  # itself
    case("tehran-plus9-input", "tehran", datetime(2026, 1, 16, 12, 0, tzinfo=PLUS_9), None,
         datetime(2026, 1, 16, 6, 30, tzinfo=TEHRAN)),  # 03:00Z = 06:30+03:30 (a Friday, closed)
]


@pytest.mark.parametrize("name, start, _, expected", ZERO_CASES)
def test_add_zero_is_start(name, start, _, expected):
    calendar = CALENDARS[name]
    assert_moment(calendar.add(start, timedelta(0)), expected, calendar)


BETWEEN_CASES = [
    case("berlin-winter-week", "berlin", datetime(2026, 1, 12, 0, 0, tzinfo=BERLIN),
         datetime(2026, 1, 19, 0, 0, tzinfo=BERLIN), 49 * H),  # Mon-Thu 4*10h + Fri 5h + 4h = 49h
    case("berlin-summer-week", "berlin", datetime(2026, 6, 8, 0, 0, tzinfo=BERLIN),
         datetime(2026, 6, 15, 0, 0, tzinfo=BERLIN), 49 * H),  # no holiday that week: 49h
    case("berlin-spring-forward-week", "berlin", datetime(2026, 3, 23, 0, 0, tzinfo=BERLIN),
         datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN), 49 * H),  # the short Sunday is closed: 49h
    case("berlin-fall-back-week", "berlin", datetime(2026, 10, 19, 0, 0, tzinfo=BERLIN),
         datetime(2026, 10, 26, 0, 0, tzinfo=BERLIN), 49 * H),  # the long Sunday is closed: 49h
    case("berlin-good-friday-week", "berlin", datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN),
         datetime(2026, 4, 7, 12, 0, tzinfo=BERLIN), 44 * H),  # Mon-Thu 40h; Fri, Easter Mon closed; Tue 08-12 4h
    case("berlin-christmas", "berlin", datetime(2026, 12, 23, 12, 0, tzinfo=BERLIN),
         datetime(2026, 12, 28, 12, 0, tzinfo=BERLIN), 10 * H),  # Wed 12-18 6h; 24-27 closed; Mon 08-12 4h
    case("berlin-year-end-week", "berlin", datetime(2026, 12, 28, 0, 0, tzinfo=BERLIN),
         datetime(2027, 1, 4, 0, 0, tzinfo=BERLIN), 40 * H),  # Mon-Thu 40h; Fri 01-01 closed
    case("berlin-womens-day-week", "berlin", datetime(2027, 3, 8, 0, 0, tzinfo=BERLIN),
         datetime(2027, 3, 15, 0, 0, tzinfo=BERLIN), 39 * H),  # Mon closed; Tue-Thu 30h + Fri 9h
    case("hamburg-womens-day-week", "hamburg", datetime(2027, 3, 8, 0, 0, tzinfo=BERLIN),
         datetime(2027, 3, 15, 0, 0, tzinfo=BERLIN), 49 * H),  # nothing closed in Hamburg: 49h
    case("berlin-unity-day-week-2025", "berlin", datetime(2025, 9, 29, 0, 0, tzinfo=BERLIN),
         datetime(2025, 10, 6, 0, 0, tzinfo=BERLIN), 40 * H),  # Mon-Thu 40h; Fri 10-03 closed
    case("berlin-across-lunch", "berlin", datetime(2026, 1, 16, 12, 0, tzinfo=BERLIN),
         datetime(2026, 1, 16, 15, 0, tzinfo=BERLIN), 2 * H),  # 12-13 1h + 14-15 1h
    case("berlin-inside-lunch", "berlin", datetime(2026, 1, 16, 13, 10, tzinfo=BERLIN),
         datetime(2026, 1, 16, 13, 50, tzinfo=BERLIN), timedelta(0)),  # all closed
    case("berlin-closed-weekend", "berlin", datetime(2026, 1, 16, 19, 0, tzinfo=BERLIN),
         datetime(2026, 1, 19, 7, 0, tzinfo=BERLIN), timedelta(0)),  # Fri 19:00 to Mon 07:00: all closed
    case("berlin-across-weekend", "berlin", datetime(2026, 1, 16, 16, 0, tzinfo=BERLIN),
         datetime(2026, 1, 19, 10, 0, tzinfo=BERLIN), 4 * H),  # Fri 16-18 2h + Mon 08-10 2h
    case("berlin-same-instant", "berlin", datetime(2026, 1, 14, 10, 0, tzinfo=BERLIN),
         datetime(2026, 1, 14, 10, 0, tzinfo=BERLIN), timedelta(0)),  # nothing in between
    case("berlin-reverse", "berlin", datetime(2026, 1, 19, 10, 0, tzinfo=BERLIN),
         datetime(2026, 1, 16, 16, 0, tzinfo=BERLIN), -4 * H),  # the 4h above, negative
    case("berlin-reverse-lunch", "berlin", datetime(2026, 1, 16, 15, 0, tzinfo=BERLIN),
         datetime(2026, 1, 16, 12, 0, tzinfo=BERLIN), -2 * H),  # the 2h above, negative
    case("berlin-mixed-offsets", "berlin", datetime(2026, 1, 16, 15, 0, tzinfo=UTC),
         datetime(2026, 1, 19, 18, 0, tzinfo=PLUS_9), 4 * H),  # Fri 16:00+01:00 to Mon 10:00+01:00: 4h
    case("berlin-24/7-spring-night", "berlin-24/7-xmas", datetime(2026, 3, 28, 22, 0, tzinfo=BERLIN),
         datetime(2026, 3, 29, 6, 0, tzinfo=BERLIN), 7 * H),  # 21:00Z to 04:00Z = 7h (8h on the wall)
    case("berlin-24/7-fall-night", "berlin-24/7-xmas", datetime(2026, 10, 24, 22, 0, tzinfo=BERLIN),
         datetime(2026, 10, 25, 6, 0, tzinfo=BERLIN), 9 * H),  # 20:00Z to 05:00Z = 9h (8h on the wall)
    case("berlin-24/7-short-day", "berlin-24/7-xmas", datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN),
         datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN), 23 * H),  # 2026-03-29 lasts 23h
    case("berlin-24/7-long-day", "berlin-24/7-xmas", datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN),
         datetime(2026, 10, 26, 0, 0, tzinfo=BERLIN), 25 * H),  # 2026-10-25 lasts 25h
    case("berlin-24/7-christmas", "berlin-24/7-xmas", datetime(2026, 12, 24, 12, 0, tzinfo=BERLIN),
         datetime(2026, 12, 26, 12, 0, tzinfo=BERLIN), 24 * H),  # 24th 12-24 12h; 25th closed; 26th 00-12 12h
    case("berlin-24/7-utc-inputs", "berlin-24/7", datetime(2026, 3, 28, 23, 0, tzinfo=UTC),
         datetime(2026, 3, 29, 4, 0, tzinfo=UTC), 5 * H),  # 23:00Z to 04:00Z = 5h
    case("sunday-night-ordinary", "berlin-sunday-night", datetime(2026, 1, 17, 0, 0, tzinfo=BERLIN),
         datetime(2026, 1, 19, 0, 0, tzinfo=BERLIN), 3 * H + 30 * M),  # 02:30-06:00
    case("sunday-night-gap", "berlin-sunday-night", datetime(2026, 3, 28, 0, 0, tzinfo=BERLIN),
         datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN), 2 * H + 30 * M),  # 01:30Z (02:30 at +01:00) to 04:00Z
    case("sunday-night-repeated-hour", "berlin-sunday-night", datetime(2026, 10, 24, 0, 0, tzinfo=BERLIN),
         datetime(2026, 10, 26, 0, 0, tzinfo=BERLIN), 4 * H + 30 * M),  # first 02:30 = 00:30Z to 06:00+01:00 = 05:00Z
    case("weekend-on-call-spring", "berlin-weekend", datetime(2026, 3, 27, 0, 0, tzinfo=BERLIN),
         datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN), 37 * H),  # Fri 15:00Z to Sun 04:00Z
    case("utc-leap-day", "always", datetime(2028, 2, 28, 0, 0, tzinfo=UTC),
         datetime(2028, 3, 1, 0, 0, tzinfo=UTC), 48 * H),  # 02-28 and 02-29
    case("utc-reverse", "always", datetime(2028, 3, 1, 0, 0, tzinfo=UTC),
         datetime(2028, 2, 28, 0, 0, tzinfo=UTC), -48 * H),  # negative
    case("tehran-week", "tehran", datetime(2026, 1, 11, 0, 0, tzinfo=TEHRAN),
         datetime(2026, 1, 18, 0, 0, tzinfo=TEHRAN), 40 * H),  # Sun-Thu 5*8h
    case("tehran-2021-dst-week", "tehran", datetime(2021, 3, 21, 0, 0, tzinfo=TEHRAN),
         datetime(2021, 3, 28, 0, 0, tzinfo=TEHRAN), 40 * H),  # Sun-Thu 5*8h, DST starts Mon 00:00
    case("new-york-spring-week", "new-york", datetime(2026, 3, 2, 0, 0, tzinfo=NEW_YORK),
         datetime(2026, 3, 9, 12, 0, tzinfo=NEW_YORK), 43 * H),  # Mon-Fri 5*8h + Mon 09-12 3h (-04:00)
    case("sydney-dst-end-week", "sydney", datetime(2026, 3, 30, 0, 0, tzinfo=SYDNEY),
         datetime(2026, 4, 6, 0, 0, tzinfo=SYDNEY), 40 * H),  # Mon-Fri 5*8h (no holidays configured)
    case("sydney-nsw-easter-week", "sydney-nsw", datetime(2026, 3, 30, 0, 0, tzinfo=SYDNEY),
         datetime(2026, 4, 7, 0, 0, tzinfo=SYDNEY), 32 * H),  # Mon-Thu 4*8h; Good Fri, Easter Mon closed
]


@pytest.mark.parametrize("name, start, end, expected", BETWEEN_CASES)
def test_between(name, start, end, expected):
    assert CALENDARS[name].between(start, end) == expected


PROPERTY_STARTS = [
    pytest.param(datetime(2026, 1, 12, 8, 0, tzinfo=BERLIN), id="mon-opening"),
    pytest.param(datetime(2026, 1, 13, 6, 0, tzinfo=BERLIN), id="tue-before-opening"),
    pytest.param(datetime(2026, 1, 13, 18, 0, tzinfo=BERLIN), id="tue-at-closing"),
    pytest.param(datetime(2026, 1, 16, 12, 30, tzinfo=BERLIN), id="fri-before-lunch"),
    pytest.param(datetime(2026, 1, 16, 13, 30, tzinfo=BERLIN), id="fri-in-lunch"),
    pytest.param(datetime(2026, 1, 16, 17, 59, tzinfo=BERLIN), id="fri-1min-before-closing"),
    pytest.param(datetime(2026, 1, 17, 10, 0, tzinfo=BERLIN), id="saturday"),
    pytest.param(datetime(2026, 12, 23, 16, 0, tzinfo=BERLIN), id="before-christmas"),
    pytest.param(datetime(2026, 12, 24, 10, 0, tzinfo=BERLIN), id="christmas-eve"),
    pytest.param(datetime(2026, 3, 27, 14, 0, tzinfo=BERLIN), id="spring-forward-friday"),
    pytest.param(datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN), id="spring-forward-night"),
    pytest.param(datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), id="fall-back-second-0230"),
    pytest.param(datetime(2026, 4, 2, 17, 0, tzinfo=UTC), id="utc-input-easter"),
]
PROPERTY_DURATIONS = [pytest.param(d, id=i) for d, i in
                      [(M, "1min"), (H, "1h"), (5 * H, "5h"), (10 * H, "10h"), (49 * H, "49h"), (100 * H, "100h")]]
PROPERTY_CALENDARS = ["berlin", "berlin-24/7-xmas", "berlin-sunday-night", "berlin-weekend", "tehran", "sydney-nsw"]


@pytest.mark.parametrize("name", PROPERTY_CALENDARS)
@pytest.mark.parametrize("duration", PROPERTY_DURATIONS)
@pytest.mark.parametrize("start", PROPERTY_STARTS)
def test_between_inverts_add(name, start, duration):
    """The open time from `start` to the deadline is the duration asked for, whether `start` is open or not."""
    calendar = CALENDARS[name]
    deadline = calendar.add(start, duration)
    assert deadline.astimezone(UTC) > start.astimezone(UTC)
    assert calendar.between(start, deadline) == duration
    assert calendar.between(deadline, start) == -duration


@pytest.mark.parametrize("name", ["always", "berlin-24/7"])
@pytest.mark.parametrize("duration", PROPERTY_DURATIONS)
@pytest.mark.parametrize("start", [pytest.param(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), id="utc-spring-night"),
                                   pytest.param(datetime(2026, 10, 25, 9, 30, tzinfo=PLUS_9), id="plus9-fall-night"),
                                   pytest.param(datetime(2028, 2, 28, 23, 0, tzinfo=UTC), id="utc-leap-day")])
def test_between_inverts_add_always_open(name, start, duration):
    calendar = CALENDARS[name]
    deadline = calendar.add(start, duration)
    assert deadline.astimezone(UTC) - start.astimezone(UTC) == duration
    assert calendar.between(start, deadline) == duration
    assert calendar.between(deadline, start) == -duration


def test_never_open_calendar_says_so():
    calendar = make_calendar("never", "Europe/Berlin", {})
    with pytest.raises(ValueError, match="no open time"):
        calendar.add(datetime(2026, 1, 12, 8, 0, tzinfo=BERLIN), H)
    assert calendar.between(datetime(2026, 1, 12, tzinfo=BERLIN), datetime(2026, 1, 19, tzinfo=BERLIN)) == timedelta(0)


def test_parse_hours():
    from datetime import time
    assert parse_hours({"fri": "14:00-18:00, 08:00-13:00", "sat": "20:00-24:00"}) == {
        4: ((time(8), time(13)), (time(14), time(18))),  # sorted by opening time
        5: ((time(20), None),),  # 24:00: midnight at the end of the day
    }


ERROR_CASES = [
    pytest.param({"zone": "Europe/Nowhere"}, "IANA", id="unknown-zone"),
    pytest.param({"zone": "../../etc/passwd"}, "IANA", id="zone-path"),
    pytest.param({"zone": ""}, "IANA", id="empty-zone"),
    pytest.param({"hours": {"monday": "08:00-18:00"}}, "weekday", id="bad-weekday"),
    pytest.param({"hours": {"mon": "18:00-08:00"}}, "closes before it opens", id="closes-before-opening"),
    pytest.param({"hours": {"mon": "08:00-08:00"}}, "closes before it opens", id="empty-interval"),
    pytest.param({"hours": {"mon": "08:00-12:00,11:00-13:00"}}, "overlap", id="overlapping"),
    pytest.param({"hours": {"mon": "10:00-12:00,08:00-24:00"}}, "overlap", id="overlapping-till-midnight"),
    pytest.param({"hours": {"mon": "8-18"}}, "interval", id="hours-without-minutes"),
    pytest.param({"hours": {"mon": "08:00"}}, "interval", id="no-end"),
    pytest.param({"hours": {"mon": "25:00-26:00"}}, "interval", id="hour-25"),
    pytest.param({"hours": {"mon": "08:60-09:00"}}, "interval", id="minute-60"),
    pytest.param({"holidays_list": ["2026-13-01"]}, "holiday", id="holiday-month-13"),
    pytest.param({"holidays_list": ["13-01"]}, "holiday", id="yearly-month-13"),
    pytest.param({"holidays_list": ["02-30"]}, "holiday", id="yearly-02-30"),
    pytest.param({"holidays_list": ["christmas"]}, "holiday", id="holiday-word"),
    pytest.param({"country": "XX"}, "XX", id="unknown-country"),
    pytest.param({"country": "DE", "subdivision": "XX"}, None, id="unknown-subdivision"),
]


@pytest.mark.parametrize("kwargs, message", ERROR_CASES)
def test_make_calendar_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_calendar("bad", **kwargs)


def test_yearly_02_29_is_allowed():
    calendar = make_calendar("leap", "UTC", None, ["02-29"])
    # 2028-02-28 12:00 + 24h: 12h on 02-28, 02-29 closed, 03-01 00:00 + 12h
    assert_moment(calendar.add(datetime(2028, 2, 28, 12, 0, tzinfo=UTC), 24 * H),
                  datetime(2028, 3, 1, 12, 0, tzinfo=UTC), calendar)
