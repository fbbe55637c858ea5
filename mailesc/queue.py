"""The outgoing-mail queue of a mailbox: which of its mails (QueuedMail records) are not sent yet, and where
they are kept.

A mail about a thread is kept with what it is about, so that the store's format stays what it was: an
escalation in its breach's `escalations`, a warning or acknowledgement in its thread's `notices`. A box keeps a
`MailIndex` of the places that hold an unsent mail, so that a cycle finds its pending mails without walking
every breach and thread; the index is built the first time it is asked (a box read for a report never pays
for it) and kept up to date by `enqueue`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mailesc.model import Breach, Delivery, QueuedMail, Thread


@dataclass(frozen=True)
class Queued:
    """A mail in the queue with its owner: the thread it is about and, for an escalation, its breach."""

    mail: QueuedMail
    thread: Thread
    breach: Breach | None = None


class MailIndex:
    """The places ((thread id, breach id or None)) of a box that hold an unsent mail. A place whose mails were
    all settled (or that was archived) is dropped the next time the pending mails are listed."""

    def __init__(self) -> None:
        self._places: set[tuple[str, int | None]] | None = None  # None: not built yet

    def rebuild(self, threads: Mapping[str, Thread], breaches: Mapping[int, Breach]) -> None:
        """Find every unsent mail of the box (at load, and after an admin's request put some back)."""
        self._places = {(breach.thread, breach.id) for breach in breaches.values()
                        if any(m.delivery is Delivery.PENDING for m in breach.escalations)} | {
            (thread.id, None) for thread in threads.values()
            if any(m.delivery is Delivery.PENDING for m in thread.notices)}

    def add(self, thread: Thread, breach: Breach | None) -> None:
        if self._places is not None:  # else the first build finds it with the others
            self._places.add((thread.id, breach.id if breach else None))

    def pending(self, threads: Mapping[str, Thread], breaches: Mapping[int, Breach]) -> list[Queued]:
        """Every unsent mail: escalations by breach id first, then the threads' warnings and acknowledgements."""
        if self._places is None:
            self.rebuild(threads, breaches)
        found: list[Queued] = []
        for thread_id, breach_id in sorted(self._places, key=lambda key: (key[1] is None, key[1] or 0, key[0])):
            thread = threads.get(thread_id)
            breach = breaches.get(breach_id) if breach_id is not None else None
            if thread is None or (breach_id is not None and breach is None):
                mails = []  # archived
            else:
                mails = breach.escalations if breach else thread.notices
            here = [Queued(mail, thread, breach) for mail in mails if mail.delivery is Delivery.PENDING]
            if not here:
                self._places.discard((thread_id, breach_id))
            found += here
        return found


def keep_with_owner(mail: QueuedMail, thread: Thread, breach: Breach | None) -> None:
    """Keep `mail` with its owner: an escalation on its breach, a thread's other mail on the thread."""
    if breach is not None:
        breach.escalations.append(mail)
    else:
        thread.notices.append(mail)
