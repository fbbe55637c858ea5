"""The outgoing-mail queue of a mailbox: which of its mails (QueuedMail records) are not sent yet, and where
they are kept.

A mail about a thread is kept with what it is about, so that the store's format stays what it was: an
escalation in its breach's `escalations`, a level's webhook post in its breach's `notifications`, a warning or acknowledgement in its thread's `notices`. Mails that
belong to no single thread (storm-control digests, the daily digest) are kept in the box's `outgoing` table, by
Message-ID (the installation's box holds the daily digests). A box keeps a
`MailIndex` of the places that hold an unsent mail, so that a cycle finds its pending mails without walking
every breach and thread; the index is built the first time it is asked (a box read for a report never pays
for it) and kept up to date by `enqueue`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from mailesc.clock import isoformat, parse_iso
from mailesc.model import Breach, Delivery, MailKind, QueuedMail, Thread


@dataclass(frozen=True)
class Queued:
    """A mail in the queue with its owner: the thread it is about and, for an escalation, its breach."""

    mail: QueuedMail
    thread: Thread | None  # None: a mail of no single thread (in the box's `outgoing`)
    breach: Breach | None = None


class MailIndex:
    """The places ((thread id, breach id or None)) of a box that hold an unsent mail, and the Message-IDs of its
    unsent mails of no single thread. A place whose mails were all settled (or that was archived), or a mail that
    was settled, is dropped the next time the pending mails are listed."""

    def __init__(self) -> None:
        self._places: set[tuple[str, int | None]] | None = None  # None: not built yet
        # `outgoing` keeps every digest ever sent: walking it at each listing made a long replay quadratic
        self._outgoing: set[str] = set()

    def rebuild(self, threads: Mapping[str, Thread], breaches: Mapping[int, Breach],
                outgoing: Mapping[str, QueuedMail] | None = None, notice_owners: Iterable[str] | None = None) -> None:
        """Find every unsent mail of the box (at load, and after an admin's request put some back).
        `notice_owners`: the threads with an unsent notice, if the box knows them without reading every thread."""
        if notice_owners is None:
            notice_owners = [thread.id for thread in threads.values()
                             if any(m.delivery is Delivery.PENDING for m in thread.notices)]
        self._places = {(breach.thread, breach.id) for breach in breaches.values()
                        if any(m.delivery is Delivery.PENDING for m in breach.queued())} | {
            (thread_id, None) for thread_id in notice_owners}
        self._outgoing = {key for key, mail in (outgoing or {}).items() if mail.delivery is Delivery.PENDING}

    def add(self, thread: Thread, breach: Breach | None) -> None:
        if self._places is not None:  # else the first build finds it with the others
            self._places.add((thread.id, breach.id if breach else None))

    def add_outgoing(self, mail: QueuedMail) -> None:
        """A mail of no single thread was put: indexed while it is unsent."""
        if self._places is not None and mail.delivery is Delivery.PENDING:  # else the first build finds it
            self._outgoing.add(mail.message_id)

    def pending(self, threads: Mapping[str, Thread], breaches: Mapping[int, Breach],
                outgoing: Mapping[str, QueuedMail] | None = None,
                notice_owners: Iterable[str] | None = None) -> list[Queued]:
        """Every unsent mail: escalations by breach id first, then the threads' warnings and acknowledgements,
        then the mails of no single thread (few: every one of them is looked at)."""
        if self._places is None:
            self.rebuild(threads, breaches, outgoing, notice_owners)
        places = self._places
        assert places is not None
        found: list[Queued] = []
        for thread_id, breach_id in sorted(places, key=lambda key: (key[1] is None, key[1] or 0, key[0])):
            thread = threads.get(thread_id)
            breach = breaches.get(breach_id) if breach_id is not None else None
            if thread is None or (breach_id is not None and breach is None):
                mails = []  # archived
            else:
                mails = breach.queued() if breach else thread.notices
            here = [Queued(mail, thread, breach) for mail in mails if mail.delivery is Delivery.PENDING]
            if not here:
                places.discard((thread_id, breach_id))
            found += here
        return found + self._pending_outgoing(outgoing or {})

    def _pending_outgoing(self, outgoing: Mapping[str, QueuedMail]) -> list[Queued]:
        """The unsent mails of no single thread, in the order `outgoing` keeps them."""
        unsent = [key for key in self._outgoing if key in outgoing and outgoing[key].delivery is Delivery.PENDING]
        self._outgoing = set(unsent)
        if len(unsent) > 1:  # seldom (a digest is sent in the cycle that makes it): their order is outgoing's
            return [Queued(mail, None) for mail in outgoing.values() if mail.delivery is Delivery.PENDING]
        return [Queued(outgoing[key], None) for key in unsent]


def keep_with_owner(mail: QueuedMail, thread: Thread | None, breach: Breach | None) -> None:
    """Keep a mail about a thread with its owner: an escalation on its breach, a thread's other mail on the
    thread. (A mail of no single thread goes to its box's `outgoing` when the box puts it.)"""
    if breach is not None:
        (breach.notifications if mail.kind == MailKind.WEBHOOK else breach.escalations).append(mail)
    elif thread is not None:
        thread.notices.append(mail)


def daily_from_health(state: dict, to: list[str] | None = None) -> QueuedMail | None:
    """The daily digest's record as an older mailesc kept it (a dict in the installation's health table,
    `daily_digest`) as a queued mail; None when there is none to take over. Its recipients were not recorded:
    the daily digest's configured ones are filled in when it is sent again."""
    if not state.get("message_id") or not state.get("date") or state.get("delivery") not in set(Delivery):
        return None
    sent_at = parse_iso(state["sent_at"]) if state.get("sent_at") else None
    at = sent_at or (parse_iso(state["retry_at"]) if state.get("retry_at") else None)
    return QueuedMail(kind=MailKind.DAILY, message_id=state["message_id"], to=list(to or []), template="daily",
                      at=at or _midnight(state["date"]), delivery=Delivery(state["delivery"]), sent_at=sent_at,
                      error=state.get("error"), attempts=int(state.get("attempts") or 0),
                      retry_at=parse_iso(state["retry_at"]) if state.get("retry_at") else None, day=state["date"])


def daily_state(mail: QueuedMail | None) -> dict | None:
    """The daily digest's record as `status` shows it (`daily_digest`): the JSON keys it always had."""
    if mail is None:
        return None
    state = {"date": mail.day, "message_id": mail.message_id, "delivery": str(mail.delivery),
             "attempts": mail.attempts, "retry_at": isoformat(mail.retry_at), "error": mail.error}
    if mail.sent_at is not None:
        state["sent_at"] = isoformat(mail.sent_at)
    return state


def latest_daily(outgoing: Mapping[str, QueuedMail]) -> QueuedMail | None:
    """The daily digest of the latest day on record."""
    return max((mail for mail in outgoing.values() if mail.kind == MailKind.DAILY), key=lambda mail: mail.day or "",
               default=None)


def _midnight(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(), tzinfo=timezone.utc)


class BoxQueue:
    """The queue methods of a store's box, the same for both stores (store.FileBox, postgres.PostgresBox): a
    box brings `threads`, `breaches`, `outgoing`, `mails` (its MailIndex), `put_thread`, `put_breach`, and
    `_put_outgoing` (how it keeps and marks a mail of no single thread)."""

    mails: MailIndex
    threads: Mapping[str, Thread]
    breaches: Mapping[int, Breach]
    outgoing: Mapping[str, QueuedMail]

    def put_thread(self, thread: Thread) -> None:
        raise NotImplementedError

    def put_breach(self, breach: Breach) -> None:
        raise NotImplementedError

    def _put_outgoing(self, mail: QueuedMail) -> None:
        raise NotImplementedError

    def enqueue(self, mail: QueuedMail, *, thread: Thread | None = None, breach: Breach | None = None) -> None:
        """Record `mail` with its owner (written at the next flush) and index it as unsent."""
        keep_with_owner(mail, thread, breach)
        self.put_mail(mail, thread=thread, breach=breach)
        if thread is not None:
            self.mails.add(thread, breach)

    def put_mail(self, mail: QueuedMail, *, thread: Thread | None = None, breach: Breach | None = None) -> None:
        """A mail changed (tried, sent, failed): its owner is written at the next flush."""
        if breach is not None:
            self.put_breach(breach)
        elif thread is not None:
            self.put_thread(thread)
        else:
            self._put_outgoing(mail)
            self.mails.add_outgoing(mail)

    def pending_mails(self) -> list[Queued]:
        return self.mails.pending(self.threads, self.breaches, self.outgoing, self.notice_owners())

    def notice_owners(self) -> Iterable[str] | None:
        """The threads holding an unsent notice, if the box keeps them (None: every thread is looked at)."""
        return None

    def requeue(self) -> None:
        """Find the unsent mails again (after an admin's request put some back)."""
        self.mails.rebuild(self.threads, self.breaches, self.outgoing)
