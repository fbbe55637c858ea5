"""Durations as people write them in policy files: 90s, 30m, 4h, 2d, 1h30m."""

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """Return the timedelta for `text`, or raise ValueError saying what is accepted."""
    compact = str(text).replace(" ", "").lower()
    match = _DURATION.fullmatch(compact)
    if not compact or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 30m, 4h, 2d or 1h30m")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, for messages: 1d2h5m, 45s, 0m."""
    total = int(delta.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return sign + ("".join(parts) or "0m")
