"""What the test suites share beyond the shipped harness: the repository's paths (templates, the shared corpora).

The helpers for building mail, writing configs and choosing a store are shipped in ``mailesc.testing`` (``mail``,
``configs``, ``backend``) for the benchmarks, the crash soak and operators' own checks; they are re-exported here
under their old names so that ``from tests.support import make_mail, write_config`` keeps working in the tests.
"""

from __future__ import annotations

from pathlib import Path

from mailesc.testing.backend import Backend
from mailesc.testing.configs import (FIVE_SECOND_RULE, MAILDIR, ONE_HOUR_RULE, OUTBOX, imap_section, smtp_section,
                                     write_config)
from mailesc.testing.mail import deliver, make_mail, outbox_mails

__all__ = ["CORPORA", "FIVE_SECOND_RULE", "MAILDIR", "ONE_HOUR_RULE", "OUTBOX", "REPO", "TEMPLATES", "Backend",
           "deliver", "imap_section", "make_mail", "outbox_mails", "smtp_section", "write_config"]

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "templates"
CORPORA = REPO.parent / "shared" / "corpora"
