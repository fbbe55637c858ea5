"""Mail files for replay: an mbox file, a Maildir (with Maildir++ subfolders), or a folder of .eml files.

Everything is read once, in memory. Arrival times: the mbox From_ line, the Maildir file's mtime, or for
.eml files the newest Received: header; the Date header when those are missing."""

from __future__ import annotations

import mailbox
import mmap
import os
import re
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from mailesc.errors import SourceError
from mailesc.model import RawMessage
from mailesc.parse import parse_date
from mailesc.sources.maildir import MaildirSource

_FROM_LINE_DATE = re.compile(r"^\S+\s+(.*)$")
_HEADERS = BytesHeaderParser(policy=compat32)


class FileMailbox:
    """A source over files that holds every message in memory; poll() hands them all out once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.messages = self._load()
        self._by_key = {raw.key: raw.data for raw in self.messages}
        self._handed_out = False

    def _load(self) -> list[RawMessage]:
        if self.path.is_file():
            return list(_read_mbox(self.path))
        if (self.path / "cur").is_dir() or (self.path / "new").is_dir():
            source = MaildirSource(self.path, folders=("INBOX",), sent_folder="")
            return list(source.poll({})) + [raw for name in mailbox.Maildir(self.path, create=False).list_folders()
                                            for raw in MaildirSource(self.path, (name,), "").poll({})]
        if self.path.is_dir():
            return list(_read_eml_folder(self.path))
        raise SourceError(f"{self.path} is neither an mbox file, a Maildir nor a folder of .eml files")

    def poll(self, sync: Mapping[str, dict]) -> list[RawMessage]:
        if self._handed_out:
            return []
        self._handed_out = True
        return list(self.messages)

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]:
        return {key: self._by_key[key] for key in keys if key in self._by_key}

    def describe(self) -> dict:
        return {"kind": "files", "path": str(self.path), "messages": len(self.messages)}

    def close(self) -> None:
        pass


def _read_mbox(path: Path) -> Iterable[RawMessage]:
    if _bare_cr(path):
        yield from _read_bare_cr_mbox(path)
        return
    try:
        for index, (from_line, data) in enumerate(mbox_messages(path)):
            yield RawMessage(key=f"mbox:{index}", folder="INBOX", data=data,
                             arrived=_from_line_time(from_line.decode("ascii", "replace")) or _received_time(data))
    except (OSError, mailbox.Error) as error:
        raise SourceError(f"cannot read the mbox {path}: {error}") from None


def mbox_messages(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """(From_ line, message bytes) of each message of an mbox, exactly as the mailbox module splits it
    (`mailbox.mbox`: get_file(from_=True).readline() and get_bytes(from_=False)), in one pass over the file
    instead of two seeks and reads per message (a fifth of a replay went there). A message starts at a line
    that starts with "From "; it ends before the next one, without the empty line before it, if any.
    tests/unit/test_files.py compares both on a table of mbox shapes and on the corpora."""
    if os.linesep != "\n":  # the mailbox module converts the platform's line ends; this reader does not
        box = mailbox.mbox(path, factory=None, create=False)
        try:
            for key in box.iterkeys():
                yield box.get_file(key, from_=True).readline(), box.get_bytes(key, from_=False)
        finally:
            box.close()
        return
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as text:
            starts = [match.start() for match in _FROM_LINE.finditer(text)]
            for start, end in zip(starts, starts[1:] + [len(text)]):
                stop = end - 1 if text[end - 2:end] == b"\n\n" else end  # the empty line before the next From_
                line_end = text.find(b"\n", start, end)
                body = line_end + 1 if line_end != -1 else end
                yield text[start:body], text[body:max(body, stop)]


def _bare_cr(path: Path) -> bool:
    """An mbox whose lines end in CR alone (old Mac tools): the mailbox module reads it as one line, the
    From_ line, and every message in it as empty."""
    try:
        with path.open("rb") as file:
            start = file.read(64 * 1024)
    except OSError as error:
        raise SourceError(f"cannot read the mbox {path}: {error.strerror}") from None
    return b"\r" in start and b"\n" not in start


_FROM_LINE = re.compile(rb"^From ", re.MULTILINE)


def _read_bare_cr_mbox(path: Path) -> Iterable[RawMessage]:
    try:
        text = path.read_bytes().replace(b"\r", b"\n")
    except OSError as error:
        raise SourceError(f"cannot read the mbox {path}: {error.strerror}") from None
    starts = [match.start() for match in _FROM_LINE.finditer(text)]
    if not starts or starts[0] != 0:
        raise SourceError(f"cannot read the mbox {path}: it does not start with a From_ line")
    for index, (start, end) in enumerate(zip(starts, starts[1:] + [len(text)])):
        from_line, _, data = text[start:end].partition(b"\n")
        yield RawMessage(key=f"mbox:{index}", folder="INBOX", data=data,
                         arrived=_from_line_time(from_line.decode("ascii", "replace")) or _received_time(data))


def _read_eml_folder(path: Path) -> Iterable[RawMessage]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".msg", ""))
    if not files:
        raise SourceError(f"{path} holds no .eml files")
    for file in files:
        if file.name.upper() in ("README.MD", "LICENSE", "NOTICE", "SOURCE.MD"):
            continue
        data = file.read_bytes()
        folder = file.parent.relative_to(path).as_posix()
        yield RawMessage(key=f"eml:{file.relative_to(path).as_posix()}", folder="INBOX" if folder == "." else folder,
                         data=data, arrived=_received_time(data))


def _from_line_time(line: str) -> datetime | None:
    """'From sender Mon Oct  5 09:12:00 2026' -> that time, read as UTC (mbox writers use UTC or local)."""
    match = _FROM_LINE_DATE.match(line.removeprefix("From ").strip())
    if not match:
        return None
    try:
        return datetime.strptime(" ".join(match.group(1).split()[:5]), "%a %b %d %H:%M:%S %Y").replace(
            tzinfo=timezone.utc)
    except ValueError:
        return None


def _received_time(data: bytes) -> datetime | None:
    """The time in the topmost Received: header (the last hop: our server), else the Date header."""
    headers = _HEADERS.parsebytes(data)
    for value in headers.get_all("received", []):
        if when := parse_date(str(value).rpartition(";")[2]):
            return when
    return parse_date(headers.get("date"))
