"""The file store read in bulk, for `breaches list` and `report` over a long history.

A list or a report reads one part of every record: the breach documents, or each thread's report summary (the
last key of a thread document, store.FACTS_KEY). store.py's careful readers (_documents, _documents_of) read
a file a line at a time and say for each line where it is, so that damage is refused with the file, the place
and the problem; over 100k records that bookkeeping costs more than the reading. The readers here do the same
reading in a few tight loops over the whole file's bytes and check the same things as they go, but say
nothing about places: at the first thing they do not expect (a line in another shape, a value that is not
where mailesc writes it, text that is not UTF-8, a line cut by a crash, a file in TinyDB's own layout) they
return None, and the caller reads that file the careful way, which skips a cut line or refuses the damage
exactly as before. A bulk read therefore never accepts what the careful one refuses
(tests/unit/test_store_bulk.py reads every damage both ways)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mailesc.model import DEFAULT_MAILBOX

_DECODE = json.JSONDecoder().raw_decode
_HEADER = re.compile(rb'(?:\{|\},)"(\w+)":\{')  # store._TABLE_LINE, on bytes
_ARCHIVE_LINE = b'{"thread":{'  # how every archive line starts (store._ARCHIVE_LINE)
_BREACHES = b',"breaches":'


def _read(path: Path) -> bytes | None:
    """The file's bytes, when they are UTF-8 text (None: let the careful reader say what is wrong)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return data


def _value(text: bytes) -> object:
    """The one JSON value that is all of `text` (ValueError otherwise, as for anything else unexpected)."""
    value, stop = _DECODE(text.decode("utf-8"))
    if stop != len(text):
        raise ValueError("more after the value")
    return value


def live_tables(path: Path, tables: tuple[str, ...]) -> dict[str, list[bytes]] | None:
    """The record lines (`"17":{...}`, comma included) of each of `tables` in the live store, if the file is in
    mailesc's one-record-a-line layout and every line has the shape the careful reader accepts (none when
    there is no file); None otherwise."""
    found: dict[str, list[bytes]] = {table: [] for table in tables}
    if not path.exists():
        return found
    data = _read(path)
    if data is None:
        return None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    first = _HEADER.fullmatch(lines[0]) if lines and lines[0].startswith(b"{") else None
    if first is None or len(lines) < 2 or lines[-1] != b"}}":
        return None
    wanted = found.get(first.group(1).decode())
    for number in range(1, len(lines) - 1):
        line = lines[number]
        if line[:1] == b'"':
            if not (line.endswith(b"},") or line.endswith(b"}")) or b'":{' not in line[:24]:
                return None
            if wanted is not None:
                wanted.append(line)
        else:
            header = _HEADER.fullmatch(line)
            if header is None or not line.startswith(b"},"):
                return None
            wanted = found.get(header.group(1).decode())
    return found


def _record_text(line: bytes) -> bytes | None:
    """The document's text of a record line `"17":{...},`, when its key is a document id."""
    key, _, text = line.partition(b":")
    if len(key) < 3 or not key[1:-1].isdigit() or key[-1:] != b'"':
        return None
    return text[:-1] if text.endswith(b",") else text


def documents(lines: list[bytes]) -> list[dict] | None:
    """The documents of record lines, parsed (None: read them the careful way)."""
    docs = []
    try:
        for line in lines:
            text = _record_text(line)
            doc = _value(text) if text is not None else None
            if not isinstance(doc, dict):
                return None
            docs.append(doc)
    except ValueError:
        return None
    return docs


def summaries(lines: list[bytes], key: str) -> list[object] | None:
    """The value of `key`, the last key of each thread document of record lines (its report summary), without
    parsing the rest of the document; None when a thread has none (written before summaries were kept) or
    anything else is unexpected."""
    marker = f',"{key}":'.encode()
    found = []
    try:
        for line in lines:
            if _record_text(line) is None:
                return None
            end = len(line) - 2 if line.endswith(b"},") else len(line) - 1  # the `}` that closes the document
            at = line.rfind(marker)
            if at < 0:
                return None
            found.append(_value(line[at + len(marker):end]))
    except ValueError:
        return None
    return found


def archive_parts(path: Path, summaries: str | None = None) -> list[tuple[object, list]] | None:
    """(None, the breach documents) of every line of an archive file, in order; with `summaries` (the key of
    the thread's report summary), (the thread's summary, its breach documents). None: read it the careful way
    (a line cut by a crash, a line written before summaries were kept, damage)."""
    data = _read(path)
    if not data:  # unreadable, or empty (damage)
        return None
    lines = data.split(b"\n")
    if lines[-1] != b"":
        return None  # a last line without its newline: maybe cut short
    lines.pop()
    marker = f',"{summaries}":'.encode() if summaries else b""
    parts: list[tuple[object, list]] = []
    try:
        for line in lines:
            if not line.startswith(_ARCHIVE_LINE) or not line.endswith(b"]}"):
                return None
            at = line.rfind(_BREACHES)
            if at < 0:
                return None
            breaches = _value(line[at + len(_BREACHES):-1])
            if not isinstance(breaches, list):
                return None
            facts = None
            if summaries:
                if line[at - 1:at] != b"}":
                    return None
                start = line.rfind(marker, 0, at)
                if start < 0:
                    return None
                facts = _value(line[start + len(marker):at - 1])
            parts.append((facts, breaches))
    except ValueError:
        return None
    return parts


def records(live: Path, archive: list[Path], facts_key: str | None = None
            ) -> tuple[list[object], dict[int, dict]] | None:
    """What lists and reports read of the whole store, in bulk: (with `facts_key`, the report summary of every
    thread, the latest copy of each, archived ones first; else []) and every breach document by id (the latest
    copy); the same as store.report_documents and store.breach_documents read, or None when any file needs
    the careful reader."""
    breaches: dict[int, dict] = {}
    archived: dict[tuple, object] = {}
    for path in archive:
        parts = archive_parts(path, facts_key)
        if parts is None:
            return None
        for facts, docs in parts:
            for doc in docs:
                if not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
                    return None  # the careful reader refuses it, saying where
                breaches[doc["id"]] = doc
            if facts_key:
                key = _thread_key(facts) or (None, object())  # no summary (no customer writes): never a copy
                archived.pop(key, None)  # re-insert: the latest copy last
                archived[key] = facts
    tables = live_tables(live, ("threads", "breaches") if facts_key else ("breaches",))
    if tables is None:
        return None
    live_breaches = documents(tables["breaches"])
    current = summaries(tables["threads"], facts_key) if facts_key else []
    if live_breaches is None or current is None:
        return None
    for doc in live_breaches:
        if not isinstance(doc.get("id"), int):
            return None
        breaches[doc["id"]] = doc
    for facts in current:
        live_key = _thread_key(facts)
        if live_key is not None:
            archived.pop(live_key, None)  # the live copy wins
    return [*archived.values(), *current], breaches


def _thread_key(facts: object) -> tuple | None:
    if not isinstance(facts, dict):
        return None
    return facts.get("mailbox", DEFAULT_MAILBOX), facts.get("thread")
