"""Which mails the outbox sends for the queued records (pure grouping, no server): storm control groups more
than `digest_after` fresh escalations to the same recipients into one digest; what was tried before goes out
again exactly as it was; warnings and acknowledgements always go alone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import mailesc
from mailesc.model import Delivery, Kind, MailKind, QueuedMail, Thread, ThreadMessage
from mailesc.outbox import Outbox, retry_time
from mailesc.render import Templates
from mailesc.store import Store

NOW = datetime(2026, 12, 21, 12, 0, tzinfo=timezone.utc)
TEMPLATES = Templates(Path(mailesc.__file__).parent / "data" / "templates")
BOSS, TEAM = ["boss@example.test"], ["lead@example.test"]


def _queue(store: Store, records: list[tuple]) -> None:
    """records: (kind, recipients, attempts, digest) per mail, each on a thread (and breach) of its own."""
    for number, (kind, to, attempts, digest) in enumerate(records):
        thread = Thread(id=f"<t{number}@customer.test>", subject="s", policy="p", due_at=NOW)
        thread.messages.append(ThreadMessage(key=f"k{number}", folder="INBOX", message_id=thread.id,
                                             kind=Kind.CUSTOMER, sender="c@customer.test", arrived=NOW))
        store.put_thread(thread)
        breach = None
        if kind in (MailKind.ESCALATION, MailKind.WEBHOOK):
            breach = store.new_breach(thread=thread.id, customer="c@customer.test", subject="s", policy="p",
                                      received_at=NOW, due_at=NOW)
        store.enqueue(QueuedMail(kind=kind, message_id=f"<m{number}@x>", to=list(to), at=NOW, template=kind,
                                 level=1 if breach else None, attempts=attempts, digest=digest),
                      thread=thread, breach=breach)


E, W, P = MailKind.ESCALATION, MailKind.WARNING, MailKind.WEBHOOK
OPS = ["webhook:ops"]


@pytest.mark.parametrize("records, digest_after, expected", [
    ([(E, BOSS, 0, None)] * 3, 5, [(False, 1)] * 3),
    ([(E, BOSS, 0, None)] * 6, 5, [(True, 6)]),
    ([(E, BOSS, 0, None)] * 6 + [(E, TEAM, 0, None)] * 2, 5, [(False, 1)] * 2 + [(True, 6)]),
    ([(E, BOSS, 0, None)] * 3 + [(E, BOSS, 1, None)] * 3, 5, [(False, 1)] * 6),
    ([(E, BOSS, 1, "<d@x>")] * 2 + [(E, BOSS, 0, None)], 5, [(False, 1), (True, 2)]),
    ([(W, TEAM, 0, None)] * 7, 5, [(False, 1)] * 7),
    ([(E, BOSS, 0, None)] * 2, 1, [(True, 2)]),
    ([(P, OPS, 0, None)] * 7, 5, [(False, 1)] * 7),
    ([(E, BOSS, 0, None)] * 6 + [(P, OPS, 0, None)] * 6, 5, [(True, 6)] + [(False, 1)] * 6),
], ids=["few-alone", "storm-one-digest", "storm-per-recipients", "retried-go-alone", "digest-retried-as-it-was",
        "warnings-never-grouped", "threshold-one", "posts-never-grouped", "posts-beside-a-storm-go-alone"])
def test_which_mails_go_out(tmp_path, records, digest_after, expected):
    with Store(tmp_path / "mailesc.json") as store:
        _queue(store, records)
        outbox = Outbox(store, None, None, TEMPLATES, "escalations@example.test", digest_after=digest_after)
        envelopes = outbox._envelopes(outbox.pending(NOW), NOW)
        assert sorted((e.is_digest, len(e.members)) for e in envelopes) == sorted(expected)
        digests = [e for e in envelopes if e.is_digest]
        for envelope in digests:  # a digest is a queued mail of its own, covering its members
            assert store.outgoing[envelope.record.mail.message_id] is envelope.record.mail
            assert envelope.record.mail.delivery is Delivery.PENDING
        assert len(store.outgoing) == len(digests)


@pytest.mark.parametrize("attempts, pause", [
    (1, timedelta(seconds=30)), (2, timedelta(minutes=1)), (6, timedelta(minutes=16)), (7, timedelta(minutes=30)),
    (50, timedelta(minutes=30)), (10_000, timedelta(minutes=30)),
], ids=["first", "second", "sixth", "capped", "many", "never-overflows"])
def test_retries_back_off_to_a_cap(attempts, pause):
    assert retry_time(attempts, NOW) == NOW + pause


@pytest.mark.parametrize("records", [
    [],
    [(W, TEAM, 1, None), (E, BOSS, 2, None)],
], ids=["nothing-queued", "all-inside-their-retry-pause"])
def test_a_delivery_with_nothing_due_lists_the_unsent_mails_once_and_says_what_waits(tmp_path, records):
    """The outbox is asked at every deadline of a replay and every cycle of the daemon: with nothing to send it
    answers from one listing of the unsent mails (it listed them three times)."""
    with Store(tmp_path / "mailesc.json") as store:
        _queue(store, records)
        for number, item in enumerate(store.pending_mails()):
            item.mail.retry_at, item.mail.error = NOW + timedelta(minutes=5), f"451 try later {number}"
        listings = []
        listed = store.pending_mails
        store.pending_mails = lambda: listings.append(1) or listed()
        outbox = Outbox(store, None, None, TEMPLATES, "escalations@example.test")
        delivered = outbox.deliver(NOW)
        assert (delivered.mails, delivered.sent, delivered.failed, delivered.waiting) == (0, 0, 0, len(records))
        assert delivered.last_error == ("451 try later 0" if records else None)
        assert len(listings) == 1
