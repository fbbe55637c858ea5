"""The retention stage on its own: a thread quiet for `archive_after`, with nothing left to send or to fall due,
leaves the live records for the archive (and the indexes beside them); anything still owed keeps it live.
Table-driven, on a real file store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailesc.model import Delivery, MailKind, QueuedMail
from mailesc.policies import Level
from mailesc.stages.retention import ARCHIVE_EVERY, Retention
from mailesc.store import Store, read_archive
from tests.unit.stage_world import CUSTOMER, DIRECTOR, LADDER, MANAGER, T0, H, raw, rule, state_of, thread_of

D = timedelta(days=1)
NOW = T0 + 10 * D
LONG_LADDER = rule(escalate=(*LADDER, Level(3, 12 * D, ("ceo@example.test",))))  # level 3: at T0 + 1 h + 12 days


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "mailesc.json") as opened:
        yield opened


def with_breach(box, thread, delivery: Delivery) -> None:
    """A breach whose level 1 went out (SENT) or still waits for the server (PENDING)."""
    breach = box.new_breach(thread=thread.id, customer=CUSTOMER, subject="Cannot log in", policy="standard",
                            received_at=thread.messages[0].arrived, due_at=thread.due_at, clock=0)
    thread.breach_ids[0] = breach.id
    box.enqueue(QueuedMail(kind=MailKind.ESCALATION, message_id="<esc1@example.test>", to=[MANAGER],
                           at=thread.due_at, template="escalation", level=1, delivery=delivery),
                thread=thread, breach=breach)


def with_notice(box, thread, delivery: Delivery) -> None:
    """An acknowledgement to the customer, sent or still waiting."""
    box.enqueue(QueuedMail(kind=MailKind.ACK, message_id="<ack1@example.test>", to=[CUSTOMER],
                           at=thread.messages[0].arrived, template="ack", delivery=delivery), thread=thread)


CASES = [
    # what, the rule, last message's age (the customer wrote then; answered an hour later unless not), answered,
    # what else is on record, archived
    ("answered, quiet for three days", rule(), 3 * D, True, None, True),
    ("answered yesterday: still live", rule(), D, True, None, False),
    ("never answered, every level sent long ago", rule(), 3 * D, False, "sent breach", True),
    ("an escalation still waits for the server", rule(), 3 * D, False, "pending breach", False),
    ("an acknowledgement still waits for the server", rule(), 3 * D, True, "pending ack", False),
    ("an acknowledgement sent", rule(), 3 * D, True, "sent ack", True),
    ("a level of its ladder still to come", LONG_LADDER, 3 * D, False, "sent breach", False),
    ("its policy cannot time it: kept until it can", rule(), 3 * D, False, "clock error", False),
    ("no clock at all (no rule matched)", rule(), 3 * D, False, "no policy", True),
]


@pytest.mark.parametrize("what, the_rule, age, answered, also, archived", CASES, ids=[row[0] for row in CASES])
def test_which_threads_are_archived(store, what, the_rule, age, answered, also, archived):
    asked = NOW - age - H
    thread = thread_of(asked, answered_at=asked + H if answered else None,
                       policy=None if also == "no policy" else "standard")
    if not answered:  # the customer's last word is `age` old
        thread.messages[0].arrived = asked = NOW - age
        thread.due_at = asked + H if thread.policy else None
    box = store.box("default")
    box.put_thread(thread)
    if also and also.endswith("breach"):
        with_breach(box, thread, Delivery.PENDING if also.startswith("pending") else Delivery.SENT)
    if also and also.endswith("ack"):
        with_notice(box, thread, Delivery.PENDING if also.startswith("pending") else Delivery.SENT)
    if also == "clock error":
        thread.clock_error = "no open time in calendar 'closed'"
    state = state_of(store, the_rule)
    assert Retention(state, archive_after=2 * D).archive(NOW) is archived
    assert (thread.id in state.store.threads) is not archived
    assert (state.index.find(_reply_to(thread.id)) is thread) is not archived  # the index forgets it too
    assert ("<esc1@example.test>" in state.escalations) is (also == "sent breach" and not archived
                                                             or also == "pending breach")
    store.flush()
    gone = [t.id for t, _ in read_archive(store.path)]
    assert gone == ([thread.id] if archived else [])


def _reply_to(thread_id: str):
    """A parsed reply to the thread's first message, to ask the thread index where it goes."""
    from mailesc.parse import parse_message

    return parse_message(raw(NOW, subject="Re: Cannot log in", in_reply_to=thread_id), NOW, "default")


def test_archiving_looks_at_most_once_an_hour_and_never_without_archive_after(store):
    box = store.box("default")
    box.put_thread(thread_of(NOW - 3 * D, thread_id="<old@customer.example>", answered_at=NOW - 3 * D + H))
    young = thread_of(NOW - 2 * D + 30 * timedelta(minutes=1), thread_id="<young@customer.example>",
                      answered_at=NOW - 2 * D + 31 * timedelta(minutes=1))
    box.put_thread(young)
    assert Retention(state_of(store), archive_after=None).archive(NOW + 10 * D) is False
    assert set(box.threads) == {"<old@customer.example>", "<young@customer.example>"}

    retention = Retention(state_of(store), archive_after=2 * D)
    assert retention.archive(NOW) is True and set(box.threads) == {"<young@customer.example>"}
    assert retention.archive(NOW + ARCHIVE_EVERY - timedelta(seconds=1)) is False  # quiet by now, but not looked at
    assert set(box.threads) == {"<young@customer.example>"}
    assert retention.archive(NOW + ARCHIVE_EVERY) is True and box.threads == {}


def test_an_archived_breach_is_no_longer_acknowledged_by_a_reply(store):
    """The escalation index forgets an archived breach's escalations: the stages share it."""
    box = store.box("default")
    thread = thread_of(NOW - 3 * D)
    box.put_thread(thread)
    with_breach(box, thread, Delivery.SENT)
    state = state_of(store, rule(escalate=(Level(1, timedelta(0), (MANAGER, DIRECTOR)),)))
    assert "<esc1@example.test>" in state.escalations
    Retention(state, archive_after=2 * D).archive(NOW)
    assert state.escalations == {} and state.store.breaches == {}
