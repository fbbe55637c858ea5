"""Warnings before the deadline and managers acknowledging escalations, on real Dovecot and SMTP, on both stores
(the embedded file and PostgreSQL: the ``backend`` fixture)."""

from __future__ import annotations

import hashlib
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
def config(tmp_path, mailbox, smtp_sink, monkeypatch, request, backend):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    warn = getattr(request, "param", "15m")
    return write_config(tmp_path, mailbox=imap_section(mailbox),
                        smtp=smtp_section(smtp_sink) + '\nreply_to = "support@example.test"',
                        rules=RULES.format(warn=warn), store=backend.store_section)


def once(config, capsys, now: datetime | None = None) -> None:
    assert main(["-c", str(config), "once"] + (["--now", now.isoformat()] if now else [])) == 0, \
        capsys.readouterr().err
    capsys.readouterr()


def breaches(config, capsys, backend) -> list[dict]:
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
                                                                                   capsys, backend):
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
    [breach] = breaches(config, capsys, backend)
    assert breach["acknowledged_by"] == "manager@example.test" and breach["acknowledged_at"]
    assert breach["status"] == "open"  # acknowledging is not answering the customer
    assert [e["level"] for e in breach["escalations"]] == [1]
    assert main(["-c", str(config), "breaches", "show", str(breach["id"])]) == 0
    assert "acknowledged by manager@example.test" in capsys.readouterr().out


def test_a_forged_reply_from_a_customer_does_not_acknowledge_the_escalation(config, mailbox, smtp_sink, capsys,
                                                                            backend):
    """Whoever knows the customer's Message-ID cannot compute the escalation's (it carries an HMAC of the
    installation's secret), and even a reply that names it counts only from a recipient or the team."""
    thread = customer_writes(mailbox, minutes_ago=90)
    once(config, capsys)
    [escalation] = smtp_sink.wait_for(1)
    escalation_id = escalation.message["Message-ID"]
    old_style = "<mailesc.%s.L1@example.test>" % hashlib.sha256(thread.encode()).hexdigest()[:20]
    assert escalation_id != old_style  # what anybody could compute before

    now = datetime.now(timezone.utc)
    # The customer learnt the real id (say, a manager forwarded the escalation) and replies "to" it.
    raw, _ = make_mail(sender=CUSTOMER, subject="Re: Cannot log in", in_reply_to=escalation_id,
                       references=[thread, escalation_id], body="I acknowledge this for you.", date=now)
    mailbox.append("INBOX", raw, now)
    once(config, capsys, now=now + timedelta(hours=3))  # level 2 is due

    [breach] = breaches(config, capsys, backend)
    assert breach["acknowledged_by"] is None and breach["acknowledged_at"] is None
    assert [e["level"] for e in breach["escalations"]] == [1, 2]
    assert [m.rcpt_tos for m in smtp_sink.wait_for(2)] == [["manager@example.test"], ["director@example.test"]]


def test_a_forged_marker_from_a_customer_does_not_hide_their_mail(config, mailbox, smtp_sink, capsys, backend):
    """Anybody can write an X-Mailesc header: an unsigned (or wrongly signed) one does not make a customer's
    mail mailesc's own, so its clock runs and it is escalated."""
    now = datetime.now(timezone.utc) - timedelta(minutes=90)
    for number, marker in enumerate(["escalation; level=1; breach=1",
                                     "escalation; level=1; breach=1; sig=0123456789abcdef01234567"]):
        raw, _ = make_mail(sender=f"Pat {number} <pat{number}@customer.example>", subject=f"Forged {number}",
                           date=now, headers={"X-Mailesc": marker})
        mailbox.append("INBOX", raw, now)
    once(config, capsys)

    assert sorted(b["customer"] for b in breaches(config, capsys, backend)) == ["pat0@customer.example",
                                                                        "pat1@customer.example"]
    mails = smtp_sink.wait_for(2)
    # mailesc's own escalations carry a marker it can check, and are never read back as customer mail.
    assert all("; sig=" in m.message["X-Mailesc"] for m in mails)
    for mail in mails:
        mailbox.append("INBOX", mail.content, now)
    once(config, capsys)
    assert len(breaches(config, capsys, backend)) == 2


def test_a_team_member_replying_to_the_escalation_acknowledges_it(config, mailbox, smtp_sink, capsys, backend):
    thread = customer_writes(mailbox, minutes_ago=90)
    once(config, capsys)
    [escalation] = smtp_sink.wait_for(1)
    escalation_id = escalation.message["Message-ID"]
    now = datetime.now(timezone.utc)
    raw, _ = make_mail(sender="Lee Lead <lee@example.test>", to="manager@example.test", subject="Re: escalation",
                       in_reply_to=escalation_id, references=[thread, escalation_id], date=now)
    mailbox.append("INBOX", raw, now)
    once(config, capsys, now=now + timedelta(hours=3))
    [breach] = breaches(config, capsys, backend)
    assert breach["acknowledged_by"] == "lee@example.test"
    assert [e["level"] for e in breach["escalations"]] == [1]


ACK_RULES = """
[[rule]]
name = "standard"
first_response = "4h"
acknowledge = "ack"
acknowledge_every = "1d"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


@pytest.fixture
def ack_config(tmp_path, mailbox, smtp_sink, monkeypatch, backend):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    return write_config(tmp_path, mailbox=imap_section(mailbox),
                        smtp=smtp_section(smtp_sink) + '\nreply_to = "support@example.test"', rules=ACK_RULES,
                        store=backend.store_section)


def test_a_customer_gets_one_polite_acknowledgement_and_it_is_not_a_response(ack_config, mailbox, smtp_sink, capsys,
                                                                             backend):
    first = customer_writes(mailbox, minutes_ago=5)
    once(ack_config, capsys)
    [ack] = smtp_sink.wait_for(1)
    assert ack.rcpt_tos == ["pat@customer.example"]
    assert ack.mail_from in ("", "<>")  # RFC 3834: a null envelope sender, so nothing can bounce back into a loop
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert ack.message["In-Reply-To"] == first and ack.message["Subject"] == "Re: Cannot log in"
    assert ack.message["Reply-To"] == "support@example.test"
    assert ack.message["X-Mailesc"] == "ack"  # no signed marker the customer could copy onto a mail of theirs

    mailbox.append("Sent", ack.content, datetime.now(timezone.utc))  # as a server that keeps sent mail would
    raw, _ = make_mail(sender=CUSTOMER, subject="Re: Cannot log in", in_reply_to=first, references=[first],
                       body="Thanks! Also, any news?")
    mailbox.append("INBOX", raw, datetime.now(timezone.utc))
    when = datetime.now(timezone.utc) - timedelta(minutes=1)
    other, _ = make_mail(sender=CUSTOMER, subject="Second problem", date=when)  # same sender, same day
    mailbox.append("INBOX", other, when)
    once(ack_config, capsys, now=datetime.now(timezone.utc) + timedelta(hours=4, minutes=1))

    # No second acknowledgement (same thread; same sender within a day); the ack stopped no clock.
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.wait_for(3)) == [
        "manager@example.test", "manager@example.test", "pat@customer.example"]
    recorded = breaches(ack_config, capsys, backend)
    assert first in [b["thread"] for b in recorded] and len(recorded) == 2
    assert all(b["responded_at"] is None for b in recorded)


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied"},
    {"List-Id": "<users.lists.example>", "Precedence": "list"},
    {"Return-Path": "<>"},
    {"X-Spam-Flag": "YES"},
], ids=["auto-reply", "mailing-list", "bounce", "spam"])
def test_no_acknowledgement_for_machines_lists_or_bounces(ack_config, mailbox, smtp_sink, capsys, headers):
    when = datetime.now(timezone.utc) - timedelta(minutes=2)
    raw, _ = make_mail(sender=CUSTOMER, subject="Re: something", date=when, headers=headers)
    mailbox.append("INBOX", raw, when)
    once(ack_config, capsys)
    assert smtp_sink.messages == []


def test_old_mail_found_on_a_first_run_gets_no_acknowledgement(ack_config, mailbox, smtp_sink, capsys):
    customer_writes(mailbox, minutes_ago=180)  # history: written long before mailesc started watching
    once(ack_config, capsys)
    assert smtp_sink.messages == []


def storm(tmp_path, mailbox, smtp_sink, monkeypatch, backend, hours_ago: float):
    """A config with storm control at 3, and four customers who wrote `hours_ago` (one at a time, 1h rule)."""
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink),
                          rules=RULES.replace('warn_before = "{warn}"\nnotify = ["team-leads@example.test"]\n', ""),
                          extra="[daemon]\ndigest_after = 3", store=backend.store_section)
    when = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    for number in range(4):
        raw, _ = make_mail(sender=f"customer{number}@customer.example", subject=f"Problem {number}", date=when)
        mailbox.append("INBOX", raw, when)
    return config, when


def test_a_storm_of_escalations_becomes_one_digest_and_every_breach_is_recorded(tmp_path, mailbox, smtp_sink,
                                                                                 monkeypatch, capsys, backend):
    config, when = storm(tmp_path, mailbox, smtp_sink, monkeypatch, backend, hours_ago=2)
    once(config, capsys)

    [digest] = smtp_sink.wait_for(1)
    assert digest.rcpt_tos == ["manager@example.test"] and "4 threads" in digest.message["Subject"]
    text = digest.message.get_body(("plain",)).get_content()
    assert all(f"Problem {number}" in text for number in range(4))
    recorded = breaches(config, capsys, backend)
    assert len(recorded) == 4
    assert {e["digest"] for b in recorded for e in b["escalations"]} == {digest.message["Message-ID"]}
    assert all(e["delivery"] == "sent" for b in recorded for e in b["escalations"])

    raw, _ = make_mail(sender="late@customer.example", subject="Problem 5", date=when)
    mailbox.append("INBOX", raw, when)
    once(config, capsys)  # a single new escalation goes out on its own
    assert [m.message["X-Mailesc"].split(";")[0] for m in smtp_sink.wait_for(2)] == ["digest", "escalation"]


def test_a_digest_interrupted_by_a_crash_goes_out_again_as_the_same_mail(tmp_path, mailbox, smtp_sink,
                                                                        monkeypatch, capsys, backend):
    from mailesc.model import Delivery

    config, when = storm(tmp_path, mailbox, smtp_sink, monkeypatch, backend, hours_ago=1.5)
    once(config, capsys)
    [digest] = smtp_sink.wait_for(1)

    # The server accepted the digest, then the process died before it recorded so: as if still pending.
    with backend.open(tmp_path) as store:
        box = store.box("default")
        for breach in box.breaches.values():
            for record in breach.escalations:
                record.delivery, record.sent_at = Delivery.PENDING, None
            box.put_breach(breach)
        box.flush()
    raw, _ = make_mail(sender="late@customer.example", subject="Problem 5", date=when)
    mailbox.append("INBOX", raw, when)  # a fifth escalation falls due meanwhile
    once(config, capsys, now=datetime.now(timezone.utc) + timedelta(minutes=1))

    [again] = [m for m in smtp_sink.wait_for(3)[1:] if m.message["X-Mailesc"].startswith("digest")]
    [alone] = [m for m in smtp_sink.messages[1:] if m.message["X-Mailesc"].startswith("escalation")]
    assert again.message["Message-ID"] == digest.message["Message-ID"]  # the same digest of the same four
    assert again.message.get_body(("plain",)).get_content().count("Problem ") == 4
    assert "Problem 5" in alone.message["Subject"]  # the newcomer on its own
