"""`mailesc policies explain` and `mailesc policies check`: why a message gets its deadlines."""

from __future__ import annotations

import json

import pytest

from mailesc.cli import main
from tests.support import make_mail, write_config

RULES = """
[calendars.office]
timezone = "Europe/Berlin"
hours = { mon = "09:00-18:00", tue = "09:00-18:00", wed = "09:00-18:00", thu = "09:00-18:00", fri = "09:00-18:00" }
holidays_country = "DE"

[[rule]]
name = "vip"
match = { from_domain = ["bigcorp.example"], subject = "(?i)outage" }
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]

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


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path, mailbox="", smtp="", rules=RULES)


def explain(config, tmp_path, capsys, *extra, **mail) -> dict:
    raw, _ = make_mail(**mail)
    eml = tmp_path / "message.eml"
    eml.write_bytes(raw)
    assert main(["-c", str(config), "policies", "explain", str(eml), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_explain_shows_rule_calendar_due_time_and_ladder(config, tmp_path, capsys):
    result = explain(config, tmp_path, capsys, "--received", "2026-10-23T16:00:00+02:00",
                     sender="kim@customer.example", subject="Invoice question")
    assert result["rule"] == "standard" and result["calendar"] == "office"
    assert result["received"] == "2026-10-23T16:00:00+02:00"
    # Friday 16:00: two office hours on Friday, two on Monday (after the clocks went back on Sunday).
    assert result["first_response_due"] == "2026-10-26T11:00:00+01:00"
    assert result["warn_at"] is None
    assert result["escalations"] == [
        {"level": 1, "at": "2026-10-26T11:00:00+01:00", "to": ["manager@example.test"], "template": "escalation"},
        {"level": 2, "at": "2026-10-26T13:00:00+01:00", "to": ["director@example.test"], "template": "escalation"}]
    assert [(t["rule"], t["matched"], t["failed"]) for t in result["tried"]] == [
        ("vip", False, ["from_domain", "subject"]), ("standard", True, [])]


def test_explain_uses_the_date_header_without_received(config, tmp_path, capsys):
    from datetime import datetime, timezone

    result = explain(config, tmp_path, capsys, sender="ceo@bigcorp.example", subject="Outage!",
                     date=datetime(2026, 10, 24, 23, 0, tzinfo=timezone.utc))
    assert result["rule"] == "vip" and result["calendar"] == "always"
    assert result["received"] == "2026-10-24T23:00:00+00:00"
    assert result["first_response_due"] == "2026-10-25T00:00:00+00:00"  # around the clock, weekend or not


def test_explain_says_when_a_message_would_not_start_a_clock(config, tmp_path, capsys):
    result = explain(config, tmp_path, capsys, sender="kim@customer.example", subject="Automatic reply: hi",
                     headers={"Auto-Submitted": "auto-replied"})
    assert result["kind"] == "auto" and result["opens_thread"] is False
    assert "auto-submitted" in result["auto_generated"].lower()


def test_explain_in_text_lists_every_rule_tried(config, tmp_path, capsys):
    raw, _ = make_mail(sender="kim@customer.example", subject="Invoice question")
    (tmp_path / "m.eml").write_bytes(raw)
    assert main(["-c", str(config), "policies", "explain", str(tmp_path / "m.eml"),
                 "--received", "2026-10-23T16:00:00+02:00"]) == 0
    out = capsys.readouterr().out
    assert "rule 'vip'" in out and "does not match: from_domain, subject" in out
    assert "first response due   2026-10-26T11:00:00+01:00" in out and "director@example.test" in out


def test_policies_check_lists_rules_and_calendars(config, capsys):
    assert main(["-c", str(config), "policies", "check"]) == 0
    out = capsys.readouterr().out
    assert "rule 'standard'" in out and "calendar 'office'" in out and out.rstrip().endswith("OK")


def test_policies_check_names_a_broken_calendar_and_exits_78(config, capsys):
    policy = config.parent / "policies" / "rules.toml"
    policy.write_text(RULES.replace('"DE"', '"Narnia"'))
    assert main(["-c", str(config), "policies", "check"]) == 78
    err = capsys.readouterr().err
    assert str(policy) in err and "calendars.office" in err and "Narnia" in err
