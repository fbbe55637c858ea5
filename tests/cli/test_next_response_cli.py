"""next_response end to end on a Maildir: the customer writes again after an answer and waits too long."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from mailesc.cli import main
from tests.support import deliver, make_mail, outbox_mails

RULES = """
[[rule]]
name = "standard"
first_response = "4h"
next_response = "2h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def test_a_missed_next_response_is_its_own_breach_and_escalation(maildir_setup, capsys):
    config, inbox, sent, outbox = maildir_setup
    (config.parent / "policies" / "rules.toml").write_text(RULES)
    now = datetime.now(timezone.utc)
    raw, first = make_mail(sender="pat@customer.example", subject="Export fails", date=now - timedelta(hours=6))
    deliver(inbox, raw, now - timedelta(hours=6))
    raw, _ = make_mail(sender="bob@example.test", to="pat@customer.example", subject="Re: Export fails",
                       in_reply_to=first, references=[first])
    deliver(sent, raw, now - timedelta(hours=5))  # answered within an hour
    raw, again = make_mail(sender="pat@customer.example", subject="Re: Export fails", in_reply_to=first,
                           references=[first], body="Still failing, see attached log.")
    deliver(inbox, raw, now - timedelta(hours=3))  # asked again 3 hours ago: the 2h next response is missed

    assert main(["-c", str(config), "once"]) == 0
    capsys.readouterr()

    [mail] = outbox_mails(outbox)
    assert mail["To"] == "manager@example.test" and again in mail["References"]
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    [breach] = json.loads(capsys.readouterr().out)
    assert breach["clock"] == "next_response" and breach["thread"] == first
    assert breach["escalations"][0]["message_id"] == mail["Message-ID"]
    assert datetime.fromisoformat(breach["due_at"]) - datetime.fromisoformat(breach["received_at"]) == \
        timedelta(hours=2)


CALENDAR_RULES = """
[calendars.berlin]
timezone = "Europe/Berlin"

[[rule]]
name = "standard"
first_response = "4h"
next_response = "2h"
calendar = "berlin"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def test_a_next_response_escalation_says_which_clock_broke_since_when_and_what_the_team_answered(maildir_setup,
                                                                                                 capsys):
    """Not "has had no answer yet" with the first message's times: the new message's times, in the
    calendar's zone, the team's answer, and a subject that tells it from a first-response escalation."""
    config, inbox, sent, outbox = maildir_setup
    (config.parent / "policies" / "rules.toml").write_text(CALENDAR_RULES)
    start = datetime(2026, 12, 21, 8, 0, tzinfo=timezone.utc)  # Mon 09:00 in Berlin
    raw, first = make_mail(sender="Pat <pat@customer.example>", subject="Export fails", date=start)
    deliver(inbox, raw, start)
    raw, answer = make_mail(sender="Bob Agent <bob@example.test>", to="pat@customer.example",
                            subject="Re: Export fails", in_reply_to=first, references=[first],
                            body="Please try again now.\n\nBob")
    deliver(sent, raw, start + timedelta(hours=1))
    raw, _ = make_mail(sender="Pat <pat@customer.example>", subject="Re: Export fails", in_reply_to=answer,
                       references=[first, answer], body="Still failing.\n\nSee the log below.")
    deliver(inbox, raw, start + timedelta(hours=3))  # Mon 12:00 Berlin; due 14:00

    assert main(["-c", str(config), "once", "--now", (start + timedelta(hours=7, minutes=5)).isoformat()]) == 0
    capsys.readouterr()

    [mail] = outbox_mails(outbox)
    assert mail["Subject"] == "[SLA breach, level 1, next response] Export fails"
    text = mail.get_body(("plain",)).get_content()
    assert "has had no answer yet" not in text
    assert "wrote again on Mon 21 Dec 12:00 CET" in text
    assert "Due by:       Mon 21 Dec 14:00 CET (standard policy, next response)" in text
    assert "Overdue by:   2h 05m" in text and "First wrote:  Mon 21 Dec 09:00 CET" in text
    assert "Mon 21 Dec 10:00 CET  Bob Agent <bob@example.test>" in text
    assert "Please try again now.\n\n  Bob" in text.replace("\r\n", "\n")  # the team's answer, paragraphs kept
    assert "Still failing.\n\n  See the log below." in text.replace("\r\n", "\n")
    html = mail.get_body(("html",)).get_content()
    assert "wrote again on Mon 21 Dec 12:00 CET" in html and "Bob Agent" in html


def test_templates_timezone_overrides_the_calendar_zone(maildir_setup, capsys):
    config, inbox, sent, outbox = maildir_setup
    (config.parent / "policies" / "rules.toml").write_text(CALENDAR_RULES)
    config.write_text(config.read_text().replace("[templates]\n", '[templates]\ntimezone = "America/New_York"\n'))
    start = datetime(2026, 12, 21, 8, 0, tzinfo=timezone.utc)
    raw, _ = make_mail(sender="pat@customer.example", subject="Export fails", date=start)
    deliver(inbox, raw, start)
    assert main(["-c", str(config), "once", "--now", (start + timedelta(hours=5)).isoformat()]) == 0
    [mail] = outbox_mails(outbox)
    text = mail.get_body(("plain",)).get_content()
    assert mail["Subject"] == "[SLA breach, level 1] Export fails"
    assert "wrote to support on Mon 21 Dec 03:00 EST and has had no answer yet" in text
    assert "Due by:       Mon 21 Dec 07:00 EST (standard policy, first response)" in text


def test_an_unknown_templates_timezone_is_a_config_error(maildir_setup, capsys):
    config, *_ = maildir_setup
    config.write_text(config.read_text().replace("[templates]\n", '[templates]\ntimezone = "Mars/Olympus"\n'))
    assert main(["-c", str(config), "check", "--offline"]) == 78
    assert "templates.timezone" in capsys.readouterr().err
