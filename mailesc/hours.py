"""Business-time arithmetic. Every deadline in mailesc is computed here, nowhere else."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class Calendar(Protocol):
    name: str

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of open time after `start`."""

    def between(self, start: datetime, end: datetime) -> timedelta:
        """How much open time lies between `start` and `end` (negative if end < start)."""


class AlwaysOpen:
    """The default calendar: open all day, every day; wall-clock arithmetic on aware datetimes."""

    name = "always"

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return start + duration

    def between(self, start: datetime, end: datetime) -> timedelta:
        return end - start


ALWAYS_OPEN = AlwaysOpen()
