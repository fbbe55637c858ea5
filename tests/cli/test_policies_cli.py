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


NO_CLOCK = [
    # (id, make_mail arguments, kind, words of the reason, words of the text output)
    ("auto-generated", dict(sender="kim@customer.example", subject="Automatic reply: hi",
                            headers={"Auto-Submitted": "auto-replied"}),
     "auto", "auto-submitted", "an auto-generated message: it starts no clock, because a machine wrote it"),
    ("spam", dict(sender="kim@customer.example", subject="Cheap watches", headers={"X-Spam-Flag": "YES"}),
     "spam", "x-spam-flag", "a spam message: it starts no clock, because the spam filter tagged it"),
    ("team", dict(sender="bob@example.test", to="kim@customer.example", subject="Re: Invoice question"),
     "team", "from the team", "a team message: it starts no clock"),
    ("internal", dict(sender="bob@example.test", to="carol@example.test", subject="Fwd: Invoice question"),
     "internal", "only to the team", "an internal message: it starts no clock"),
    ("own", dict(sender="mailesc <mailesc@localhost>", to="manager@example.test", subject="[SLA breach] x"),
     "own", "mailesc's own mail", "mailesc's own message: it starts no clock"),
]


@pytest.mark.parametrize("mail, kind, reason, text", [n[1:] for n in NO_CLOCK], ids=[n[0] for n in NO_CLOCK])
def test_explain_of_a_message_that_starts_no_clock_says_why_and_nothing_else(config, tmp_path, capsys, mail, kind,
                                                                            reason, text):
    result = explain(config, tmp_path, capsys, "--received", "2026-10-23T16:00:00+02:00", **mail)
    assert (result["kind"], result["opens_thread"]) == (kind, False)
    assert reason in result["reason"].lower()
    assert result["rule"] is None and result["first_response_due"] is None and result["calendar"] is None
    assert result["escalations"] == [] and result["tried"] == [] and result["warn_at"] is None

    assert main(["-c", str(config), "policies", "explain", str(tmp_path / "message.eml")]) == 0
    out = capsys.readouterr().out
    assert text in out
    assert len(out.splitlines()) == 1, out  # no rule tried, no deadline, no ladder
    for word in ("rule", "due", "level", "calendar"):
        assert word not in out.lower(), out


FULL_RULES = """
[customers]
"bigcorp.example" = "gold"
"""
FULL_RULE = """
[[rule]]
name = "gold"
match = { contract = "gold" }
first_response = "1h"
warn_before = "15m"
notify = ["leads@example.test"]
acknowledge = "ack"
next_response = "8h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def test_explain_in_text_shows_everything_the_json_has(tmp_path, capsys):
    config = write_config(tmp_path, mailbox="", smtp="", rules=FULL_RULE)
    (tmp_path / "policies" / "customers.toml").write_text(FULL_RULES)
    result = explain(config, tmp_path, capsys, "--received", "2026-10-23T16:00:00+00:00",
                     sender="ceo@bigcorp.example", subject="Outage")
    assert (result["rule"], result["contract"], result["acknowledge"], result["next_response"]) == (
        "gold", "gold", "ack", "8h")
    assert result["warn_at"] == "2026-10-23T16:45:00+00:00" and result["warn_to"] == ["leads@example.test"]

    assert main(["-c", str(config), "policies", "explain", str(tmp_path / "message.eml"),
                 "--received", "2026-10-23T16:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "a customer message: it starts a clock" in out
    assert "contract             gold" in out
    assert "warning              2026-10-23T16:45:00+00:00  to leads@example.test" in out
    assert "first response due   2026-10-23T17:00:00+00:00" in out
    assert "level 1 escalation   2026-10-23T17:00:00+00:00  to manager@example.test" in out
    assert "next response        within 8h" in out
    assert "acknowledgement      template 'ack'" in out


@pytest.mark.parametrize("content", [None, b"", b"\r\n\r\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00binary"],
                         ids=["missing-file", "empty-file", "only-blank-lines", "outlook-msg-not-rfc5322"])
def test_explain_of_an_unreadable_message_exits_65(config, tmp_path, capsys, content):
    eml = tmp_path / "broken.eml"
    if content is not None:
        eml.write_bytes(content)
    assert main(["-c", str(config), "policies", "explain", str(eml)]) == 65
    err = capsys.readouterr().err
    assert str(eml) in err and "Traceback" not in err
