"""The file store's small index of a mailbox's threads, so that a start reads no thread it does not need.

Without it every start parsed every live thread (40 MB of JSON at 100k messages) to learn three things the
engine asks at once: when each thread's clock next needs looking at (the agenda), which threads no policy could
time, and which hold an unsent notice. The index keeps those, written with the threads in the same atomic file
write, as one more record of the `meta` table (`{"name": "thread_index", "state": {...}}`, so TinyDB still
reads the file). It is trusted only when it describes exactly the thread records beside it: it names their
document ids and a checksum of their texts; a store whose index is missing, damaged, of another version, or does
not match its threads (an older mailesc wrote the file, somebody edited it) is read whole, as before, and the
index is written anew at the next flush. Stored wake-up times hold only for the policies they were computed
with (`fingerprint`): when those changed, every clock is evaluated again.

Pure functions: the store (mailesc/store.py) reads and writes the document."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mailesc.clock import isoformat, parse_iso

INDEX_RECORD = "thread_index"  # its name in the meta table
INDEX_VERSION = 1
_MASK = (1 << 64) - 1


def text_checksum(text: bytes) -> int:
    return zlib.crc32(text)


def checksum(crcs: Iterable[int]) -> int:
    """The checksum of a box's thread records: the sum of their texts' CRC-32s (order free, so that a record
    rewritten changes only its own term)."""
    return sum(crcs) & _MASK


@dataclass
class StoredIndex:
    """What a box's index said when it was read, once it was found to match the thread records."""

    fingerprint: str | None = None  # of the policies the wake-up times were computed with
    wakes: dict[str, datetime] = field(default_factory=dict)  # thread id -> its clock's next moment
    changed: set[str] = field(default_factory=set)  # changed since they were last evaluated
    untimed: set[str] = field(default_factory=set)  # their policy could not time them (Thread.clock_error)
    notices: set[str] = field(default_factory=set)  # they hold an unsent warning or acknowledgement


def index_document(doc_ids: Iterable[int], crcs: Mapping[int, int], *, fingerprint: str | None,
                   wakes: Mapping[str, datetime], changed: Iterable[str], untimed: Iterable[str],
                   notices: Iterable[str]) -> dict:
    """The index of one box as stored (the `state` of its meta record)."""
    ids = sorted(doc_ids)
    return {"version": INDEX_VERSION, "threads": ids, "checksum": checksum(crcs[i] for i in ids),
            "fingerprint": fingerprint, "wakes": {thread: isoformat(when) for thread, when in sorted(wakes.items())},
            "changed": sorted(changed), "untimed": sorted(untimed), "notices": sorted(notices)}


def matching(stored: Mapping[str, object], crcs: Mapping[int, int]) -> list[int] | None:
    """The document ids of the thread records a stored index describes, if it is of this version, well formed,
    and its checksum matches those records as read (`crcs`, by document id); else None: not to be trusted."""
    try:
        if stored.get("version") != INDEX_VERSION:
            return None
        ids = stored["threads"]
        if not isinstance(ids, list) or not all(type(i) is int and i in crcs for i in ids):
            return None
        return ids if checksum(crcs[i] for i in ids) == stored["checksum"] else None
    except (KeyError, TypeError, AttributeError):
        return None


def read_index(stored: Mapping) -> StoredIndex | None:
    """The parts of a matching index the engine uses; None if they cannot be read (the store is then read
    whole, as without an index)."""
    try:
        fingerprint = stored.get("fingerprint")
        wakes = {str(thread): parse_iso(when) for thread, when in stored["wakes"].items()}
        return StoredIndex(fingerprint=fingerprint if isinstance(fingerprint, str) else None, wakes=wakes,
                           changed=set(map(str, stored["changed"])), untimed=set(map(str, stored["untimed"])),
                           notices=set(map(str, stored["notices"])))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
