"""Everything on record, for review and reports: the live store, its archive and the reviews, read-only.

The daemon may be running: the store is only read (its writes are atomic renames), never locked."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from mailesc.model import Breach, Status, Thread
from mailesc.reviews import Reviews
from mailesc.store import Store, find_breach, read_archive

STATUSES = tuple(str(status) for status in Status)


@dataclass
class History:
    threads: dict[tuple[str, str], Thread] = field(default_factory=dict)  # by (mailbox, thread id): see thread_key
    breaches: dict[int, Breach] = field(default_factory=dict)
    reviews: Reviews = field(default_factory=Reviews)

    def thread_of(self, breach: Breach) -> Thread | None:
        return self.threads.get((breach.mailbox, breach.thread))


def thread_key(thread: Thread) -> tuple[str, str]:
    """A thread's id is unique within its mailbox only (one customer mail to two support addresses)."""
    return thread.mailbox, thread.id


def load_history(store_path: Path, threads: bool = True, live: Store | None = None) -> History:
    """With `threads=False`, breaches and reviews only (a breach list does not need the threads). `live`: the
    store already open in this process (the daemon's), read instead of the file."""
    history = History(reviews=Reviews.load(store_path))
    for thread, breaches in read_archive(store_path, threads):
        if thread is not None:
            history.threads[thread_key(thread)] = thread
        history.breaches.update((breach.id, breach) for breach in breaches)
    with nullcontext(live) if live is not None else Store(store_path, readonly=True, threads=threads) as store:
        for box in store.mailboxes():  # live records win over archived copies
            if threads:
                history.threads.update((thread_key(thread), thread) for thread in box.threads.values())
            history.breaches.update(box.breaches)
    return history


def load_breach(store_path: Path, breach_id: int) -> History:
    """Just one breach with its thread and reviews (empty if there is no such breach)."""
    thread, breach = find_breach(store_path, breach_id)
    return History(threads={thread_key(thread): thread} if thread else {},
                   breaches={breach.id: breach} if breach else {}, reviews=Reviews.load(store_path))


@dataclass(frozen=True)
class BreachFilter:
    """What `mailesc breaches list` narrows the list by; every field left empty lets every breach through."""

    since: datetime | None = None  # deadline at or after
    until: datetime | None = None  # deadline before
    policy: str | None = None
    customer: str | None = None  # an address, or a domain ("example.com" or "@example.com")
    status: str | None = None
    unreviewed: bool = False
    overdue_review: bool = False
    mailboxes: tuple[str, ...] = ()  # any of these mailboxes (none named: every mailbox)

    def select(self, history: History, now: datetime, period: timedelta) -> list[Breach]:
        return [breach for breach in sorted(history.breaches.values(), key=lambda b: b.id)
                if self.admits(breach, history, now, period)]

    def admits(self, breach: Breach, history: History, now: datetime, period: timedelta) -> bool:
        reviews = history.reviews
        return ((self.since is None or breach.due_at >= self.since)
                and (self.until is None or breach.due_at < self.until)
                and (self.policy is None or breach.policy == self.policy)
                and (self.customer is None or customer_matches(breach.customer, self.customer))
                and (self.status is None or str(breach.status) == self.status)
                and (not self.mailboxes or breach.mailbox in self.mailboxes)
                and (not self.unreviewed or reviews.current(breach.id) is None)
                and (not self.overdue_review or reviews.overdue(breach, now, period)))


def customer_matches(address: str, wanted: str) -> bool:
    """`wanted` is an address or a domain (with or without its @); case does not matter."""
    address, wanted = address.lower(), wanted.lower().strip()
    if "@" in wanted.lstrip("@"):
        return address == wanted
    return address.rpartition("@")[2] == wanted.lstrip("@")
