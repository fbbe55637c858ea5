"""What composing keeps between mails gives the very answers a fresh computation would: body_excerpt's kept
excerpts (on every corpus message, first time and kept, and within its bound)."""

from __future__ import annotations


import pytest

from mailesc import compose
from mailesc.compose import EXCERPTS_KEPT, _parse_excerpt, body_excerpt
from tests.support import CORPORA, corpus_messages


@pytest.fixture
def counted_parses(monkeypatch):
    """Count mail-parser's parses of the excerpts, starting from nothing kept."""
    monkeypatch.setattr(compose, "_EXCERPTS", {})
    calls = []

    def parse(raw):
        calls.append(raw)
        return _parse_excerpt(raw)

    monkeypatch.setattr(compose, "_parse_excerpt", parse)
    return calls


def test_a_kept_excerpt_is_what_a_fresh_parse_gives_on_every_corpus_message(counted_parses):
    if not CORPORA.is_dir():
        pytest.skip(f"no corpora at {CORPORA} (they come with ../shared)")
    messages = list(corpus_messages())
    assert len(messages) > 20
    for name, data in messages:
        fresh = _parse_excerpt(data)
        expected = (fresh[0], list(fresh[1]))
        assert body_excerpt(data) == expected, name  # first time: parsed
        assert body_excerpt(bytes(data)) == expected, name  # the same bytes in another object: kept
    distinct = {data for _, data in messages}
    assert len(counted_parses) == len(distinct)  # each message parsed once, however often it was quoted


def test_messages_that_differ_by_one_byte_get_their_own_excerpts(counted_parses):
    first = b"Subject: a\r\n\r\nThe export fails.\r\n"
    second = b"Subject: a\r\n\r\nThe export failz.\r\n"
    assert body_excerpt(first)[0] == "The export fails."
    assert body_excerpt(second)[0] == "The export failz."
    assert body_excerpt(first)[0] == "The export fails."
    assert len(counted_parses) == 2


def test_the_kept_excerpts_stay_within_their_bound_and_the_oldest_go_first(counted_parses):
    mails = [f"Subject: s\r\n\r\nMessage number {n}.\r\n".encode() for n in range(EXCERPTS_KEPT + 10)]
    for mail in mails:
        body_excerpt(mail)
    assert len(compose._EXCERPTS) == EXCERPTS_KEPT
    assert body_excerpt(mails[-1])[0] == f"Message number {len(mails) - 1}."  # kept
    assert len(counted_parses) == len(mails)
    assert body_excerpt(mails[0])[0] == "Message number 0."  # left out: parsed again
    assert len(counted_parses) == len(mails) + 1


def test_a_caller_changing_its_defects_does_not_change_the_kept_ones(counted_parses):
    broken = (b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
              b"text\r\n")  # no closing boundary: a defect
    excerpt, defects = body_excerpt(broken)
    assert defects  # the case is about a non-empty list
    defects.append("changed by a caller")
    assert body_excerpt(broken) == (excerpt, [d for d in defects if d != "changed by a caller"])


def test_no_body_is_said_and_not_kept(counted_parses):
    assert body_excerpt(None) == ("(the message body is not available)", [])
    assert counted_parses == [] and compose._EXCERPTS == {}
