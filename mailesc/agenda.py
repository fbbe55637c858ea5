"""Which threads need looking at, and when: a heap of wake-up times plus the threads changed since.

With it a cycle evaluates only the threads whose next moment has come or that new mail changed, and the
daemon knows its next deadline without walking every thread: an idle cycle costs the same at any size."""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import re
from collections.abc import Iterable
from datetime import datetime

AGENDA_VERSION = "1"  # raised when the engine computes wake-ups differently: stored ones are then not used


class Agenda:
    def __init__(self, thread_ids: Iterable[str] = ()) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._wake_at: dict[str, datetime] = {}  # the one wake-up that counts per thread (older heap entries are stale)
        self._changed: set[str] = set(thread_ids)

    def changed(self, thread_id: str) -> None:
        """The thread changed: look at it in the next evaluation, whatever its wake-up time."""
        self._changed.add(thread_id)

    def wake(self, thread_id: str, when: datetime | None) -> None:
        """Look at the thread again at `when` (None: only when it changes)."""
        if when is None:
            self._wake_at.pop(thread_id, None)
        elif self._wake_at.get(thread_id) != when:
            self._wake_at[thread_id] = when
            heapq.heappush(self._heap, (when, thread_id))

    def forget(self, thread_id: str) -> None:
        self._changed.discard(thread_id)
        self._wake_at.pop(thread_id, None)

    def take_due(self, now: datetime) -> set[str]:
        """The threads to evaluate at `now`: changed ones and those whose time has come. They leave the
        agenda; the caller gives each its next wake-up."""
        due, self._changed = self._changed, set()
        while self._heap and self._heap[0][0] <= now:
            when, thread_id = heapq.heappop(self._heap)
            if self._wake_at.get(thread_id) == when:
                del self._wake_at[thread_id]
                due.add(thread_id)
        return due

    def next_at(self, now: datetime) -> datetime | None:
        """The next moment anything needs evaluating: `now` if a thread changed."""
        if self._changed:
            return now
        while self._heap and self._wake_at.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale: the thread was rescheduled or forgotten
        return self._heap[0][0] if self._heap else None

    def wakes(self) -> dict[str, datetime]:
        """Each thread's next wake-up (what a store keeps, so that the next process need not evaluate every
        clock to learn them again)."""
        return dict(self._wake_at)

    def unevaluated(self) -> set[str]:
        """The threads changed since they were last evaluated."""
        return set(self._changed)

    def __len__(self) -> int:
        return len(self._wake_at)


def policies_fingerprint(policies, since=None) -> str:
    """What wake-up times depend on besides the threads themselves: every rule (its deadlines, ladder, warning,
    calendar with its hours and closed days) and `[mailbox] since`. A store keeps the agenda with this; a
    process whose fingerprint differs evaluates every clock again, as at a first start."""
    text = repr((AGENDA_VERSION, _canonical(policies.rules), _canonical(since)))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _canonical(value) -> object:
    """A value as a plain, ordered structure: sets sorted (their order changes with every process's hash seed),
    a holiday calendar by its country and region (its own repr grows as years are looked up)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple((f.name, _canonical(getattr(value, f.name)))
                                            for f in dataclasses.fields(value)))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(_canonical(item)) for item in value)))
    if isinstance(value, dict) and type(value) is dict:
        return ("dict", tuple(sorted((repr(_canonical(k)), repr(_canonical(v))) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(item) for item in value)
    if isinstance(value, re.Pattern):
        return ("re", value.pattern, value.flags)
    if type(value).__module__.startswith("holidays"):
        return ("holidays", type(value).__name__, getattr(value, "country", None), getattr(value, "subdiv", None),
                tuple(sorted(getattr(value, "categories", ()) or ())))
    return repr(value)
