"""The file store's small index of its threads, so that a start reads no thread it does not need.

Without it every start parsed every live thread (40 MB of JSON at 100k messages) to learn what the engine asks
at once: when each thread's clock next needs looking at (the agenda), which threads no policy could time, and
which hold an unsent notice. The index keeps those per mailbox, and where each thread's record is in the file,
written with the threads in the same atomic file write as one more record of the `meta` table
(`{"name": "thread_index", "mailbox": "", "state": {...}}`, so that TinyDB still reads the file).

It is trusted only when it describes exactly the thread records beside it: it holds the byte range of the
threads table and a CRC-32 of those bytes, checked at every load (one pass over the bytes, in C). A store whose
index is missing, damaged, of another version, or whose threads table is not what the index was written with
(an older mailesc wrote the file, somebody edited it) is read whole, as before, and the index is written anew at
the next flush. Stored wake-up times hold only for the policies they were computed with (`fingerprint`): when
those changed, every clock is evaluated again.

Pure functions: the store (mailesc/store.py) reads and writes the document."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mailesc.clock import isoformat, parse_iso

INDEX_RECORD = "thread_index"  # its name in the meta table (of the installation's records)
INDEX_VERSION = 2


@dataclass(frozen=True)
class Region:
    """Where the threads table's records are in the file: bytes [start, end), `lines` records, their CRC-32."""

    start: int
    end: int
    lines: int
    crc: int


@dataclass
class StoredIndex:
    """A box's part of the index: its agenda as kept, and the threads in the sets the engine asks for."""

    fingerprint: str | None = None  # of the policies the wake-up times were computed with
    wakes: dict[str, datetime] = field(default_factory=dict)  # thread id -> its clock's next moment
    changed: set[str] = field(default_factory=set)  # changed since they were last evaluated
    untimed: set[str] = field(default_factory=set)  # their policy could not time them (Thread.clock_error)
    notices: set[str] = field(default_factory=set)  # they hold an unsent warning or acknowledgement
    threads: list[tuple[int, str, int, int]] = field(default_factory=list)  # (doc id, thread id, offset, length)


def box_part(*, threads: Iterable[tuple[int, str, int, int]], fingerprint: str | None,
             wakes: Mapping[str, datetime], changed: Iterable[str], untimed: Iterable[str],
             notices: Iterable[str]) -> dict:
    return {"threads": [list(entry) for entry in sorted(threads, key=lambda entry: entry[2])],
            "fingerprint": fingerprint, "wakes": {thread: isoformat(when) for thread, when in sorted(wakes.items())},
            "changed": sorted(changed), "untimed": sorted(untimed), "notices": sorted(notices)}


def index_document(region: Region, boxes: Mapping[str, dict]) -> dict:
    """The whole index as stored (the `state` of its meta record)."""
    return {"version": INDEX_VERSION, "region": [region.start, region.end, region.lines, region.crc],
            "boxes": dict(boxes)}


def read_index(stored: object) -> tuple[Region, dict[str, StoredIndex]] | None:
    """The index as written, if it is of this version and well formed (its thread entries inside the region);
    else None: not to be used (the store is then read whole). Whether the region still holds what the index was
    written with is for the caller to check (the CRC)."""
    try:
        if not isinstance(stored, dict) or stored.get("version") != INDEX_VERSION:
            return None
        start, end, lines, crc = stored["region"]
        if not all(type(value) is int for value in (start, end, lines, crc)) or not 0 <= start <= end:
            return None
        region = Region(start, end, lines, crc)
        boxes = {}
        count = 0
        for name, part in stored["boxes"].items():
            threads = [(doc_id, thread_id, offset, length) for doc_id, thread_id, offset, length in part["threads"]]
            if not all(type(d) is int and type(t) is str and type(o) is int and type(n) is int
                       and start < o and o + n <= end for d, t, o, n in threads):
                return None
            count += len(threads)
            fingerprint = part.get("fingerprint")
            boxes[str(name)] = StoredIndex(
                fingerprint=fingerprint if isinstance(fingerprint, str) else None,
                wakes={str(thread): parse_iso(when) for thread, when in part["wakes"].items()},
                changed=set(map(str, part["changed"])), untimed=set(map(str, part["untimed"])),
                notices=set(map(str, part["notices"])), threads=threads)
        return (region, boxes) if count == lines else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
