"""parse.parse_date: the common Date shape read without the stdlib (parse._COMMON_DATE) gives exactly what the
stdlib's parsedate_to_datetime gives (the same instant and the same UTC offset, -0000 as UTC, None where it
finds no date), on a table of shapes, on generated dates and on every Date header of the corpora."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, parsedate_to_datetime

import pytest

from mailesc.parse import _COMMON_DATE, parse_date
from tests.support import CORPORA


def stdlib_date(text: str) -> datetime | None:
    """What parse_date gave before the common shape was read on its own: the stdlib alone."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def same(text: str) -> None:
    ours, theirs = parse_date(text), stdlib_date(text)
    assert (ours, ours and ours.utcoffset()) == (theirs, theirs and theirs.utcoffset()), text


# (id, Date value, whether the own reading takes it: False means it goes to the stdlib)
SHAPES = [
    ("rfc5322", "Mon, 04 Mar 2024 09:00:00 +0000", True),
    ("one-digit-day", "Mon, 4 Mar 2024 09:00:00 +0100", True),
    ("no-weekday", "4 Mar 2024 09:00:00 -0500", True),
    ("minus-zero", "Mon, 04 Mar 2024 09:00:00 -0000", True),
    ("half-hour-zone", "Mon, 04 Mar 2024 09:00:00 +0530", True),
    ("negative-half-hour-zone", "Mon, 04 Mar 2024 09:00:00 -0930", True),
    ("largest-zone", "Mon, 04 Mar 2024 09:00:00 +2359", True),
    ("comment-after", "Mon, 04 Mar 2024 09:00:00 +0000 (UTC)", True),
    ("comment-with-spaces", "Tue, 5 Mar 2024 23:59:59 -0800 (Pacific Standard Time)", True),
    ("blanks-around", "  Mon, 04 Mar 2024 09:00:00 +0000 \t", True),
    ("wrong-weekday", "Fri, 04 Mar 2024 09:00:00 +0000", True),
    ("february-31", "Mon, 31 Feb 2024 09:00:00 +0000", True),
    ("february-29-leap", "Thu, 29 Feb 2024 09:00:00 +0000", True),
    ("february-29-not-leap", "Thu, 29 Feb 2023 09:00:00 +0000", True),
    ("day-zero", "Mon, 00 Mar 2024 09:00:00 +0000", True),
    ("hour-24", "Mon, 04 Mar 2024 24:00:00 +0000", True),
    ("minute-60", "Mon, 04 Mar 2024 09:60:00 +0000", True),
    ("second-60", "Mon, 04 Mar 2024 09:00:60 +0000", True),
    ("year-1000", "Mon, 04 Mar 1000 09:00:00 +0000", True),
    ("year-9999", "Fri, 31 Dec 9999 23:59:59 +0000", True),
    # shapes left to the stdlib
    ("no-seconds", "Mon, 4 Mar 2024 09:00 +0100", False),
    ("zone-name", "4 Mar 2024 09:00:00 EST", False),
    ("gmt", "Mon, 04 Mar 2024 09:00:00 GMT", False),
    ("no-zone", "Mon, 04 Mar 2024 09:00:00", False),
    ("two-digit-year", "4 Mar 24 09:00:00 +0000", False),
    ("year-with-leading-zero", "Mon, 04 Mar 0024 09:00:00 +0000", False),
    ("three-digit-year", "Mon, 04 Mar 999 09:00:00 +0000", False),
    ("lower-case-month", "Mon, 04 mar 2024 09:00:00 +0000", False),
    ("full-month", "Mon, 04 March 2024 09:00:00 +0000", False),
    ("lower-case-weekday", "mon, 04 Mar 2024 09:00:00 +0000", False),
    ("full-weekday", "Monday, 04 Mar 2024 09:00:00 +0000", False),
    ("no-space-after-comma", "Mon,04 Mar 2024 09:00:00 +0000", False),
    ("double-space", "Mon, 04  Mar 2024 09:00:00 +0000", False),
    ("folded", "Mon, 04 Mar 2024\r\n 09:00:00 +0000", False),
    ("one-digit-hour", "Mon, 04 Mar 2024 9:00:00 +0000", False),
    ("zone-minutes-60", "Mon, 04 Mar 2024 09:00:00 +0260", False),
    ("zone-24-hours", "Mon, 04 Mar 2024 09:00:00 +2400", False),
    ("zone-without-sign", "Mon, 04 Mar 2024 09:00:00 0100", False),
    ("zone-colon", "Mon, 04 Mar 2024 09:00:00 +01:00", False),
    ("comment-nested", "Mon, 04 Mar 2024 09:00:00 +0000 (a (b))", False),
    ("words-after", "Mon, 04 Mar 2024 09:00:00 +0000 extra", False),
    ("iso", "2024-03-04T09:00:00+00:00", False),
    ("words", "yesterday", False),
    ("number", "99999999999", False),
    ("empty", "", False),
]


@pytest.mark.parametrize("text, own", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_a_date_gives_what_the_stdlib_gives(text, own):
    assert (_COMMON_DATE.fullmatch(text) is not None) == own  # the table says which road each shape takes
    same(text)


def test_generated_dates_agree_with_the_stdlib():
    """Every zone offset a clock has, dates across the years, as Python's own format_datetime writes them."""
    rng = random.Random(13)
    for _ in range(3000):
        offset = timedelta(minutes=rng.randrange(-24 * 60 + 1, 24 * 60))
        when = datetime(rng.randrange(1000, 10000), 1, 1, tzinfo=timezone(offset)) + timedelta(
            seconds=rng.randrange(364 * 86400))
        text = format_datetime(when)
        assert _COMMON_DATE.fullmatch(text) is not None, text
        same(text)
        assert parse_date(text) == when


def test_every_corpus_date_agrees_with_the_stdlib():
    if not CORPORA.is_dir():
        pytest.skip(f"no corpora at {CORPORA} (they come with ../shared)")
    parser, own, total = BytesHeaderParser(policy=compat32), 0, 0
    for path in (p for p in CORPORA.rglob("*") if p.is_file()):
        for value in parser.parsebytes(path.read_bytes()).get_all("date") or []:
            text = str(value)
            total += 1
            own += _COMMON_DATE.fullmatch(text) is not None
            same(text)
    assert own > total * 0.5  # most real Date headers take the own road, so the comparison above is about it
