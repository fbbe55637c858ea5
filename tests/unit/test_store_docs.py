"""The store's hand-made record documents say what dataclasses.asdict would: every field of a breach is
written (a field added to Breach cannot be forgotten), with the same keys in the same order and values."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.model import Breach, Delivery, QueuedMail, Status
from mailesc.store import _breach_doc, _escalation_doc, _notification_doc, _plain, _text

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def _asdict_doc(breach: Breach) -> dict:
    """What _breach_doc wrote when it was made with dataclasses.asdict."""
    doc = _plain(asdict(breach))
    doc["escalations"] = [_escalation_doc(e) for e in breach.escalations]
    if breach.notifications:  # a level's webhook posts: written only once there is one
        doc["notifications"] = [_notification_doc(n) for n in breach.notifications]
    else:
        del doc["notifications"]
    if breach.mailbox == "default":
        del doc["mailbox"]
    return doc


def _escalation(level: int, **changes) -> QueuedMail:
    return QueuedMail(kind="escalation", message_id=f"<e{level}@example.test>", to=["boss@example.test"],
                      at=T0 + timedelta(hours=level), template="escalation", level=level, **changes)


BREACHES = [
    ("new", Breach(id=1, thread="<t1@x>", customer="c@example.org", subject="Help", policy="standard",
                   received_at=T0, due_at=T0 + timedelta(hours=4))),
    ("every-field-set", Breach(
        id=7, thread="<t7@x>", customer="c@example.org", subject="Grüße 🙂", policy="vip",
        received_at=T0, due_at=T0 + timedelta(hours=1), status=Status.RESPONDED_LATE,
        responded_at=T0 + timedelta(hours=9),
        escalations=[_escalation(1, delivery=Delivery.SENT, sent_at=T0 + timedelta(hours=2), attempts=1),
                     _escalation(2, delivery=Delivery.FAILED, error="550 no such user", attempts=3,
                                 retry_at=T0 + timedelta(hours=5), digest="<d@x>",
                                 resent=[{"at": "2026-11-03T10:00:00+00:00", "to": ["b@x"], "was": "failed"}])],
        notifications=[QueuedMail(kind="webhook", message_id="<w1@example.test>", to=["webhook:ops"],
                                  at=T0 + timedelta(hours=1), template="", level=1, delivery=Delivery.SENT,
                                  sent_at=T0 + timedelta(hours=1), attempts=1)],
        acknowledged_by="boss@example.test", acknowledged_at=T0 + timedelta(hours=3), clock=2, mailbox="sales")),
    ("default-mailbox-next-clock", Breach(id=3, thread="<t3@x>", customer="c@example.org", subject="", policy="p",
                                          received_at=T0, due_at=T0, clock=1, escalations=[_escalation(1)])),
]


@pytest.mark.parametrize("breach", [b for _, b in BREACHES], ids=[name for name, _ in BREACHES])
def test_a_breach_document_is_what_asdict_gives(breach):
    expected = _asdict_doc(breach)
    doc = _breach_doc(breach)
    assert doc == expected
    assert list(doc) == list(expected)  # the same key order: the same JSON text
    assert _text(doc) == _text(expected)
    assert json.loads(_text(doc))["id"] == breach.id


def test_every_field_of_a_breach_is_written():
    breach = BREACHES[1][1]
    assert {f.name for f in fields(Breach)} == set(_breach_doc(breach))  # "sales": its mailbox is written too


def test_making_a_document_leaves_the_breach_as_it_was():
    breach = BREACHES[1][1]
    before = asdict(breach)
    doc = _breach_doc(breach)
    doc["escalations"][0]["to"].append("someone@else")
    doc["status"] = "changed"
    assert asdict(breach) == before
