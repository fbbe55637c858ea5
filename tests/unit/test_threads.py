"""Threading: normalize_subject and ThreadIndex (headers first, subject only as a fallback)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.model import Kind, Message, RawMessage, ThreadMessage
from mailesc.parse import parse_message
from mailesc.threads import ThreadIndex, normalize_subject

# -- normalize_subject ------------------------------------------------------------------------------------------

SUBJECTS = [
    # (id, subject, normalised, had_prefix)
    ("no-prefix", "Login problem", "login problem", False),
    ("no-prefix-extra-spaces", "  Login    Problem  ", "login problem", False),
    ("Re", "Re: Login problem", "login problem", True),
    ("RE-upper", "RE: Login problem", "login problem", True),
    ("re-lower", "re: Login problem", "login problem", True),
    ("Re-no-space", "Re:Login problem", "login problem", True),
    ("Re-space-before-colon", "Re : Login problem", "login problem", True),
    ("Fwd", "Fwd: Login problem", "login problem", True),
    ("Fw", "Fw: Login problem", "login problem", True),
    ("FW-upper", "FW: Login problem", "login problem", True),
    ("AW-german", "AW: Login problem", "login problem", True),
    ("WG-german", "WG: Login problem", "login problem", True),
    ("SV-scandinavian", "SV: Login problem", "login problem", True),
    ("VS-finnish", "VS: Login problem", "login problem", True),
    ("Antw-dutch", "Antw: Login problem", "login problem", True),
    ("TR-french", "TR: Login problem", "login problem", True),
    ("RIF-italian", "RIF: Login problem", "login problem", True),
    ("Odp-polish", "Odp: Login problem", "login problem", True),
    ("huifu-chinese", "回复: Login problem", "login problem", True),
    ("huifu-fullwidth-colon", "回复：Login problem", "login problem", True),
    ("zhuanfa-chinese", "转发: Login problem", "login problem", True),
    ("zhuanfa-fullwidth-colon", "转发：Login problem", "login problem", True),
    ("numbered-brackets", "Re[2]: Login problem", "login problem", True),
    ("numbered-caret", "Re^2: Login problem", "login problem", True),
    ("numbered-parens", "Re(3): Login problem", "login problem", True),
    ("stacked-re-re", "Re: Re: Login problem", "login problem", True),
    ("stacked-no-spaces", "RE:RE:Login problem", "login problem", True),
    ("stacked-mixed", "Fwd: Re: AW: Login problem", "login problem", True),
    ("stacked-numbered", "Re: Re[3]: Login problem", "login problem", True),
    ("tag-before-prefix", "[Support] Re: Login problem", "login problem", True),
    ("tag-after-prefix", "Re: [Support] Login problem", "login problem", True),
    ("tag-between-prefixes", "Fwd: [Support] Re: Login problem", "login problem", True),
    ("word-starting-like-prefix", "Regarding: Login problem", "regarding: login problem", False),
    ("prefix-word-without-colon", "Re Login problem", "re login problem", False),
    ("reply-word", "Reply needed", "reply needed", False),
    ("prefix-only", "Re:", "", True),
    ("empty", "", "", False),
]


@pytest.mark.parametrize("subject, normalised, had_prefix", [s[1:] for s in SUBJECTS], ids=[s[0] for s in SUBJECTS])
def test_normalize_subject(subject, normalised, had_prefix):
    assert normalize_subject(subject) == (normalised, had_prefix)


# -- ThreadIndex ------------------------------------------------------------------------------------------------

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def msg(message_id, subject="Login problem", *, parents=(), minutes=0, sender="alice@customer.example"):
    return Message(
        key=message_id.strip("<>"),
        folder="INBOX",
        message_id=message_id,
        parents=tuple(parents),
        subject=subject,
        sender=sender,
        sender_name="",
        recipients=("support@example.test",),
        date=T0 + timedelta(minutes=minutes),
        arrived=T0 + timedelta(minutes=minutes),
    )


def take(index: ThreadIndex, message: Message, kind: Kind = Kind.CUSTOMER):
    """What Engine._take does with a message: place, append, add again."""
    thread = index.place(message)
    thread.messages.append(ThreadMessage(key=message.key, folder=message.folder, message_id=message.message_id,
                                         kind=kind, sender=message.sender, arrived=message.arrived,
                                         subject=message.subject))
    index.add(thread)
    return thread


def message_ids(thread):
    return [m.message_id for m in thread.messages]


def test_a_new_message_opens_a_thread_rooted_at_its_own_id():
    index = ThreadIndex()
    thread = take(index, msg("<a@x>"))
    assert thread.id == "<a@x>"
    assert thread.subject == "login problem"
    assert "<a@x>" in thread.ids


JOINS = [
    # (id, the reply's threading headers as the mail client wrote them)
    ("in-reply-to-only", "In-Reply-To: <a@x>\r\n"),
    ("references-only", "References: <a@x>\r\n"),
    ("references-and-in-reply-to", "References: <a@x> <b@x>\r\nIn-Reply-To: <b@x>\r\n"),
    ("in-reply-to-with-comment", "In-Reply-To: <a@x> (Alice's message of Monday)\r\n"),
    ("references-folded", "References: <a@x>\r\n <b@x>\r\n"),
]


@pytest.mark.parametrize("headers", [j[1] for j in JOINS], ids=[j[0] for j in JOINS])
@pytest.mark.parametrize("subject", ["Re: Login problem", "Still broken!!"], ids=["re-subject", "changed-subject"])
def test_a_reply_joins_its_parents_thread_by_headers(headers, subject):
    index = ThreadIndex()
    first = take(index, msg("<a@x>"))
    take(index, msg("<b@x>", "Re: Login problem", parents=["<a@x>"], minutes=5))
    raw = (f"From: Alice <alice@customer.example>\r\nTo: support@example.test\r\nSubject: {subject}\r\n"
           f"Message-ID: <c@x>\r\n{headers}\r\nbody\r\n").encode()
    reply = parse_message(RawMessage("c", "INBOX", raw, T0 + timedelta(minutes=10)), T0)
    assert reply.parents  # the parser found the threading headers
    assert take(index, reply) is first
    assert message_ids(first) == ["<a@x>", "<b@x>", "<c@x>"]


def test_a_reply_with_an_unknown_parent_joins_through_a_shared_references_ancestor():
    """JWZ: the direct parent (<b@x>) never reached this mailbox, the root did."""
    index = ThreadIndex()
    first = take(index, msg("<a@x>"))
    reply = take(index, msg("<c@x>", "Re: Login problem", parents=["<a@x>", "<b@x>"], minutes=10))
    assert reply is first
    assert {"<a@x>", "<b@x>", "<c@x>"} <= first.ids


def test_two_replies_to_a_missing_root_share_a_thread():
    """Neither the root <r@x> nor <b@x> is known; both replies name <r@x> and belong together."""
    index = ThreadIndex()
    one = take(index, msg("<b@x>", "Re: Login problem", parents=["<r@x>"]))
    two = take(index, msg("<c@x>", "Re: Login problem", parents=["<r@x>", "<q@x>"], minutes=5))
    assert one is two
    assert one.id == "<r@x>"
    assert message_ids(one) == ["<b@x>", "<c@x>"]


def test_a_parent_arriving_after_its_child_joins_the_childs_thread():
    index = ThreadIndex()
    child = take(index, msg("<c@x>", "Re: Login problem", parents=["<a@x>"], minutes=10))
    parent = take(index, msg("<a@x>"))
    assert parent is child


def test_an_unrelated_reply_does_not_join():
    index = ThreadIndex()
    first = take(index, msg("<a@x>"))
    other = take(index, msg("<z@x>", "Re: Invoice", parents=["<unknown@x>"], minutes=5))
    assert other is not first
    assert message_ids(first) == ["<a@x>"]


# Subject fallback: for a message with a reply prefix and no References/In-Reply-To, or whose parents are unknown.
SUBJECT_FALLBACK = [
    # (id, later subject, later parents, joins the earlier "Login problem" thread?)
    ("Re-without-references-joins", "Re: Login problem", [], True),
    ("RE-case-and-spacing-joins", "RE:  login   PROBLEM", [], True),
    ("AW-without-references-joins", "AW: Login problem", [], True),
    ("same-subject-no-prefix-is-a-new-thread", "Login problem", [], False),
    # An orphan reply (its parents never seen) from the same person joins: see ORPHANS below for the rules.
    ("orphan-with-unknown-references-from-the-same-person-joins", "Re: Login problem", ["<elsewhere@x>"], True),
    ("orphan-without-reply-prefix-is-a-new-thread", "Login problem", ["<elsewhere@x>"], False),
    ("different-subject-is-a-new-thread", "Re: Password reset", [], False),
    ("empty-subject-after-prefix-is-a-new-thread", "Re:", [], False),
]


@pytest.mark.parametrize("subject, parents, joins", [s[1:] for s in SUBJECT_FALLBACK],
                         ids=[s[0] for s in SUBJECT_FALLBACK])
def test_subject_fallback(subject, parents, joins):
    index = ThreadIndex()
    first = take(index, msg("<a@x>", "Login problem"))
    later = take(index, msg("<b@x>", subject, parents=parents, minutes=30))
    assert (later is first) is joins
    assert message_ids(first) == (["<a@x>", "<b@x>"] if joins else ["<a@x>"])


def test_an_empty_subject_never_joins_by_subject():
    index = ThreadIndex()
    first = take(index, msg("<a@x>", ""))
    later = take(index, msg("<b@x>", "Re: ", minutes=30))
    assert later is not first


def test_subject_fallback_picks_the_thread_with_the_latest_activity():
    index = ThreadIndex()
    older = take(index, msg("<a@x>", "Login problem", minutes=0))
    newer = take(index, msg("<b@x>", "Login problem", minutes=60, sender="bob@customer.example"))
    assert older is not newer
    reply = take(index, msg("<c@x>", "Re: Login problem", minutes=90))
    assert reply is newer


def test_subject_fallback_follows_activity_when_an_older_thread_gets_a_new_message():
    index = ThreadIndex()
    older = take(index, msg("<a@x>", "Login problem", minutes=0))
    newer = take(index, msg("<b@x>", "Login problem", minutes=60, sender="bob@customer.example"))
    take(index, msg("<a2@x>", "Re: Login problem", parents=["<a@x>"], minutes=120))  # older thread now the latest
    reply = take(index, msg("<c@x>", "Re: Login problem", minutes=150))
    assert reply is older
    assert message_ids(newer) == ["<b@x>"]


def test_subject_fallback_is_not_fooled_by_a_late_processed_older_message():
    """A message written at 09:30 but taken after the 10:00 thread does not make its thread the latest."""
    index = ThreadIndex()
    older = take(index, msg("<a@x>", "Login problem", minutes=0))
    newer = take(index, msg("<b@x>", "Login problem", minutes=60, sender="bob@customer.example"))
    take(index, msg("<a2@x>", "Re: Login problem", parents=["<a@x>"], minutes=30))
    assert take(index, msg("<c@x>", "Re: Login problem", minutes=90)) is newer
    assert message_ids(older) == ["<a@x>", "<a2@x>"]


@pytest.mark.parametrize("order", ["newest-first", "oldest-first"])
def test_an_index_built_from_stored_threads_picks_the_latest_activity_whatever_the_order(order):
    scratch = ThreadIndex()
    older = take(scratch, msg("<a@x>", "Login problem", minutes=0))
    newer = take(ThreadIndex(), msg("<b@x>", "Login problem", minutes=60))
    index = ThreadIndex([newer, older] if order == "newest-first" else [older, newer])
    assert index.find(msg("<c@x>", "Re: Login problem", minutes=90)) is newer


def test_an_index_rebuilt_from_stored_threads_finds_the_same_threads():
    index = ThreadIndex()
    first = take(index, msg("<a@x>"))
    take(index, msg("<b@x>", "Re: Login problem", parents=["<a@x>"], minutes=5))
    rebuilt = ThreadIndex([first])
    assert rebuilt.find(msg("<c@x>", "Re: x", parents=["<b@x>"], minutes=10)) is first
    assert rebuilt.find(msg("<d@x>", "Re: Login problem", minutes=10)) is first
    assert rebuilt.find(msg("<e@x>", "Login problem", minutes=10)) is None


def test_a_message_seen_twice_finds_its_own_thread():
    """The same message in two folders (a reply cc'd to the shared mailbox) is recognised by its id."""
    index = ThreadIndex()
    first = take(index, msg("<a@x>"))
    assert index.find(msg("<a@x>", "Login problem")) is first


# Orphan replies: References/In-Reply-To name only messages never seen here (a gateway rewrote the parent's
# Message-ID, the parent was deleted). The reply joins the live thread with the same normalised subject when
# someone outside the team is in both, within the subject window (30 days by default).
ORPHANS = [
    # (id, reply subject, sender, recipients, days after the thread's last message, joins?)
    ("customer-writes-again", "Re: Login problem", "alice@customer.example", ("support@example.test",), 1, True),
    ("team-answers-the-customer", "RE: Login problem", "bob@example.test", ("alice@customer.example",), 2, True),
    ("customer-in-cc-only", "AW: Login problem", "bob@example.test", ("carol@other.example", "alice@customer.example"),
     0, True),
    ("list-tag-and-prefix", "Re: [Support] Login problem", "alice@customer.example", ("support@example.test",), 0,
     True),
    ("just-inside-the-window", "Re: Login problem", "alice@customer.example", ("support@example.test",), 30, True),
    ("different-people", "Re: Login problem", "mallory@elsewhere.example", ("support@example.test",), 1, False),
    ("only-the-team-in-common", "Re: Login problem", "bob@example.test", ("support@example.test",), 1, False),
    ("older-than-the-window", "Re: Login problem", "alice@customer.example", ("support@example.test",), 31, False),
    ("no-reply-prefix", "Login problem", "alice@customer.example", ("support@example.test",), 1, False),
    ("other-subject", "Re: Invoice", "alice@customer.example", ("support@example.test",), 1, False),
]


def is_team(address: str) -> bool:
    return address.endswith("@example.test")


@pytest.mark.parametrize("subject, sender, recipients, days, joins", [o[1:] for o in ORPHANS],
                         ids=[o[0] for o in ORPHANS])
def test_an_orphan_reply_joins_by_subject_and_participant_within_the_window(subject, sender, recipients, days,
                                                                              joins):
    index = ThreadIndex(is_internal=is_team)
    first = take(index, msg("<a@x>", "Login problem"))
    orphan = msg("<o@x>", subject, parents=["<rewritten-by-a-gateway@list.example>"], minutes=days * 24 * 60,
                 sender=sender)
    orphan = replace(orphan, recipients=recipients)
    assert (take(index, orphan) is first) is joins
    if joins:  # a later reply to the rewritten id finds the thread by id now
        assert index.find(msg("<p@x>", "Re: x", parents=["<rewritten-by-a-gateway@list.example>"])) is first


def test_the_subject_window_is_configurable():
    index = ThreadIndex(subject_window=timedelta(days=2), is_internal=is_team)
    first = take(index, msg("<a@x>", "Login problem"))
    late = take(index, msg("<o@x>", "Re: Login problem", parents=["<gone@x>"], minutes=3 * 24 * 60))
    assert late is not first


def test_an_orphan_joins_the_thread_of_its_own_customer_among_several_with_the_subject():
    index = ThreadIndex(is_internal=is_team)
    alices = take(index, msg("<a@x>", "Login problem"))
    bobs = take(index, msg("<b@x>", "Login problem", minutes=60, sender="bob@customer.example"))
    assert take(index, msg("<o@x>", "Re: Login problem", parents=["<gone@x>"], minutes=90)) is alices
    assert message_ids(bobs) == ["<b@x>"]


def test_an_archived_thread_takes_no_orphans():
    index = ThreadIndex(is_internal=is_team)
    first = take(index, msg("<a@x>", "Login problem"))
    index.remove(first)
    assert index.find(msg("<o@x>", "Re: Login problem", parents=["<gone@x>"], minutes=5)) is None
