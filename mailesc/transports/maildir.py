"""An outbox Maildir: each escalation becomes new/<hash>.eml, named by its Message-ID so a resend overwrites."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from mailesc.errors import TemporaryTransportError
from mailesc.model import OutgoingMail


_OWN_NAME = re.compile(r"[0-9a-f]{32}\.eml")


class MaildirOutbox:
    def __init__(self, path: Path):
        self.path = Path(path)

    def send(self, mails: list[OutgoingMail], settle=None) -> dict[str, Exception | None]:
        results: dict[str, Exception | None] = {}
        for mail in mails:
            try:
                self._write(mail)
                results[mail.message_id] = None
            except OSError as error:
                results[mail.message_id] = TemporaryTransportError(
                    f"cannot write to the outbox {self.path}: {error.strerror}")
            if settle:
                settle(mail.message_id, results[mail.message_id])
        return results

    def clear(self) -> None:
        """Remove the mails this outbox wrote (and nothing else that may be in the folder)."""
        for sub in ("new", "cur"):
            for path in (self.path / sub).glob("*.eml"):
                if _OWN_NAME.fullmatch(path.name.split(":")[0]):
                    path.unlink()

    def _write(self, mail: OutgoingMail) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        name = hashlib.sha256(mail.message_id.encode()).hexdigest()[:32] + ".eml"  # see _OWN_NAME
        temp = self.path / "tmp" / name
        with open(temp, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as handle:
            handle.write(mail.data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path / "new" / name)

    def describe(self) -> dict:
        return {"kind": "outbox", "path": str(self.path)}

    def check(self) -> dict:
        """What `mailesc check` reports: the folder (there is nothing to connect to)."""
        return self.describe()
