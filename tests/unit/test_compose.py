"""compose.py: the Message-IDs of mailesc's mails (stable, signed, one per mail) and the headers each kind of
mail carries (RFC 3834 for what goes to a customer, signed markers for what goes to managers)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

import mailesc
from mailesc.compose import (Composer, ack_mail_id, daily_digest_mail, daily_message_id, digest_message_id,
                             escalation_mail_id, thread_mail_id, warning_mail_id)
from mailesc.errors import SourceError
from mailesc.model import Breach, Kind, Thread, ThreadMessage
from mailesc.render import Templates
from mailesc.signing import marker_is_ours

SECRET = b"s" * 32
OWN = "escalations@example.test"
T0 = datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc)
TEMPLATES = Path(mailesc.__file__).parent / "data" / "templates"
CUSTOMER_MAIL = (b"From: Ann <ann@customer.test>\r\nTo: support@example.test\r\nSubject: Broken\r\n"
                 b"Message-ID: <first@customer.test>\r\n\r\nIt is broken.\r\n")


def _thread(mailbox: str = "default") -> Thread:
    thread = Thread(id="<first@customer.test>", subject="Broken", mailbox=mailbox, policy="standard",
                    due_at=T0 + timedelta(hours=4))
    thread.messages.append(ThreadMessage(key="k1", folder="INBOX", message_id="<first@customer.test>",
                                         kind=Kind.CUSTOMER, sender="ann@customer.test", arrived=T0,
                                         subject="Broken", name="Ann", size=len(CUSTOMER_MAIL)))
    return thread


def _breach(breach_id: int = 7) -> Breach:
    return Breach(id=breach_id, thread="<first@customer.test>", customer="ann@customer.test", subject="Broken",
                  policy="standard", received_at=T0, due_at=T0 + timedelta(hours=4))


@pytest.mark.parametrize("make, expected_mark", [
    (lambda t: escalation_mail_id(SECRET, t, 0, 1, OWN), ".L1@"),
    (lambda t: escalation_mail_id(SECRET, t, 0, 2, OWN), ".L2@"),
    (lambda t: escalation_mail_id(SECRET, t, 2, 1, OWN), ".N2L1@"),
    (lambda t: warning_mail_id(SECRET, t, OWN), ".W@"),
    (lambda t: ack_mail_id(SECRET, t, OWN), ".A@"),
], ids=["level-1", "level-2", "next-response-2-level-1", "warning", "ack"])
def test_thread_mail_ids_are_stable_signed_and_per_mail(make, expected_mark):
    thread = _thread()
    mail_id = make(thread)
    assert mail_id == make(_thread())  # a resend after a crash is the same mail
    assert expected_mark in mail_id and mail_id.startswith("<mailesc.") and mail_id.endswith("@example.test>")
    assert mail_id != make(_thread("billing"))  # the same root id in another mailbox is another thread
    other = {"L1": escalation_mail_id(b"o" * 32, thread, 0, 1, OWN), "W": warning_mail_id(b"o" * 32, thread, OWN)}
    assert mail_id not in other.values()  # only computable with the installation's secret


def test_the_default_mailbox_keeps_the_ids_it_always_had():
    from mailesc.signing import mail_message_id
    assert thread_mail_id(SECRET, _thread(), "L1", OWN) == mail_message_id(SECRET, "<first@customer.test>", "L1", OWN)


@pytest.mark.parametrize("ids, other_order, different", [
    (["<a@x>", "<b@x>"], ["<b@x>", "<a@x>"], ["<a@x>", "<c@x>"]),
    (["<only@x>"], ["<only@x>"], ["<other@x>"]),
], ids=["two", "one"])
def test_a_storm_digest_id_depends_on_its_members_only(ids, other_order, different):
    assert digest_message_id(ids, OWN) == digest_message_id(other_order, OWN)
    assert digest_message_id(ids, OWN) != digest_message_id(different, OWN)
    assert digest_message_id(ids, OWN).startswith("<mailesc.digest.")


@pytest.mark.parametrize("sender, expected", [
    ("escalations@example.test", "<mailesc.daily.2026-12-21@example.test>"),
    ("Escalations <escalations@example.test>", "<mailesc.daily.2026-12-21@example.test>"),
    ("", "<mailesc.daily.2026-12-21@mailesc.invalid>"),
], ids=["address", "with-name", "no-sender"])
def test_the_daily_digest_id_is_one_per_day(sender, expected):
    assert daily_message_id(date(2026, 12, 21), sender) == expected


def _composer() -> Composer:
    return Composer(Templates(TEMPLATES), OWN, reply_to="support-leads@example.test", secret=SECRET)


def _parsed(mail):
    return message_from_bytes(mail.data, policy=default_policy)


def _fetch(keys):
    return {key: CUSTOMER_MAIL for key in keys if key == "k1"}


@pytest.mark.parametrize("kind, auto_submitted, signed, envelope_sender", [
    ("escalation", "auto-generated", True, OWN),
    ("warning", "auto-generated", True, OWN),
    ("ack", "auto-replied", False, ""),
], ids=["escalation", "warning", "ack"])
def test_headers_per_kind_of_thread_mail(kind, auto_submitted, signed, envelope_sender):
    thread, breach = _thread(), _breach()
    mail_id = {"escalation": escalation_mail_id(SECRET, thread, 0, 1, OWN),
               "warning": warning_mail_id(SECRET, thread, OWN), "ack": ack_mail_id(SECRET, thread, OWN)}[kind]
    to = ["ann@customer.test"] if kind == "ack" else ["manager@example.test"]
    mail = _composer().thread_mail(kind=kind, message_id=mail_id, to=to, template=kind, thread=thread,
                                   now=T0 + timedelta(hours=5), fetch=_fetch,
                                   breach=breach if kind == "escalation" else None,
                                   level=1 if kind == "escalation" else None)
    parsed = _parsed(mail)
    assert (mail.message_id, mail.sender, mail.recipients) == (mail_id, envelope_sender, tuple(to))
    assert parsed["Message-ID"] == mail_id
    assert parsed["Auto-Submitted"] == auto_submitted
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["Reply-To"] == "support-leads@example.test"
    assert marker_is_ours(SECRET, parsed["X-Mailesc"], mail_id) is signed
    attached = [part for part in parsed.iter_attachments() if part.get_content_type() == "message/rfc822"]
    assert len(attached) == (1 if kind == "escalation" else 0)  # only escalations attach the thread


def test_a_thread_mail_still_goes_when_the_mailbox_cannot_be_read():
    def unreadable(keys):
        raise SourceError("the server said no")

    thread = _thread()
    mail = _composer().thread_mail(kind="escalation", message_id=escalation_mail_id(SECRET, thread, 0, 1, OWN),
                                   to=["manager@example.test"], template="escalation", thread=thread,
                                   now=T0 + timedelta(hours=5), fetch=unreadable, breach=_breach(), level=1)
    text = _parsed(mail).get_body(("plain",)).get_content()
    assert "could not be fetched" in text


def test_a_storm_digest_lists_its_members_and_refers_to_them():
    members = []
    for number in range(3):
        thread = Thread(id=f"<t{number}@customer.test>", subject="Broken", policy="standard",
                        due_at=T0 + timedelta(hours=4))
        thread.messages.append(ThreadMessage(key=f"k{number}", folder="INBOX", message_id=thread.id,
                                             kind=Kind.CUSTOMER, sender="ann@customer.test", arrived=T0))
        members.append((thread, _breach(10 + number), 1, escalation_mail_id(SECRET, thread, 0, 1, OWN)))
    mail_id = digest_message_id([m[3] for m in members], OWN)
    mail = _composer().storm_digest(mail_id, ["manager@example.test"], members, T0 + timedelta(hours=5))
    parsed = _parsed(mail)
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert marker_is_ours(SECRET, parsed["X-Mailesc"], mail_id)
    assert parsed["X-Mailesc"].startswith("digest; escalations=3")
    assert parsed["References"].split() == [m[3] for m in members]


def test_the_daily_digest_is_auto_generated_with_its_plain_marker():
    mail_id = daily_message_id(date(2026, 12, 21), OWN)
    context = {"date": "2026-12-21", "yesterday": "2026-12-20", "now": "2026-12-21T09:00:00Z", "breaches": [],
               "unreviewed": [], "unreviewed_count": 0, "overdue_count": 0, "review_period_days": 7}
    mail = daily_digest_mail(Templates(TEMPLATES), "daily", context, sender=OWN, to=["boss@example.test"],
                             message_id=mail_id, now=T0)
    parsed = _parsed(mail)
    assert (parsed["Auto-Submitted"], parsed["X-Mailesc"], parsed["Reply-To"]) == (
        "auto-generated", "daily-digest", None)
    assert mail.recipients == ("boss@example.test",)
