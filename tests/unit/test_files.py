"""sources/files.mbox_messages: the replay's own mbox reader splits every mbox exactly as the mailbox module does
(its From_ lines and its messages' bytes), on a table of mbox shapes and on the mboxes that come with mailesc."""

from __future__ import annotations

import mailbox

import pytest

from mailesc.sources.files import mbox_messages
from tests.support import CORPORA, REPO


def stdlib_messages(path) -> list[tuple[bytes, bytes]]:
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        return [(box.get_file(key, from_=True).readline(), box.get_bytes(key, from_=False)) for key in box.iterkeys()]
    finally:
        box.close()


SHAPES = [
    ("two-messages", b"From a@b Mon Oct  5 09:12:00 2026\nSubject: 1\n\nbody 1\n\nFrom c@d Mon Oct  5 09:13:00 2026\n"
                     b"Subject: 2\n\nbody 2\n"),
    ("empty-line-at-the-end", b"From a@b Mon Oct  5 09:12:00 2026\nSubject: 1\n\nbody\n\n"),
    ("no-empty-line-before-the-next", b"From a\nSubject: 1\n\nbody\nFrom b\nSubject: 2\n\nbody\n"),
    ("two-empty-lines-before-the-next", b"From a\nS: 1\n\nbody\n\n\nFrom b\nS: 2\n\nbody\n"),
    ("no-newline-at-the-end", b"From a\nSubject: 1\n\nbody"),
    ("from-line-only", b"From a\n"),
    ("from-line-without-newline", b"From a"),
    ("from-lines-in-a-row", b"From a\nFrom b\n\nFrom c\n"),
    ("text-before-the-first-from", b"junk\nmore junk\n\nFrom a\nSubject: 1\n\nbody\n"),
    ("escaped-from-in-body", b"From a\nSubject: 1\n\n>From the start\nbody\n\nFrom b\nS: 2\n\nx\n"),
    ("from-without-space-is-no-separator", b"From a\nSubject: 1\n\nFrom:x\nFromage\n\nFrom b\nS: 2\n\nx\n"),
    ("crlf-lines", b"From a\r\nSubject: 1\r\n\r\nbody\r\n\r\nFrom b\r\nS: 2\r\n\r\nx\r\n"),
    ("eight-bit-and-nul", b"From a\nSubject: \xff\x00\n\nb\xe4dy\n\nFrom b\nS: 2\n\nx\n"),
    ("empty-messages", b"From a\n\nFrom b\n\n"),
    ("only-junk", b"no From_ line at all\n"),
    ("empty-file", b""),
]


@pytest.mark.parametrize("text", [s[1] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_mbox_shapes_split_as_the_mailbox_module_splits_them(tmp_path, text):
    path = tmp_path / "box.mbox"
    path.write_bytes(text)
    assert list(mbox_messages(path)) == stdlib_messages(path)


def test_the_mboxes_that_come_with_mailesc_split_as_the_mailbox_module_splits_them():
    paths = [REPO / "examples" / "support-inbox.mbox"]
    if CORPORA.is_dir():
        paths += [p for p in CORPORA.rglob("*") if p.is_file() and "mailbox" in p.parts]
    for path in paths:
        expected = stdlib_messages(path)
        assert expected and list(mbox_messages(path)) == expected, path
