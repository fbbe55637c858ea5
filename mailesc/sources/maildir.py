"""A local Maildir (Maildir++ subfolders such as .Sent): the embedded default source."""

from __future__ import annotations

import mailbox
from datetime import datetime, timezone
from pathlib import Path
from typing import Generator, Iterable, Mapping

from mailesc.errors import SourceError
from mailesc.model import RawMessage
from mailesc.sources import own_keys


class MaildirSource:
    def __init__(self, path: Path, folders: Iterable[str] = ("INBOX",), sent_folder: str = "auto"):
        self.path = Path(path)
        self.folders = list(dict.fromkeys(folders))
        self.sent_folder = sent_folder

    def _root(self) -> mailbox.Maildir:
        missing = [name for name in ("cur", "new") if not (self.path / name).is_dir()]
        if missing:
            raise SourceError(f"{self.path} is not a Maildir (it has no {' or '.join(m + '/' for m in missing)} "
                              f"folder)")
        return mailbox.Maildir(self.path, factory=None, create=False)

    def watched(self) -> dict[str, mailbox.Maildir]:
        """Folder name -> Maildir, INBOX being the root and others Maildir++ subfolders."""
        root = self._root()
        names = list(self.folders)
        sent = self._sent_name(root)
        if sent and sent not in names:
            names.append(sent)
        found = {}
        for name in names:
            if name.upper() == "INBOX":
                found[name] = root
            elif name in root.list_folders():
                found[name] = root.get_folder(name)
            else:
                raise SourceError(f"{self.path} has no folder {name!r} (it has: {', '.join(root.list_folders())})")
        return found

    def _sent_name(self, root: mailbox.Maildir) -> str:
        if self.sent_folder != "auto":
            return self.sent_folder
        return next((name for name in root.list_folders() if name.lower() in ("sent", "sent items")), "")

    def poll(self, sync: Mapping[str, dict]) -> Generator[RawMessage, None, dict[str, dict]]:
        """New messages, read one at a time; returns the folders' seen keys that grew, once all were read."""
        moved: dict[str, dict] = {}
        for name, folder in self.watched().items():
            state = sync.get(f"maildir:{name}", {"seen": []})
            seen = set(state["seen"])
            try:
                new_keys = [key for key in folder.iterkeys() if key not in seen]
            except OSError as error:  # the folder went away or cannot be listed: a source problem, retried
                raise SourceError(f"cannot list the Maildir folder {name!r} of {self.path}: {error.strerror}") from None
            for key in new_keys:
                raw = self._read(name, folder, key)
                if raw is not None:
                    yield raw
            if new_keys:
                moved[f"maildir:{name}"] = {"seen": sorted(seen.union(new_keys))}
        return moved

    @staticmethod
    def _read(name: str, folder: mailbox.Maildir, key: str) -> RawMessage | None:
        try:
            data = folder.get_bytes(key)
            mtime = folder.get_message(key).get_date()
        except (KeyError, FileNotFoundError):
            return None  # moved or deleted between listing and reading: next poll sees it again if it is back
        return RawMessage(key=f"maildir:{name}:{key}", folder=name, data=data,
                          arrived=datetime.fromtimestamp(mtime, timezone.utc))

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]:
        folders = self.watched()
        found = {}
        for key in own_keys("maildir", keys):
            name, local = key.removeprefix("maildir:").rsplit(":", 1)
            try:
                found[key] = folders[name].get_bytes(local)
            except (KeyError, FileNotFoundError):
                continue
        return found

    def describe(self) -> dict:
        folders = self.watched()
        return {"kind": "maildir", "path": str(self.path),
                "folders": {name: sum(1 for _ in folder.iterkeys()) for name, folder in folders.items()}}

    def close(self) -> None:
        pass
