"""Where "now" comes from: the system clock in production, a simulated one for replay and tests."""

from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class SimulatedClock:
    """A clock that only moves when told to, and never backwards."""

    def __init__(self, start: datetime):
        self._now = require_aware(start)

    def now(self) -> datetime:
        return self._now

    def advance_to(self, when: datetime) -> None:
        self._now = max(self._now, require_aware(when))


def require_aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when!r}: mailesc only works with timezone-aware times")
    return when


def isoformat(when: datetime | None) -> str | None:
    """ISO 8601 with offset, to the second: how every time is stored and printed."""
    return None if when is None else when.isoformat(timespec="seconds")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 time that must carry an offset (a trailing Z is accepted)."""
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return require_aware(when)
