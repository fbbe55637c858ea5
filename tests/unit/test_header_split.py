"""parse.header_items: mailesc's own split of the common header block agrees with the stdlib's header parser
(compat32 raw items), on every corpus message and on a table of odd shapes; whatever the split does not read
itself goes to the stdlib."""

from __future__ import annotations

from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest

from mailesc import parse
from mailesc.errors import ParseError
from mailesc.model import RawMessage
from mailesc.parse import _split_header_block, header_items, parse_message, readable_line_endings
from tests.support import CORPORA, corpus_messages

_STDLIB = BytesHeaderParser(policy=compat32)
SEEN = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)


def stdlib_items(data: bytes) -> list[tuple[str, str]]:
    return list(_STDLIB.parsebytes(data).raw_items())


# (id, message bytes, whether the own split reads it: False means it must hand it to the stdlib)
SHAPES = [
    ("plain-crlf", b"From: a@b.example\r\nSubject: Hi\r\n\r\nbody\r\n", True),
    ("plain-lf", b"From: a@b.example\nSubject: Hi\n\nbody\n", True),
    ("folded-tab", b"Subject: a long\r\n\tsubject\r\nTo: x@y.example\r\n\r\n", True),
    ("folded-spaces-many", b"References: <1@a>\r\n <2@a>\r\n    <3@a>\r\nX: y\r\n\r\nb", True),
    ("folded-empty-first-line", b"Subject:\r\n folded from the start\r\n\r\nb", True),
    ("folded-blank-only-continuation", b"Subject: a\r\n \r\nX: y\r\n\r\nb", True),
    ("encoded-words", b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= =?iso-8859-1?b?4eI=?=\r\n\r\nb", True),
    ("duplicate-headers", b"Received: one\r\nReceived: two\r\nTo: a@b\r\nTo: c@d\r\n\r\nb", True),
    ("no-space-after-colon", b"Subject:Hi\r\nTo:\ta@b\r\n\r\nb", True),
    ("empty-value", b"Subject:\r\nTo: a@b\r\n\r\nb", True),
    ("trailing-whitespace-kept", b"Subject: Hi  \t\r\nX: y\r\n\r\nb", True),
    ("eight-bit-utf8", "Subject: Grüße\r\nFrom: Jürgen <j@b.example>\r\n\r\nb".encode(), True),
    ("eight-bit-latin1", "Subject: Grüße\r\n\r\nb".encode("latin-1"), True),
    ("eight-bit-invalid", b"Subject: \xff\xfe\x80\r\n\r\nb", True),
    ("nul-in-value", b"Subject: a\x00b\r\nX: y\r\n\r\nb", True),
    ("very-long-line", b"Subject: " + b"x" * 100_000 + b"\r\nX: y\r\n\r\nb", True),
    ("many-headers", b"".join(b"X-H%d: v%d\r\n" % (i, i) for i in range(3000)) + b"\r\nb", True),
    ("colon-in-value", b"Subject: Re: a: b\r\n\r\nb", True),
    ("odd-name-characters", b"X-Odd!#$%&'*+-.^_`|~: v\r\n\r\nb", True),
    ("headers-only-lf-crlf-end", b"A: b\n\r\nbody", True),
    ("crlf-block-lf-blank-line", b"A: b\r\nC: d\r\n\nbody", True),
    ("body-with-header-like-lines", b"A: b\r\n\r\nFrom: not a header\r\nX: y\r\n", True),
    # Shapes the own split leaves to the stdlib:
    ("no-header", b"\r\nbody only\r\n", False),
    ("no-header-lf", b"\nbody only\n", False),
    ("no-empty-line", b"Subject: Hi\r\nTo: a@b", False),
    ("no-empty-line-body-line", b"Subject: Hi\r\nnot a header\r\nmore\r\n", False),
    ("bare-lf-inside-crlf", b"Subject: a\nb\r\nX: y\r\n\r\nbody", False),
    ("bare-cr", b"Subject: a\rX: y\r\rbody", False),
    ("bare-cr-in-value", b"Subject: a\rb\r\nX: y\r\n\r\nbody", False),
    ("vertical-tab", b"Subject: a\x0bb\r\nX: y\r\n\r\nbody", False),
    ("form-feed", b"Subject: a\x0cb\r\n\r\nbody", False),
    ("file-separator", b"Subject: a\x1cb\x1d\x1e\r\n\r\nbody", False),
    ("unix-from-first", b"From sender@x Mon Oct  5 09:12:00 2026\r\nSubject: Hi\r\n\r\nb", False),
    ("unix-from-inside", b"Subject: Hi\r\nFrom sender@x Mon Oct  5 09:12:00 2026\r\nX: y\r\n\r\nb", False),
    ("unix-from-last", b"Subject: Hi\r\nFrom sender@x Mon Oct  5 09:12:00 2026\r\n\r\nb", False),
    ("continuation-first", b" folded\r\nSubject: Hi\r\n\r\nb", False),
    ("space-before-colon", b"Subject : Hi\r\nX: y\r\n\r\nb", False),
    ("colon-first", b": no name\r\nSubject: Hi\r\n\r\nb", False),
    ("line-without-colon", b"Subject: Hi\r\nnot a header\r\nX: y\r\n\r\nb", False),
    ("space-in-name", b"X Header: v\r\n\r\nb", False),
    ("eight-bit-name", "Sübject: v\r\n\r\nb".encode(), False),
]


@pytest.mark.parametrize("data, own", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_odd_shapes_give_what_the_stdlib_gives(data, own):
    assert (_split_header_block(data) is not None) == own  # the table says which road each shape takes
    assert header_items(data) == stdlib_items(data)


def test_the_own_split_agrees_with_the_stdlib_on_every_corpus_message():
    if not CORPORA.is_dir():
        pytest.skip(f"no corpora at {CORPORA} (they come with ../shared)")
    own = total = 0
    for name, data in corpus_messages():
        for variant in (data, readable_line_endings(data)):  # as stored, and as parse_message hands it on
            total += 1
            own += _split_header_block(variant) is not None
            assert header_items(variant) == stdlib_items(variant), name
    assert own > total * 0.7  # most real mail takes the own road, so the comparison above is about it


def test_parse_message_gives_the_same_message_on_both_roads(monkeypatch):
    """The whole Message (ids, parents, addresses, subject, dates, headers) from every corpus message, once
    through the own split and once with the stdlib forced."""
    if not CORPORA.is_dir():
        pytest.skip(f"no corpora at {CORPORA} (they come with ../shared)")

    def parsed():
        results = {}
        for name, data in corpus_messages():
            try:
                results[name] = parse_message(RawMessage(key=name, folder="INBOX", data=data, arrived=None), SEEN)
            except ParseError as error:
                results[name] = str(error)
        return results

    own = parsed()
    monkeypatch.setattr(parse, "_split_header_block", lambda data: None)
    assert parsed() == own
    assert len(own) > 500
