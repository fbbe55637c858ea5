"""The mailbox of a replay, on the replay's simulated clock: the cycle polls it as it polls IMAP or a Maildir,
and it hands over, in arrival order and each once, the messages that have arrived by the clock's `now`.

Messages without any time are handed over at the replay's end (`end`), after the dated ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from mailesc.clock import Clock
from mailesc.model import RawMessage
from mailesc.sources.files import FileMailbox


class ReplaySource:
    def __init__(self, files: FileMailbox, clock: Clock, end: datetime):
        self.files, self.clock, self.end = files, clock, end
        self.messages = sorted(files.messages, key=lambda raw: (raw.arrived is None, raw.arrived, raw.key))
        self._next = 0  # the first message not handed over yet

    def arrival(self, raw: RawMessage) -> datetime:
        """When the replay plays `raw`: its arrival, or the end for a message without a time."""
        return raw.arrived or self.end

    def poll(self, sync: Mapping[str, dict]) -> list[RawMessage]:
        """What arrived by now and was not handed over yet (a replay keeps no bookmarks: `sync` is unused)."""
        now, start = self.clock.now(), self._next
        while self._next < len(self.messages) and self.arrival(self.messages[self._next]) <= now:
            self._next += 1
        return self.messages[start:self._next]

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self.files.fetch(keys)

    def describe(self) -> dict:
        return self.files.describe()

    def close(self) -> None:
        self.files.close()
