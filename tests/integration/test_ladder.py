"""Warnings before the deadline and managers acknowledging escalations, on real Dovecot and SMTP."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from tests.support import imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

CUSTOMER = "Pat Customer <pat@customer.example>"
RULES = """
[[rule]]
name = "standard"
first_response = "1h"
warn_before = "{warn}"
notify = ["team-leads@example.test"]
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
[[rule.escalate]]
after = "2h"
to = ["director@example.test"]
"""


@pytest.fixture
def config(tmp_path, mailbox, smtp_sink, monkeypatch, request):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    warn = getattr(request, "param", "15m")
    return write_config(tmp_path, mailbox=imap_section(mailbox),
                        smtp=smtp_section(smtp_sink) + '\nreply_to = "support@example.test"',
                        rules=RULES.format(warn=warn))


def once(config, capsys, now: datetime | None = None) -> None:
    assert main(["-c", str(config), "once"] + (["--now", now.isoformat()] if now else [])) == 0, \
        capsys.readouterr().err
    capsys.readouterr()


def breaches(config, capsys) -> list[dict]:
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def customer_writes(mailbox, minutes_ago: float) -> str:
    when = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    raw, message_id = make_mail(sender=CUSTOMER, subject="Cannot log in", date=when)
    mailbox.append("INBOX", raw, when)
    return message_id


@pytest.mark.parametrize("config", ["15m", "80%"], indirect=True, ids=["15m-before", "at-80-percent"])
def test_the_team_is_warned_once_before_the_deadline_then_the_manager_is_escalated_to(config, mailbox, smtp_sink,
                                                                                      capsys):
    thread = customer_writes(mailbox, minutes_ago=50)  # warning due at 45 min (15m before) or 48 min (80%)
    once(config, capsys)
    [warning] = smtp_sink.wait_for(1)
    assert warning.rcpt_tos == ["team-leads@example.test"]
    assert "SLA warning" in warning.message["Subject"] and thread in warning.message["References"]
    assert warning.message["Auto-Submitted"] == "auto-generated"
    assert list(warning.message.iter_attachments()) == []
    assert warning.message["Reply-To"] == "support@example.test"

    once(config, capsys)
    assert len(smtp_sink.messages) == 1  # never twice
    once(config, capsys, now=datetime.now(timezone.utc) + timedelta(minutes=11))
    assert [m.rcpt_tos for m in smtp_sink.wait_for(2)] == [["team-leads@example.test"], ["manager@example.test"]]


def test_no_warning_once_the_team_has_answered_or_the_deadline_has_passed(config, mailbox, smtp_sink, capsys):
    answered = customer_writes(mailbox, minutes_ago=50)
    raw, _ = make_mail(sender="alice@example.test", to=CUSTOMER, subject="Re: Cannot log in", in_reply_to=answered,
                       references=[answered])
    mailbox.append("Sent", raw, datetime.now(timezone.utc) - timedelta(minutes=30))
    customer_writes(mailbox, minutes_ago=90)  # mailesc was not running at its warning time

    once(config, capsys)

    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["manager@example.test"]]
    assert "SLA breach" in smtp_sink.messages[0].message["Subject"]


def test_a_manager_replying_to_the_escalation_acknowledges_it_and_stops_the_ladder(config, mailbox, smtp_sink,
                                                                                   capsys):
    thread = customer_writes(mailbox, minutes_ago=90)
    once(config, capsys)
    [escalation] = smtp_sink.wait_for(1)
    escalation_id = escalation.message["Message-ID"]

    reply_at = datetime.now(timezone.utc)
    raw, _ = make_mail(sender="Mia Manager <manager@example.test>", to=escalation.message["Reply-To"],
                       subject="Re: " + escalation.message["Subject"], in_reply_to=escalation_id,
                       references=[thread, escalation_id], body="On it, calling Pat now.", date=reply_at)
    mailbox.append("INBOX", raw, reply_at)
    once(config, capsys, now=datetime.now(timezone.utc) + timedelta(hours=3))  # level 2 would be due

    assert len(smtp_sink.messages) == 1
    [breach] = breaches(config, capsys)
    assert breach["acknowledged_by"] == "manager@example.test" and breach["acknowledged_at"]
    assert breach["status"] == "open"  # acknowledging is not answering the customer
    assert [e["level"] for e in breach["escalations"]] == [1]
    assert main(["-c", str(config), "breaches", "show", str(breach["id"])]) == 0
    assert "acknowledged by manager@example.test" in capsys.readouterr().out
