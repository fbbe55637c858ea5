"""parse_duration / format_duration: durations as people write them in policy files."""

from datetime import timedelta

import pytest

from mailesc.durations import format_duration, parse_duration

ACCEPTED = [
    ("90s", timedelta(seconds=90)),
    ("30m", timedelta(minutes=30)),
    ("4h", timedelta(hours=4)),
    ("2d", timedelta(days=2)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("0m", timedelta(0)),
    (" 1h 30m ", timedelta(hours=1, minutes=30)),
    ("4H", timedelta(hours=4)),
    ("1H30M", timedelta(hours=1, minutes=30)),
    ("2D", timedelta(days=2)),
]


@pytest.mark.parametrize("text, expected", ACCEPTED, ids=[repr(t) for t, _ in ACCEPTED])
def test_parse_duration_accepts(text, expected):
    assert parse_duration(text) == expected


REJECTED = ["", "   ", "h", "1x", "-1h", "1.5h", "abc", "1h30", "30m1h", "4 hours", "0"]


@pytest.mark.parametrize("text", REJECTED, ids=[repr(t) for t in REJECTED])
def test_parse_duration_rejects_with_a_helpful_message(text):
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert repr(text) in message  # names what was written
    assert "1h30m" in message and "30m" in message  # and shows what would be accepted


ROUND_TRIP = [
    timedelta(0),
    timedelta(seconds=45),
    timedelta(seconds=90),
    timedelta(minutes=30),
    timedelta(hours=4),
    timedelta(hours=1, minutes=30),
    timedelta(days=2),
    timedelta(days=1, hours=2, minutes=5),
    timedelta(days=3, seconds=1),
]


@pytest.mark.parametrize("delta", ROUND_TRIP, ids=[format_duration(d) for d in ROUND_TRIP])
def test_format_then_parse_round_trips(delta):
    assert parse_duration(format_duration(delta)) == delta


FORMATTED = [
    (timedelta(0), "0m"),
    (timedelta(seconds=45), "45s"),
    (timedelta(seconds=90), "1m30s"),
    (timedelta(hours=1, minutes=30), "1h30m"),
    (timedelta(days=1, hours=2, minutes=5), "1d2h5m"),
    (timedelta(hours=48), "2d"),
    (-timedelta(minutes=5), "-5m"),
]


@pytest.mark.parametrize("delta, text", FORMATTED, ids=[t for _, t in FORMATTED])
def test_format_duration(delta, text):
    assert format_duration(delta) == text


@pytest.mark.parametrize("text", ["45s", "30m", "4h", "2d", "1h30m", "1d2h5m"])
def test_parse_then_format_is_canonical(text):
    assert format_duration(parse_duration(text)) == text
