"""warn_before: when the team is warned, and which rules are refused."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mailesc.errors import ConfigError
from mailesc.policies import load_policies

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = """
[calendars.office]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-17:00" }
"""


def rule(extra: str, calendar: str = "always") -> str:
    return f"""
[[rule]]
name = "r"
first_response = "4h"
calendar = "{calendar}"
{extra}
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


@pytest.mark.parametrize("extra, received, expected", [
    ('warn_before = "15m"\nnotify = ["lead@example.test"]', datetime(2026, 10, 21, 10, 0, tzinfo=BERLIN),
     datetime(2026, 10, 21, 13, 45, tzinfo=BERLIN)),  # 4h - 15m = 3h45m of office time
    ('warn_before = "80%"\nnotify = "lead@example.test"', datetime(2026, 10, 21, 10, 0, tzinfo=BERLIN),
     datetime(2026, 10, 21, 13, 12, tzinfo=BERLIN)),  # 80% of 4h = 3h12m
    ('warn_before = "1h"\nnotify = ["lead@example.test"]', datetime(2026, 10, 23, 15, 0, tzinfo=BERLIN),
     datetime(2026, 10, 26, 10, 0, tzinfo=BERLIN)),  # 3h of office time: 2h Friday, 1h Monday 09:00-10:00 (CET)
    ('warn_before = "30m"\nnotify = ["lead@example.test"]', datetime(2026, 10, 24, 11, 0, tzinfo=BERLIN),
     datetime(2026, 10, 26, 12, 30, tzinfo=BERLIN)),  # written on Saturday: the clock starts Monday 09:00
], ids=["minutes-before", "share", "over-the-weekend", "written-on-saturday"])
def test_warning_time_in_office_hours(tmp_path, extra, received, expected):
    (tmp_path / "p.toml").write_text(OFFICE + rule(extra, calendar="office"))
    warn_at = load_policies(tmp_path).get("r").warn_at(received)
    assert warn_at == expected and warn_at.utcoffset() == expected.utcoffset()


def test_no_warning_without_warn_before(tmp_path):
    (tmp_path / "p.toml").write_text(rule(""))
    assert load_policies(tmp_path).get("r").warn_at(datetime(2026, 1, 5, 9, tzinfo=BERLIN)) is None


@pytest.mark.parametrize("extra, key, problem", [
    ('warn_before = "15m"', "notify", "at least one e-mail address"),
    ('warn_before = "5h"\nnotify = ["a@example.test"]', "warn_before", "shorter than first_response"),
    ('warn_before = "0%"\nnotify = ["a@example.test"]', "warn_before", "between 0% and 100%"),
    ('warn_before = "120%"\nnotify = ["a@example.test"]', "warn_before", "between 0% and 100%"),
    ('warn_before = "soon"\nnotify = ["a@example.test"]', "warn_before", "not a duration"),
    ('notify = ["a@example.test"]', "notify", "only means something with warn_before"),
], ids=["no-notify", "longer-than-deadline", "zero-share", "share-over-100", "not-a-duration", "notify-alone"])
def test_bad_warnings_are_named(tmp_path, extra, key, problem):
    (tmp_path / "p.toml").write_text(rule(extra))
    with pytest.raises(ConfigError) as raised:
        load_policies(tmp_path)
    assert any(p_key == key and problem in text for _, p_key, text in raised.value.problems), raised.value
