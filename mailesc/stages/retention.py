"""Retention: threads quiet for `archive_after`, with nothing left to send or to fall due, leave the live records
for the archive (kept for history and reports), and the indexes beside the records forget them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from mailesc import sla
from mailesc.model import Delivery, Thread
from mailesc.stages.state import MailboxState

log = logging.getLogger("mailesc.cycle")  # the stages log as the cycle always did (a contract of the log lines)
ARCHIVE_EVERY = timedelta(hours=1)  # looking for threads to archive walks them all: not every cycle


class Retention:
    def __init__(self, state: MailboxState, archive_after: timedelta | None):
        """`archive_after`: None keeps every thread live (a replay, a dry run)."""
        self.state, self.archive_after = state, archive_after
        self._archived_at = state.store.last_archived()  # by any process: a `once` from cron does not look again

    def due(self, now: datetime) -> bool:
        """Whether archive(now) looks through the threads (and remembers in the store that it did, which the
        cycle then writes even if nothing was archived)."""
        return self.archive_after is not None and not (
            self._archived_at and abs(now - self._archived_at) < ARCHIVE_EVERY)

    def archive(self, now: datetime) -> bool:
        """Move threads that have been quiet for `archive_after`, with nothing left to send or to fall due,
        to the archive (at most once an hour across processes: it walks every thread). True when some were:
        the cycle writes the store then."""
        if not self.due(now):
            return False
        self._archived_at = now
        state = self.state
        state.store.archive_looked(now)
        done = [thread for thread in state.store.threads.values() if self._finished(thread, now)]
        if not done:
            return False
        for thread in done:
            state.index.remove(thread)
            state.agenda.forget(thread.id)
            for breach_id in thread.breach_ids.values():
                for record in state.store.breaches[breach_id].escalations:
                    state.escalations.pop(record.message_id, None)
        state.store.archive(done)
        log.info("archived %d thread(s) quiet for %s or longer", len(done), self.archive_after)
        return True

    def _finished(self, thread: Thread, now: datetime) -> bool:
        last = max((m.arrived for m in thread.messages), default=None)
        if last is None or self.archive_after is None or now - last < self.archive_after:
            return False
        store = self.state.store
        breaches = [store.breaches[i] for i in thread.breach_ids.values() if i in store.breaches]
        records = [*thread.notices, *(record for breach in breaches for record in breach.queued())]
        if any(record.delivery is Delivery.PENDING for record in records):
            return False
        rule = self.state.policies.get(thread.policy)
        if thread.clock_error:
            return False  # kept live until its policy can time it
        return thread.due_at is None or rule is None or not any(
            verdict.next_at for verdict in sla.evaluate(thread, rule, now))
