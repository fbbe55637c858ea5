"""The intake stage on its own: a message of each kind leaves the records it should (a thread, a clock, an
acknowledgement, a quarantine entry, an acknowledged breach) and nothing else; table-driven, on a real file
store with mail built as a source hands it over."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest

from mailesc.model import Delivery, Kind, MailKind, QueuedMail, RawMessage
from mailesc.stages.intake import Intake
from mailesc.stages.state import CycleReport
from mailesc.stages.timing import Timing
from mailesc.store import Store
from tests.unit.stage_world import (CUSTOMER, MANAGER, OWN, T0, H, MemorySource, put, raw, rule, state_of,
                                    thread_of)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "mailesc.json") as opened:
        yield opened


def intake_of(state, source: MemorySource | None = None, spam=None) -> Intake:
    source = source or MemorySource()
    return Intake(state, Timing(state, source), source, spam)


def counts(report: CycleReport) -> dict[str, int]:
    """The counts a report has other than zero, but `fetched`."""
    return {f.name: getattr(report, f.name) for f in fields(report)
            if f.name != "fetched" and isinstance(getattr(report, f.name), int) and getattr(report, f.name)}


# -- one message of each kind -------------------------------------------------------------------------------------

KINDS = [
    # what, sender, to, headers, the report's counts, the kind kept in a thread (None: no thread), due
    ("customer", CUSTOMER, "support@example.test", {}, {"messages": 1, "threads_opened": 1}, Kind.CUSTOMER, T0 + H),
    ("team, to a customer", "agent@example.test", CUSTOMER, {}, {"messages": 1}, Kind.TEAM, None),
    ("internal, team to team", "agent@example.test", "boss@example.test", {}, {"messages": 1}, Kind.INTERNAL, None),
    ("auto-reply", CUSTOMER, "support@example.test", {"Auto-Submitted": "auto-replied"}, {"ignored_auto": 1}, None,
     None),
    ("mailesc's own", OWN, MANAGER, {}, {"ignored_own": 1}, None, None),
    ("spam by the server's verdict", CUSTOMER, "support@example.test", {"X-Spam-Flag": "YES"}, {"ignored_spam": 1},
     None, None),
]


@pytest.mark.parametrize("what, sender, to, headers, expected, kind, due", KINDS, ids=[row[0] for row in KINDS])
def test_a_message_of_each_kind(store, what, sender, to, headers, expected, kind, due):
    state = state_of(store)
    report = CycleReport()
    intake_of(state).ingest([raw(T0, sender=sender, to=to, headers=headers)], T0, report)
    assert report.fetched == 1 and counts(report) == expected
    box = state.store
    if kind is None:
        assert box.threads == {} and state.agenda.take_due(T0) == set()
        return
    [thread] = box.threads.values()
    assert [m.kind for m in thread.messages] == [kind]
    assert (thread.due_at, thread.policy is not None) == (due, due is not None)
    assert state.agenda.take_due(T0) == {thread.id}  # changed: the deadlines stage looks at it next


def test_a_team_answer_joins_the_customers_thread_and_is_kept_as_its_response(store):
    state = state_of(store)
    question = raw(T0, subject="Cannot log in", message_id="<q1@customer.example>")
    answer = raw(T0 + timedelta(minutes=30), sender="agent@example.test", to=CUSTOMER, subject="Re: Cannot log in",
                 in_reply_to="<q1@customer.example>")
    report = CycleReport()
    intake_of(state).ingest([answer, question], T0 + H, report)  # taken in arrival order, whatever the order given
    [thread] = state.store.threads.values()
    assert [m.kind for m in thread.messages] == [Kind.CUSTOMER, Kind.TEAM] and thread.due_at == T0 + H
    assert thread.response_hours == 0.5 and counts(report) == {"messages": 2, "threads_opened": 1}


# -- the same message twice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("folder, key, kept_key", [
    ("Archive", "Archive:2", "INBOX:1"),  # the same mail filed in a second folder: one message, where first seen
    ("INBOX", "INBOX:2", "INBOX:2"),  # the same folder under a new key (UIDVALIDITY changed): fetched from there now
])
def test_the_same_message_again_is_a_duplicate(store, folder, key, kept_key):
    state = state_of(store)
    first = raw(T0, key="INBOX:1", message_id="<same@customer.example>")
    again = raw(T0, key=key, folder=folder, message_id="<same@customer.example>")
    report, intake = CycleReport(), intake_of(state)
    intake.ingest([first], T0, report)
    intake.ingest([again], T0 + H, report)  # a later poll
    [thread] = state.store.threads.values()
    assert [(m.key, m.folder) for m in thread.messages] == [(kept_key, "INBOX")]
    assert counts(report) == {"messages": 1, "threads_opened": 1, "duplicates": 1}


# -- acknowledgements to the customer -----------------------------------------------------------------------------

ACKS = [
    # what, the rule's acknowledge template, arrived (taken in at T0), last acknowledged (another thread), headers,
    # the address acknowledged (None: none)
    ("fresh mail", "ack", T0, None, {}, CUSTOMER),
    ("the rule acknowledges nothing", None, T0, None, {}, None),
    ("older than an hour: history", "ack", T0 - 2 * H, None, {}, None),
    ("the sender was acknowledged today", "ack", T0, T0 - 2 * H, {}, None),
    ("the sender was acknowledged two days ago", "ack", T0, T0 - timedelta(days=2), {}, CUSTOMER),
    ("a Return-Path is where replies go (RFC 3834)", "ack", T0, None, {"Return-Path": "<bounces@customer.example>"},
     "bounces@customer.example"),
]


@pytest.mark.parametrize("what, template, arrived, acked_before, headers, to", ACKS, ids=[row[0] for row in ACKS])
def test_acknowledgement_rules(store, what, template, arrived, acked_before, headers, to):
    if acked_before is not None:  # an earlier thread of the same customer, acknowledged then
        earlier = thread_of(acked_before, thread_id="<earlier@customer.example>")
        store.box("default").enqueue(QueuedMail(kind=MailKind.ACK, message_id="<ack0@example.test>", to=[CUSTOMER],
                                                at=acked_before, template="ack", delivery=Delivery.SENT),
                                     thread=earlier)
    state = state_of(store, rule(acknowledge=template))
    report = CycleReport()
    intake_of(state).ingest([raw(arrived, message_id="<new@customer.example>", headers=headers)], T0, report)
    thread = state.store.threads["<new@customer.example>"]
    acks = [notice for notice in thread.notices if notice.kind == MailKind.ACK]
    assert [notice.to for notice in acks] == ([[to]] if to else [])
    assert report.acknowledgements_recorded == (1 if to else 0)
    if to:
        assert acks[0].delivery is Delivery.PENDING and acks[0].at == T0 and acks[0].template == template
        assert [queued.mail.message_id for queued in state.store.pending_mails()] == [acks[0].message_id]


# -- a reply to an escalation -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sender, acknowledged", [
    (MANAGER, True),  # one of the escalation's recipients
    ("agent@example.test", True),  # the team
    ("cfo@board.example", False),  # not a recipient of this mail, not the team
    ("someone@elsewhere.example", False),  # knowing a Message-ID is not having the mail
])
def test_a_reply_to_an_escalation_acknowledges_its_breach_only_from_who_got_it(store, sender, acknowledged):
    box = store.box("default")
    thread = thread_of(T0)
    box.put_thread(thread)
    breach = box.new_breach(thread=thread.id, customer=CUSTOMER, subject="Cannot log in", policy="standard",
                            received_at=T0, due_at=T0 + H, clock=0)
    thread.breach_ids[0] = breach.id
    box.enqueue(QueuedMail(kind=MailKind.ESCALATION, message_id="<esc1@example.test>", to=[MANAGER], at=T0 + H,
                           template="escalation", level=1), thread=thread, breach=breach)
    state = state_of(store)  # a start: the escalation is known by its Message-ID from the store's records
    state.agenda.take_due(T0 + H)
    report = CycleReport()
    reply = raw(T0 + 2 * H, sender=sender, to=OWN, subject="Re: Cannot log in", in_reply_to="<esc1@example.test>")
    intake_of(state).ingest([reply], T0 + 2 * H, report)
    assert report.acknowledged == (1 if acknowledged else 0)
    assert (breach.acknowledged_by, breach.acknowledged_at) == (
        (sender, T0 + 2 * H) if acknowledged else (None, None))
    assert (thread.id in state.agenda.take_due(T0 + 2 * H)) is acknowledged  # its ladder is looked at again


# -- quarantine ---------------------------------------------------------------------------------------------------

def test_a_broken_message_is_quarantined_and_the_others_are_taken(store):
    state = state_of(store)
    broken = RawMessage(key="INBOX:broken", folder="INBOX", data=b"\x00\x01 not a message", arrived=T0)
    report = CycleReport()
    intake_of(state).ingest([broken, raw(T0, key="INBOX:good")], T0 + H, report)
    item = state.store.quarantine["INBOX:broken"]
    assert (item.folder, item.at, item.arrived, item.retry) == ("INBOX", T0 + H, T0, False) and item.reason
    assert counts(report) == {"quarantined": 1, "messages": 1, "threads_opened": 1}


@pytest.mark.parametrize("in_mailbox, taken", [(True, True), (False, False)])
def test_a_quarantined_message_marked_for_retry_is_read_again_with_its_arrival_time(store, in_mailbox, taken):
    state = state_of(store)
    source = MemorySource()
    intake = intake_of(state, source)
    broken = raw(T0, key="INBOX:1")
    intake.ingest([RawMessage(key="INBOX:1", folder="INBOX", data=b"\x00 not a message", arrived=T0)], T0,
                  CycleReport())
    assert "INBOX:1" in state.store.quarantine
    if in_mailbox:
        source.raws["INBOX:1"] = broken  # readable now (the parser was fixed, say)
    report = CycleReport()
    intake.reread(T0 + 5 * H, report)
    assert report.reread == 0 and "INBOX:1" in state.store.quarantine  # not marked: not read again
    intake.reread_later(lambda item: True)
    intake.reread(T0 + 5 * H, report)
    if taken:
        [thread] = state.store.threads.values()
        assert state.store.quarantine == {} and thread.messages[0].arrived == T0 and thread.due_at == T0 + H
        assert counts(report) == {"reread": 1, "messages": 1, "threads_opened": 1}
    else:  # gone from the mailbox: it stays in quarantine, no longer marked
        assert state.store.threads == {} and state.store.quarantine["INBOX:1"].retry is False
        assert counts(report) == {}


def test_what_intake_leaves_is_written_and_read_back(tmp_path):
    with Store(tmp_path / "mailesc.json") as opened:
        state = state_of(opened, rule(acknowledge="ack"))
        intake_of(state).ingest([raw(T0, message_id="<w1@customer.example>")], T0, CycleReport())
        opened.flush()
    with Store(tmp_path / "mailesc.json", readonly=True) as again:
        thread = again.box("default").threads["<w1@customer.example>"]
        assert thread.due_at == T0 + H and [n.kind for n in thread.notices] == [MailKind.ACK]


def test_the_stages_share_one_index(store):
    """A second message of a thread finds the thread intake put into the shared index, not a new one."""
    state = state_of(store)
    put(state, thread_of(T0, thread_id="<first@customer.example>"))
    report = CycleReport()
    intake_of(state).ingest([raw(T0 + H, subject="Re: Cannot log in", in_reply_to="<first@customer.example>")],
                            T0 + H, report)
    assert list(state.store.threads) == ["<first@customer.example>"]
    assert len(state.store.threads["<first@customer.example>"].messages) == 2 and report.threads_opened == 0
