"""Calendars in policy files: defined in any file, used by rules by name, checked with file and key."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailesc.errors import ConfigError
from mailesc.policies import load_policies

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = """
[calendars.office]
timezone = "Europe/Berlin"
hours = { mon = "08:00-18:00", tue = "08:00-18:00", wed = "08:00-18:00", thu = "08:00-18:00", fri = "08:00-13:00,14:00-18:00" }
holidays = ["12-24", "2026-04-03"]
holidays_country = "DE"
holidays_subdiv = "BE"
"""
RULE = """
[[rule]]
name = "standard"
first_response = "4h"
calendar = "office"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
[[rule.escalate]]
after = "2h"
to = ["director@example.test"]
"""


def test_a_rule_uses_a_calendar_defined_in_another_file(tmp_path):
    (tmp_path / "00-calendars.toml").write_text(OFFICE)
    (tmp_path / "10-rules.toml").write_text(RULE)
    rule = load_policies(tmp_path).get("standard")
    assert rule.calendar.name == "office"
    friday_4pm = datetime(2026, 10, 23, 16, 0, tzinfo=BERLIN)
    due = rule.calendar.add(friday_4pm, rule.first_response)
    assert due == datetime(2026, 10, 26, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 2h Friday, 2h Monday
    level_two = rule.calendar.add(due, rule.escalate[1].after)
    assert level_two == datetime(2026, 10, 26, 12, 0, tzinfo=BERLIN)  # the ladder counts office time too


def test_rules_without_a_calendar_run_around_the_clock(tmp_path):
    (tmp_path / "p.toml").write_text(RULE.replace('calendar = "office"\n', ""))
    rule = load_policies(tmp_path).get("standard")
    assert rule.calendar.name == "always"
    start = datetime(2026, 10, 17, 22, 0, tzinfo=BERLIN)  # Saturday night
    assert rule.calendar.add(start, timedelta(hours=4)) == start + timedelta(hours=4)


@pytest.mark.parametrize("files, key, problem", [
    ({"p.toml": RULE}, "calendar", "unknown calendar 'office'"),
    ({"p.toml": OFFICE.replace("Europe/Berlin", "Europe/Atlantis") + RULE}, "calendars.office", "IANA"),
    ({"p.toml": OFFICE.replace('mon = "08:00-18:00"', 'monday = "08:00-18:00"') + RULE}, "calendars.office",
     "not a weekday"),
    ({"p.toml": OFFICE.replace('tue = "08:00-18:00"', 'tue = "18:00-08:00"') + RULE}, "calendars.office",
     "closes before it opens"),
    ({"p.toml": OFFICE.replace('"12-24"', '"24.12."') + RULE}, "calendars.office", "MM-DD"),
    ({"p.toml": OFFICE.replace('"DE"', '"XX"') + RULE}, "calendars.office", "no country 'XX'"),
    ({"p.toml": OFFICE.replace("timezone", "time_zone") + RULE}, "calendars.office.time_zone", "unknown key"),
    ({"a.toml": OFFICE, "b.toml": OFFICE + RULE}, "calendars.office", "defined twice"),
], ids=["unknown-calendar", "bad-zone", "bad-weekday", "inverted-hours", "bad-holiday", "bad-country",
        "unknown-key", "defined-twice"])
def test_calendar_problems_name_file_and_key(tmp_path, files, key, problem):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_policies(tmp_path)
    assert any(key in p_key and problem in text for _, p_key, text in raised.value.problems), raised.value


def test_every_calendar_problem_is_reported_at_once_without_a_false_unknown_calendar(tmp_path):
    broken = (OFFICE.replace("Europe/Berlin", "Europe/Atlantis").replace('mon = "08:00-18:00"', 'monday = "08:00"')
              .replace('"12-24"', '"24.12."').replace('"BE"', '"XX"'))
    (tmp_path / "p.toml").write_text(broken + RULE)
    with pytest.raises(ConfigError) as raised:
        load_policies(tmp_path)
    assert sorted(key for _, key, _ in raised.value.problems) == [
        "calendars.office.holidays", "calendars.office.holidays_subdiv", "calendars.office.hours.monday",
        "calendars.office.timezone"], raised.value.problems
    assert "unknown calendar" not in str(raised.value)


def test_a_calendar_that_never_opens_is_refused(tmp_path):
    (tmp_path / "p.toml").write_text('[calendars.office]\ntimezone = "Europe/Berlin"\nhours = {}\n' + RULE)
    with pytest.raises(ConfigError) as raised:
        load_policies(tmp_path)
    [(file, key, problem)] = raised.value.problems
    assert (file, key) == (str(tmp_path / "p.toml"), "calendars.office.hours") and "opens on no day" in problem
