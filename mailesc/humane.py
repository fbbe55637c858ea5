"""Times and durations as a manager reads them in a mail: `Mon 21 Dec 11:00 CET`, `2h 05m`.

Stored records and JSON keep ISO 8601; only what people read in mails is written this way. Names of days and
months are English whatever the machine's locale (mails go to people elsewhere)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def human_time(when: datetime | None, zone: tzinfo | None = None, now: datetime | None = None) -> str | None:
    """`Mon 21 Dec 11:00 CET` in `zone` (UTC if none); the year is added when it is not `now`'s year."""
    if when is None:
        return None
    try:
        local = when.astimezone(zone or timezone.utc)
    except (OverflowError, ValueError):  # year 1 or 9999 (a damaged Date header) shifted out of range
        return when.isoformat(timespec="minutes")
    text = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}"
    if now is not None and now.astimezone(local.tzinfo).year != local.year:
        text += f" {local.year}"
    return f"{text} {local:%H:%M} {_zone_name(local)}"


def _zone_name(local: datetime) -> str:
    """The zone's abbreviation (CET, CEST, UTC); where the zone has none, the offset (+0530)."""
    name = local.tzname() or ""
    if name and not name.startswith(("+", "-")):
        return name
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign, minutes = ("+", minutes) if minutes >= 0 else ("-", -minutes)
    return f"UTC{sign}{minutes // 60:02d}{minutes % 60:02d}"


def format_span(delta: timedelta) -> str:
    """One format for every duration in a mail: `45m`, `2h 05m`, `3d 02h 05m` (seconds dropped; under a
    minute is `0m`; a negative span gets a minus sign)."""
    total = int(delta.total_seconds()) // 60 if delta >= timedelta(0) else -(int(-delta.total_seconds()) // 60)
    sign, total = ("-", -total) if total < 0 else ("", total)
    days, rest = divmod(total, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m"
