"""Everything on record, for review and reports: the live store, its archive and the reviews, read-only.

The daemon may be running: the store is only read (its writes are atomic renames), never locked."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from mailesc.model import Breach, Thread
from mailesc.reviews import Reviews
from mailesc.store import Store, find_breach, read_archive


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
