"""What the test suites share beyond the shipped harness: the repository's paths (templates, the shared corpora).

The helpers for building mail, writing configs and choosing a store are shipped in ``mailesc.testing`` (``mail``,
``configs``, ``backend``) for the benchmarks, the crash soak and operators' own checks; they are re-exported here
under their old names so that ``from tests.support import make_mail, write_config`` keeps working in the tests.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

from mailesc.testing.backend import Backend
from mailesc.testing.configs import (FIVE_SECOND_RULE, MAILDIR, ONE_HOUR_RULE, OUTBOX, imap_section, smtp_section,
                                     write_config)
from mailesc.testing.mail import deliver, make_mail, outbox_mails

__all__ = ["CORPORA", "corpus_messages", "FIVE_SECOND_RULE", "MAILDIR", "ONE_HOUR_RULE", "OUTBOX", "REPO", "TEMPLATES", "Backend",
           "deliver", "imap_section", "make_mail", "outbox_mails", "smtp_section", "write_config"]

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "templates"
CORPORA = REPO.parent / "shared" / "corpora"

_NOT_MAIL = {"README.MD", "SOURCE.MD", "LICENSE", "NOTICE"}  # the corpora's documentation files


def corpus_messages() -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every message in the shared corpora, each message of the bounces' mbox on its own;
    nothing where the corpora are absent (a test that needs them skips itself)."""
    if not CORPORA.is_dir():
        return
    for path in sorted(p for p in CORPORA.rglob("*") if p.is_file() and p.name.upper() not in _NOT_MAIL):
        if "mailbox" in path.parts:  # the mbox of the bounces
            box = mailbox.mbox(path, factory=None, create=False)
            for key in box.iterkeys():
                yield f"{path}#{key}", box.get_bytes(key, from_=False)
        else:
            yield str(path), path.read_bytes()
