"""Test mail in and out: a plain message to deliver, delivering it like a local MTA, reading mailesc's outbox.

``make_mail`` builds the customer and team messages that tests and the crash soak put into a mailbox (through
``Mailbox.append`` or ``deliver``); ``outbox_mails`` reads what mailesc wrote when its ``[smtp]`` is an outbox
Maildir. Standard library only.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import mailbox
import os
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

__all__ = ["deliver", "make_mail", "outbox_mails"]

_ids = itertools.count(1)


def make_mail(*, sender: str, to: str = "support@example.test", subject: str = "Help", body: str = "Hello,\nplease help.",
              date: datetime | None = None, message_id: str | None = None, in_reply_to: str | None = None,
              references: list[str] | None = None, cc: str | None = None, headers: dict | None = None) -> tuple[bytes, str]:
    """(raw bytes, Message-ID) of a plain-text message."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = format_datetime(date or datetime.now(timezone.utc))
    message_id = message_id or f"<test-{next(_ids)}-{id(mail)}@{sender.rpartition('@')[2].strip('>')}>"
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail.as_bytes(), message_id


def deliver(box: mailbox.Maildir, raw: bytes, arrived: datetime) -> None:
    """Deliver like a local MTA: the file's mtime is the arrival time."""
    key = box.add(raw)
    path = os.path.join(box._path, box._lookup(key))  # type: ignore[attr-defined]  # Maildir names no file publicly
    os.utime(path, (arrived.timestamp(), arrived.timestamp()))


def outbox_mails(outbox: Path) -> list[email.message.EmailMessage]:
    """The mails mailesc wrote into an outbox Maildir, parsed."""
    folder = outbox / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir())] if folder.is_dir() else []
