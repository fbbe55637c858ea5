"""The embedded store: one JSON file in TinyDB's layout, written atomically, once per cycle, under a file lock.

The live state is held in memory while mailesc runs, as objects plus, for each record, where its JSON text
is in the file on disk. `flush()` serialises only what changed and writes the new file from those texts and
from the unchanged records' bytes, copied from the old file (keeping every text in memory instead cost as much
RAM again as the file is large). (TinyDB's own write path keeps a second,
parsed copy of every record and dumps it whole at each write: that doubled the daemon's memory and made every
flush cost as much as the whole store. Any TinyDB can still open the file: the reviews and archive reader do.) Threads closed long
ago move, with their breaches, to append-only archive files beside the store (JSON lines, one file a month),
so the live file stays small; reports and breach review read both."""

from __future__ import annotations

import fcntl
import json
import zlib
from sys import intern
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol, TypeVar, overload

from tinydb import TinyDB
from tinydb.storages import Storage

from mailesc.clock import isoformat, parse_iso
from mailesc.errors import StoreBusy, StoreError
from mailesc.queue import BoxQueue, MailIndex, Queued, daily_from_health
from mailesc.signing import installation_secret, secret_path
from mailesc.stores.file_index import INDEX_RECORD, Region, StoredIndex, box_part, index_document, read_index
from mailesc.model import (DEFAULT_MAILBOX, Breach, Delivery, Kind, MailKind, QueuedMail, Quarantined, Status,
                           Thread, ThreadMessage)

if TYPE_CHECKING:  # the reporting rows are imported where lists and reports read them, not at start-up
    from mailesc.reporting.queries import StoredBreach, ThreadFacts


class AtomicJSONStorage(Storage):
    """TinyDB storage that never leaves a half-written file: temp file, fsync, rename; mode 0600.

    It refuses what it cannot trust (an empty file, broken JSON, the wrong shape) instead of reading it as
    "nothing yet": TinyDB would then write a new file over the old one, losing what was in it."""

    def __init__(self, path: str, what: str = "the store"):
        self.path, self.what = Path(path), what

    def read(self):
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None  # the only case that starts afresh: no file at all
        except OSError as error:
            raise StoreError(f"cannot read {self.what} {self.path}: {error.strerror}; it was left untouched") from None
        return parse_tables(data, self.path, self.what)

    def write(self, data) -> None:
        try:
            self.write_with(lambda handle: json.dump(data, handle, ensure_ascii=False, separators=(",", ":")))
        except OSError as error:
            raise StoreError(f"cannot write {self.what} {self.path}: {error.strerror}") from None

    def write_with(self, write, binary: bool = False) -> None:
        """Call `write(handle)` on a temp file beside the store (text, or bytes with `binary`), then fsync and
        rename it into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _fsync_folder(self.path.parent)

    def close(self) -> None:
        pass


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _MarksDirty(Protocol):
    """What NamedRecords writes through: the file store, or a PostgreSQL box (which keeps its own dirty set)."""

    def mark_dirty(self, table: str, key: tuple[str, str]) -> None: ...


class NamedRecords(MutableMapping[str, dict]):
    """A table of small documents by name, written at the next flush when set: a mailbox's bookmarks per folder
    (UIDVALIDITY and last UID, or seen Maildir keys), its health, its first start; or the installation's."""

    def __init__(self, store: _MarksDirty, table: str, mailbox: str):
        self.store, self.table, self.mailbox = store, table, mailbox
        self.data: dict[str, dict] = {}

    def __getitem__(self, name: str) -> dict:
        return self.data[name]

    def __setitem__(self, name: str, state: dict) -> None:
        self.data[name] = state
        self.store.mark_dirty(self.table, (self.mailbox, name))

    def __delitem__(self, name: str) -> None:
        raise StoreError(f"{self.table} records are replaced, never deleted")

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class LazyThreads(MutableMapping):
    """A box's live threads by id, each made from its text in the store file only when first asked for (and
    kept from then on): a start that finds nothing new reads none. Walking all of them (`values()`) reads
    them all, as every start did before."""

    def __init__(self, read: Callable[[str, int], Thread]):
        self._items: dict[str, Thread | int] = {}  # an int: the document id of a thread not read yet
        self._read = read

    def defer(self, thread_id: str, doc_id: int) -> None:
        self._items[thread_id] = doc_id

    def read(self) -> list[Thread]:
        """The threads made into objects so far (changed or asked for), without reading the others."""
        return [item for item in self._items.values() if isinstance(item, Thread)]

    def __getitem__(self, thread_id: str) -> Thread:
        item = self._items[thread_id]
        if isinstance(item, int):
            item = self._items[thread_id] = self._read(thread_id, item)
        return item

    def __setitem__(self, thread_id: str, thread: Thread) -> None:
        self._items[thread_id] = thread

    def __delitem__(self, thread_id: str) -> None:
        del self._items[thread_id]

    def __contains__(self, thread_id) -> bool:
        return thread_id in self._items

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class FileBox(BoxQueue):
    """One mailbox's live records in the file store: what an engine works on (repository.MailboxStore).

    Its changes are written with everything else in the store at the next flush of any box."""

    def __init__(self, store: "Store", name: str):
        self.store, self.name = store, name
        self.threads: LazyThreads = LazyThreads(lambda thread_id, doc_id: store.read_thread(name, thread_id, doc_id))
        self.breaches: dict[int, Breach] = {}
        self.quarantine: dict[str, Quarantined] = {}
        self.sync = NamedRecords(store, "sync", name)
        self.health = NamedRecords(store, "health", name)
        self.meta = NamedRecords(store, "meta", name)
        self.outgoing: dict[str, QueuedMail] = {}  # mails of no single thread (digests), by Message-ID
        self.mails = MailIndex()  # where its unsent mails are
        # the index (stores/file_index.py): as read, if it matched the thread records; and kept up to date
        self.index: StoredIndex | None = None  # None: the threads were read whole (no index, or not trusted)
        self.untimed: set[str] = set()
        self.notices: set[str] = set()
        self._agenda = None  # the engine's Agenda, written into the index at each flush (keep_agenda)
        self._fingerprint: str | None = None

    def empty(self) -> bool:
        return not (self.threads or self.breaches or self.quarantine or self.sync or self.health or self.meta
                    or self.outgoing)

    def put_thread(self, thread: Thread) -> None:
        thread.mailbox = self.name
        self.threads[thread.id] = thread
        self.store.mark_dirty("threads", (self.name, thread.id))
        self.note(thread)

    def note(self, thread: Thread) -> None:
        """Keep the index's sets up to date with a thread as it is now."""
        for members, member in ((self.untimed, thread.clock_error is not None),
                                (self.notices, any(n.delivery is Delivery.PENDING for n in thread.notices))):
            if member:
                members.add(thread.id)
            else:
                members.discard(thread.id)

    # -- asked by purpose (repository.MailboxStore), answered from the index without reading every thread --

    def agenda_state(self, fingerprint: str) -> tuple[dict[str, datetime], set[str]] | None:
        """(each thread's next wake-up, the threads changed since they were last evaluated) as stored, if the
        store's index was trusted and was written under policies with this `fingerprint`; None: every thread
        must be evaluated (a first start, another mailesc wrote the store, or the policies changed)."""
        if self.index is None or self.index.fingerprint != fingerprint:
            return None
        return dict(self.index.wakes), set(self.index.changed) & set(self.threads)

    def keep_agenda(self, agenda, fingerprint: str) -> None:
        """Write `agenda`'s wake-ups and changed threads into the index at every flush, as valid under
        policies with this `fingerprint`."""
        self._agenda, self._fingerprint = agenda, fingerprint

    def untimed_threads(self) -> list[Thread]:
        """The threads their policy could not time (Thread.clock_error), by id."""
        return [self.threads[i] for i in sorted(self.untimed) if i in self.threads]

    def last_archived(self) -> datetime | None:
        return last_archived(self)

    def archive_looked(self, at: datetime) -> None:
        archive_looked(self, at)

    def notice_owners(self) -> set[str]:
        """The threads that hold an unsent warning or acknowledgement."""
        return set(self.notices)

    def index_part(self, threads: list[tuple[int, str, int, int]]) -> dict:
        """This box's part of the store's index (file_index.box_part), its threads at these places."""
        agenda = self._agenda
        if agenda is not None:
            wakes, changed, fingerprint = agenda.wakes(), agenda.unevaluated(), self._fingerprint
        elif self.index is not None:  # no engine on this box in this process: what was stored stays
            wakes, changed, fingerprint = self.index.wakes, self.index.changed, self.index.fingerprint
        else:
            wakes, changed, fingerprint = {}, set(), None
        live = self.threads
        return box_part(threads=threads, fingerprint=fingerprint,
                        wakes={t: w for t, w in wakes.items() if t in live}, changed={t for t in changed if t in live},
                        untimed={t for t in self.untimed if t in live}, notices={t for t in self.notices if t in live})

    def new_breach(self, **values) -> Breach:
        """A breach with the next id of the installation: ids are never reused, not even archived ones'."""
        breach = Breach(id=self.store.next_breach_id(), mailbox=self.name, **values)
        self.put_breach(breach)
        return breach

    def put_breach(self, breach: Breach) -> None:
        self.breaches[breach.id] = breach
        self.store.mark_dirty("breaches", (self.name, breach.id))

    def put_quarantined(self, item: Quarantined) -> None:
        item.mailbox = self.name
        self.quarantine[item.key] = item
        self.store.mark_dirty("quarantine", (self.name, item.key))

    def _put_outgoing(self, mail: QueuedMail) -> None:
        self.outgoing[mail.message_id] = mail
        self.store.mark_dirty("outgoing", (self.name, mail.message_id))

    def drop_quarantined(self, key: str) -> None:
        """Out of quarantine (it is being read again; a new failure puts it back)."""
        if self.quarantine.pop(key, None) is not None:
            self.store.mark_dirty("quarantine", (self.name, key))

    def first_start(self, now: datetime) -> datetime:
        return first_start(self, now)

    def archive(self, threads: list[Thread]) -> None:
        self.store.archive_threads(self, threads)

    def flush(self) -> None:
        self.store.flush()

    def may_send(self) -> bool:
        return True  # one process holds the file's lock for its whole life

    def record_poll(self, at: datetime) -> None:
        self.store.record_poll(at)



def take_over_daily_digest(box) -> None:
    """A store an older mailesc kept has the daily digest's delivery in the installation's health table: it
    becomes a queued mail (written at the next flush). (Both stores.)"""
    old = box.health.get(DAILY_DIGEST_RECORD)
    if old is None or any(mail.kind == MailKind.DAILY for mail in box.outgoing.values()):
        return
    mail = daily_from_health(old)
    if mail is not None:
        box.put_mail(mail)


def first_start(box, now: datetime) -> datetime:
    """When mailesc first watched `box`'s mailbox (`now`, remembered, if this is the first time): the anchor of
    `[mailbox] since`, so that it stays put across restarts. A store an older mailesc kept has no such record;
    its earliest message stands in, so that nothing it already tracks becomes history. (Both stores.)"""
    known = box.meta.get("first_start")
    if known is not None:
        return parse_iso(known["at"])
    start = min(min((m.arrived for thread in box.threads.values() for m in thread.messages), default=now), now)
    box.meta["first_start"] = {"at": isoformat(start)}
    return start


def last_archived(box) -> datetime | None:
    """When `box` was last looked through for threads to archive, by any process (that walks its threads: at
    most once an hour, not at every `once`). (Both stores.)"""
    known = box.meta.get("archived")
    try:
        return parse_iso(known["at"]) if known else None
    except (KeyError, TypeError, ValueError):
        return None  # looked through again, and the record written anew


def archive_looked(box, at: datetime) -> None:
    """`box` was looked through for threads to archive at `at`: remembered at the next flush."""
    box.meta["archived"] = {"at": isoformat(at)}


INSTALLATION = ""  # the box of the installation-wide records: the daily digests, the last breach id
DAILY_DIGEST_RECORD = "daily_digest"  # the daily digest's delivery in the installation's health, before the queue
_INSTALLATION_RECORDS = {"health": {DAILY_DIGEST_RECORD}, "meta": {"breach_ids"}}  # kept without a mailbox before


class Store:
    """The embedded store: one file in TinyDB's layout holding every mailbox's threads, breaches, sync
    bookmarks, health, counters and quarantine. `box(name)` is one mailbox's part, the installation's records
    are in `installation`.

    The attributes and methods of a box are also the store's own, meaning the default mailbox's: a shortcut
    for a config with a single mailbox (and for tests)."""

    shared = False  # one process at a time (the file lock); PostgresStore is shared by workers under leases

    def __init__(self, path: Path, *, readonly: bool = False, threads: bool = True, live: bool = True):
        """`threads=False` (read-only only) skips reading the threads: breach lists do not need them;
        `live=False` (read-only only) reads no live record at all (`breaches show` and reviews find their own)."""
        self.path = Path(path)
        self.readonly, self._with_threads = readonly, threads or not readonly
        self._lock = None if readonly else _lock(self.path)
        if not readonly:
            self._remove_stale_temp_files()
        self._storage = AtomicJSONStorage(str(self.path))
        self.boxes: dict[str, FileBox] = {}
        self.installation = self.box(INSTALLATION)
        self._default = self.box(DEFAULT_MAILBOX)
        self._last_breach_id: int | None = None
        self._doc_ids: dict[str, dict] = {table: {} for table in TABLES}  # record key -> document id
        # document id -> its JSON: (offset, length) of its text in the file on disk, which `_on_disk` keeps open;
        # _Changed(key) for a record changed since (its text is made at the write); the text itself for a record
        # read from a file in another layout
        self._texts: dict[str, dict[int, str | tuple[int, int] | _Changed]] = {table: {} for table in TABLES}
        self._on_disk: BinaryIO | None = None  # see _open_on_disk
        self._dirty: dict[str, set] = {table: set() for table in TABLES}
        self._written_threads: dict[int, tuple[int, int]] = {}  # while writing: where each thread's text went
        self._region: Region | None = None  # while writing: the threads table's bytes, for the index
        self._loaded = live or not readonly
        try:
            if self._loaded:
                self._load()
        except StoreError:
            self.close()
            raise

    def box(self, name: str) -> FileBox:
        """The records of mailbox `name` (none yet for a mailbox never watched)."""
        if name not in self.boxes:
            self.boxes[name] = FileBox(self, name)
        return self.boxes[name]

    def mailboxes(self) -> list[FileBox]:
        """Every mailbox with records, the installation's box left out."""
        return [box for name, box in self.boxes.items() if name != INSTALLATION and not box.empty()]

    # -- the read side of admin commands (what PostgresStore offers too; see app.open_records) ----------------

    def history(self, threads: bool = True):
        """Everything on record (live, archived, reviews), read without the lock: the daemon may be running."""
        from mailesc.history import load_history  # history.py builds on this module

        mine = self._loaded and (self._with_threads or not threads)  # the records read at open serve
        return load_history(self.path, threads, live=self if mine else None)

    def select_breaches(self, wanted, now: datetime, period, limit: int | None = None):
        """`breaches list`: (the breaches `wanted` (a reporting.queries.BreachFilter) lets through, as stored
        (StoredBreach), oldest first (with `limit`, the newest that many); their reviews; whether any breach is
        on record at all). No thread is read, and no breach becomes an object."""
        from mailesc.reporting.queries import newest

        reviews = self.reviews()
        stored = self._stored_breaches()
        return newest(wanted.select(stored.values(), reviews, now, period), limit), reviews, bool(stored)

    def report_records(self, since: datetime | None = None, until: datetime | None = None):
        """What `report` counts over (reporting.queries.ReportRecords): each thread's stored summary (the
        whole thread only for one written before summaries were kept), every breach as stored, the reviews.
        The file store has no index: everything is read, the period is applied by the report."""
        from mailesc.reporting.queries import ReportRecords, ThreadFacts

        bulk = self._bulk(facts=True)
        if bulk is not None:
            return ReportRecords(bulk[0], dict(bulk[1]), self.reviews())
        threads = []
        for item, _summary, where in report_documents(self.path):
            facts = ThreadFacts.of(item) if isinstance(item, Thread) else \
                ThreadFacts.stored(item, where) if item is not None else None
            if facts is not None:
                threads.append(facts)
        return ReportRecords(threads, self._stored_breaches(), self.reviews())

    def count_report(self, policies, *, now: datetime, review_period, since: datetime | None = None,
                     until: datetime | None = None, by: str | None = None):
        """`report`'s counts (reporting.statistics.Counts), counted in Python over report_records."""
        from mailesc.reporting.statistics import count

        return count(self.report_records(since, until), policies, now=now, review_period=review_period,
                     since=since, until=until, by=by)

    def _stored_breaches(self) -> dict:
        from mailesc.reporting.queries import checked_breach

        bulk = self._bulk(facts=False)
        if bulk is not None:
            return bulk[1]
        return {breach.id: breach for breach in (checked_breach(doc, f"at {where}")
                                                 for doc, where in breach_documents(self.path).values())}

    def _bulk(self, facts: bool) -> tuple[list[ThreadFacts], dict[int, StoredBreach]] | None:
        """(with `facts`, every thread's report facts (ThreadFacts); else []) and every breach as stored, by id,
        read in bulk (store_bulk); None when a file or a record needs the careful readers, which then say
        where the damage is (a bulk read knows no places)."""
        from mailesc import store_bulk
        from mailesc.reporting.queries import stored_breaches, stored_facts

        read = store_bulk.records(self.path, sorted(archive_folder(self.path).glob("*.jsonl")),
                                  FACTS_KEY if facts else None)
        if read is None:
            return None
        summaries, docs = read
        if not all(f is None or isinstance(f, dict) for f in summaries):
            return None
        try:
            return stored_facts([f for f in summaries if isinstance(f, dict)]), stored_breaches(docs.values())
        except StoreError:
            return None

    def find_breach(self, breach_id: int):
        """One breach (live or archived) and its thread, without building every record."""
        return find_breach(self.path, breach_id)

    def reviews(self, of: list[int] | None = None):
        """The review file's entries (`of`, the breaches wanted, is for the database: the file is read whole)."""
        from mailesc.reviews import Reviews

        return Reviews.load(self.path)

    def record_review(self, entry):
        """Append a review entry (the caller checked its cause): the review file has its own short lock, so
        this works while the daemon runs."""
        from mailesc.reviews import record_review

        return record_review(self.path, entry)

    def last_polls(self) -> tuple[datetime | None, str | None]:
        """(when a poll last succeeded, why that cannot be read): the heartbeat file beside the store."""
        return read_heartbeat(self.path)

    def _remove_stale_temp_files(self) -> None:
        """A write cut short by a crash leaves its temp file behind; with the lock held, none is in use."""
        for temp in self.path.parent.glob(f".{self.path.name}.*"):
            temp.unlink(missing_ok=True)

    # -- the default mailbox, for single-mailbox callers ----------------------------------------------------------

    name = property(lambda self: self._default.name)
    threads = property(lambda self: self._default.threads)
    breaches = property(lambda self: self._default.breaches)
    quarantine = property(lambda self: self._default.quarantine)
    sync = property(lambda self: self._default.sync)
    health = property(lambda self: self._default.health)
    meta = property(lambda self: self._default.meta)
    outgoing = property(lambda self: self._default.outgoing)

    def put_thread(self, thread: Thread) -> None:
        self._default.put_thread(thread)

    def may_send(self) -> bool:
        return True

    def new_breach(self, **values) -> Breach:
        return self._default.new_breach(**values)

    def put_breach(self, breach: Breach) -> None:
        self._default.put_breach(breach)

    def put_quarantined(self, item: Quarantined) -> None:
        self._default.put_quarantined(item)

    def enqueue(self, mail: QueuedMail, *, thread: Thread | None = None, breach: Breach | None = None) -> None:
        self._default.enqueue(mail, thread=thread, breach=breach)

    def put_mail(self, mail: QueuedMail, *, thread: Thread | None = None, breach: Breach | None = None) -> None:
        self._default.put_mail(mail, thread=thread, breach=breach)

    def pending_mails(self) -> list[Queued]:
        return self._default.pending_mails()

    def requeue(self) -> None:
        self._default.requeue()

    def drop_quarantined(self, key: str) -> None:
        self._default.drop_quarantined(key)

    def first_start(self, now: datetime) -> datetime:
        return self._default.first_start(now)

    def archive(self, threads: list[Thread]) -> None:
        self.archive_threads(self._default, threads)

    def agenda_state(self, fingerprint: str):
        return self._default.agenda_state(fingerprint)

    def keep_agenda(self, agenda, fingerprint: str) -> None:
        self._default.keep_agenda(agenda, fingerprint)

    def untimed_threads(self) -> list[Thread]:
        return self._default.untimed_threads()

    def last_archived(self) -> datetime | None:
        return self._default.last_archived()

    def archive_looked(self, at: datetime) -> None:
        self._default.archive_looked(at)

    # -- reading ------------------------------------------------------------------------------------------------

    def _load(self) -> None:
        """Read the file once, turning each record into an object (and, unless read-only, keeping where its
        JSON text is) while dropping the parsed copy as it goes: the peak stays near the size of the parsed
        file. Unless read-only, a store whose index (stores/file_index.py) matches its threads table skips that
        table: each thread is parsed when first asked for."""
        index = None if self.readonly else self._matching_index()
        place = "at its start"
        try:
            for table, doc_id, doc, place, span in _documents_of(self._storage, read=_index_unread,
                                                                 skip=index[0] if index else None):
                if table not in TABLES or (table == "threads" and not self._with_threads):
                    continue
                if doc is _INDEX:  # read already (or not to be trusted): written anew at the next flush
                    self._doc_ids[table][(INSTALLATION, INDEX_RECORD)] = int(doc_id)
                    if not self.readonly:
                        self._texts[table][int(doc_id)] = span or ""
                    continue
                key = self._take(table, doc)
                self._doc_ids[table][key] = int(doc_id)
                if not self.readonly:
                    self._texts[table][int(doc_id)] = span or _text(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(damaged("the store", self.path, place, record_problem(error))) from None
        if index is not None and self._doc_ids["threads"]:
            index = None  # the threads table was read after all (not where the index said): the records win
        if index is not None:
            self._place_threads(index[1])
        elif not self.readonly and self._doc_ids["threads"]:
            self.mark_dirty("meta", (INSTALLATION, INDEX_RECORD))  # the index is written (anew) at the next flush
        for box in self.boxes.values():
            if box.index is None:  # read whole: the sets are found by looking at every thread
                for thread in box.threads.read():
                    box.note(thread)
        take_over_daily_digest(self.installation)
        if not self.readonly and self.path.exists():
            self._open_on_disk()

    def _matching_index(self) -> tuple[Region, dict[str, StoredIndex]] | None:
        """The store's index, if the file has one of this version that matches the threads table it was
        written with (the table's bytes have the CRC-32 the index names); else None."""
        found = _find_index(self.path)
        index = read_index(found) if found is not None else None
        if index is None:
            return None
        region = index[0]
        try:
            with open(self.path, "rb") as handle:
                handle.seek(region.start)
                crc, left = 0, region.end - region.start
                while left > 0:
                    block = handle.read(min(left, 1 << 20))
                    if not block:
                        return None
                    crc, left = zlib.crc32(block, crc), left - len(block)
                if handle.read(4) != b'\n},"' and region.lines:
                    return None
        except OSError:
            return None  # the full read says what is wrong
        return index if crc == region.crc else None

    def _place_threads(self, boxes: dict[str, StoredIndex]) -> None:
        """Put each thread the index names into its box, unread, where its text is in the file (in file order,
        as a load in full would)."""
        texts, ids = self._texts["threads"], self._doc_ids["threads"]
        for name, part in boxes.items():
            box = self.box(name)
            defer = box.threads.defer
            for doc_id, thread_id, offset, length in part.threads:
                thread_id = intern(thread_id)
                defer(thread_id, doc_id)
                ids[(name, thread_id)] = doc_id
                texts[doc_id] = (offset, length)
            box.index = part
            box.untimed, box.notices = set(part.untimed), set(part.notices)

    def read_thread(self, mailbox: str, thread_id: str, doc_id: int) -> Thread:
        """A thread placed unread (see _place_threads), made from its text in the file on disk now."""
        thread = self._parse_thread(doc_id, f"in record {doc_id} of table 'threads'")
        if (thread.mailbox, thread.id) != (mailbox, thread_id):
            raise StoreError(damaged("the store", self.path, f"in record {doc_id} of table 'threads'",
                                     "the record is not the thread its index names"))
        return thread

    def _parse_thread(self, doc_id: int, place: str) -> Thread:
        span = self._texts["threads"][doc_id]
        try:
            text = self._read_span(span) if isinstance(span, tuple) else str(span)
            return _thread_from(json.loads(text))
        except json.JSONDecodeError as error:
            raise StoreError(damaged("the store", self.path, place, f"not JSON ({error.msg})")) from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(damaged("the store", self.path, place, record_problem(error))) from None

    def _read_span(self, span: tuple[int, int]) -> bytes:
        on_disk = self._on_disk
        if on_disk is None:  # while loading: the file is opened for this once
            with open(self.path, "rb") as handle:
                handle.seek(span[0])
                return handle.read(span[1])
        on_disk.seek(span[0])
        data = on_disk.read(span[1])
        if len(data) != span[1]:
            raise StoreError(f"the store {self.path} changed on disk while mailesc held its lock")
        return data

    def _open_on_disk(self) -> None:
        """Keep the file just read or written open: the unchanged records' texts are read back from it at the
        next write. We hold the lock, so nobody else replaces it; if someone did anyway, this handle still
        reads the very file the offsets were taken from."""
        on_disk = open(self.path, "rb", buffering=1 << 20)  # records are copied in file order: few real reads
        if self._on_disk is not None:
            self._on_disk.close()
        self._on_disk = on_disk

    def _take(self, table: str, doc: dict):
        """Put a record read from the file into its mailbox's box; its key in the file's tables."""
        if table == "threads":
            thread = _thread_from(doc)
            self.box(thread.mailbox).threads[thread.id] = thread
            return thread.mailbox, thread.id
        if table == "breaches":
            breach = _breach_from(doc)
            self.box(breach.mailbox).breaches[breach.id] = breach
            return breach.id
        if table == "quarantine":
            item = _quarantined_from(doc)
            self.box(item.mailbox).quarantine[item.key] = item
            return item.mailbox, item.key
        if table == "outgoing":
            mail = _outgoing_from(doc)
            mailbox = doc.get("mailbox", DEFAULT_MAILBOX)
            self.box(mailbox).outgoing[mail.message_id] = mail
            return mailbox, mail.message_id
        name = doc["name"]
        mailbox = doc.get("mailbox", INSTALLATION if name in _INSTALLATION_RECORDS.get(table, ()) else DEFAULT_MAILBOX)
        getattr(self.box(mailbox), table).data[name] = doc["state"]
        return mailbox, name

    # -- changing -----------------------------------------------------------------------------------------------

    def next_breach_id(self) -> int:
        if self._last_breach_id is None:
            self._last_breach_id = max(self.installation.meta.get("breach_ids", {}).get("last", 0),
                                       max((i for box in self.boxes.values() for i in box.breaches), default=0))
        self._last_breach_id += 1
        self.installation.meta["breach_ids"] = {"last": self._last_breach_id}
        return self._last_breach_id

    def mark_dirty(self, table: str, key) -> None:
        self._dirty[table].add(key)

    def archive_threads(self, box: FileBox, threads: list[Thread]) -> None:
        """Move `threads` of `box` and their breaches out of the live store: appended (and fsynced) to this
        month's archive file now, gone from the live file at the next flush. A crash in between leaves a thread
        in both places, never in neither; readers take the archive's latest copy."""
        if not threads:
            return
        months: dict[str, list[str]] = {}
        for thread in threads:
            breaches = [box.breaches[i] for i in thread.breach_ids.values() if i in box.breaches]
            months.setdefault(_month(thread), []).append(
                _text({"thread": _thread_doc(thread), "breaches": [_breach_doc(b) for b in breaches]}))
        for month, lines in months.items():
            _append_lines(archive_folder(self.path) / f"{month}.jsonl", lines)
        for thread in threads:
            for breach_id in thread.breach_ids.values():
                box.breaches.pop(breach_id, None)
                self.mark_dirty("breaches", (box.name, breach_id))
            del box.threads[thread.id]
            self.mark_dirty("threads", (box.name, thread.id))

    def flush(self) -> None:
        """Write every change since the last flush, of every mailbox, in one atomic file write."""
        if self.readonly:
            raise StoreError(f"the store {self.path} was opened read-only")
        if not any(self._dirty.values()):
            return
        for mailbox, thread_id in self._dirty["threads"]:
            box = self.boxes[mailbox]
            if thread_id in box.threads:
                box.note(box.threads[thread_id])
        self._dirty["meta"].add((INSTALLATION, INDEX_RECORD))  # written with every write: where the threads are
        for table, keys in self._dirty.items():
            self._write(table, keys)
        written: dict[str, dict[int, tuple[int, int]]] = {table: {} for table in TABLES}
        try:
            self._storage.write_with(lambda handle: self._write_file(handle, written), binary=True)
            self._open_on_disk()
        except OSError as error:
            raise StoreError(f"cannot write the store {self.path}: {error.strerror}") from None
        for table, spans in written.items():
            self._texts[table].update(spans)  # every text is in the new file now: none stays in memory
        for keys in self._dirty.values():
            keys.clear()

    def _write(self, table: str, keys: Iterable) -> None:
        """Mark the records of `table` at these keys ((mailbox, name or id)) for the coming write, or drop those
        no longer there. Their documents are made one at a time while the file is written (`_make_text`): a
        first sync's thousands of new records never exist all at once as texts.

        Breaches keep their id as TinyDB document id; other records get the next free one."""
        ids, texts = self._doc_ids[table], self._texts[table]
        next_id = max(texts, default=0) + 1
        for key in keys:
            file_key = key[1] if table == "breaches" else key
            if key[1] not in getattr(self.boxes[key[0]], table) and (table, key[1]) != ("meta", INDEX_RECORD):
                # a box keeps each table's records by that name (its index apart)
                texts.pop(ids.pop(file_key, None), None)
                continue
            if file_key not in ids:
                ids[file_key] = file_key if table == "breaches" else next_id
                next_id = max(next_id, ids[file_key]) + 1
            texts[ids[file_key]] = _Changed(key)

    def _make_text(self, table: str, key) -> bytes:
        """The JSON text of a changed record, made now from the record as it is."""
        mailbox, name = key
        box = self.boxes[mailbox]
        if table == "threads":
            doc = _thread_doc(box.threads[name])
        elif table == "breaches":
            doc = _breach_doc(box.breaches[name])
        elif table == "quarantine":
            doc = _quarantined_doc(box.quarantine[name])
        elif table == "outgoing":
            doc = _mailbox_doc(mailbox, _outgoing_doc(box.outgoing[name]))
        elif table == "meta" and name == INDEX_RECORD:  # written after the threads: where they went is known
            doc = _named_doc(key, self._index_document())
        else:
            doc = _named_doc(key, getattr(box, table)[name])
        return _text(doc).encode()

    def _write_file(self, handle, written: dict[str, dict[int, tuple[int, int]]]) -> None:
        """The whole store in TinyDB's layout ({"table": {"doc id": document}}), one document a line so that
        loading can parse one at a time (see _documents_of): changed records from their new texts, the others
        copied from the file on disk, a run of records that follow each other there as one block (a flush
        after a few changes copies a big store in a few reads). `written` gets where each text is now."""
        offset = 0
        whole = handle
        for number, table in enumerate(TABLES):
            head = (("{" if number == 0 else "\n},") + json.dumps(table) + ":{").encode()
            whole.write(head)
            offset += len(head)
            if table == "threads":  # its bytes are summed for the index, which is written after them
                handle, start = _Summing(whole), offset
            spans, run = written[table], _Run()
            for position, (doc_id, text) in enumerate(self._texts[table].items()):
                prefix = (("\n" if position == 0 else ",\n") + f'"{doc_id}":').encode()
                if isinstance(text, tuple) and run.extends(text, prefix):
                    spans[doc_id] = (offset + text[0] - run.start, text[1])
                    continue
                offset += self._copy(run, handle)
                run = _Run()
                handle.write(prefix)
                offset += len(prefix)
                if isinstance(text, tuple):
                    run = _Run(*text)
                    spans[doc_id] = (offset, text[1])
                    continue
                data = self._make_text(table, text.key) if isinstance(text, _Changed) else text.encode()
                handle.write(data)
                spans[doc_id] = (offset, len(data))
                offset += len(data)
            offset += self._copy(run, handle)
            if table == "threads":
                self._region = Region(start, offset, len(spans), handle.crc)
                self._written_threads, handle = spans, whole
        whole.write(b"\n}}\n")

    def _index_document(self) -> dict:
        """The index (stores/file_index.py) of the file being written: made after its threads table, whose
        bytes and places it names."""
        assert self._region is not None, "the threads table is written before the index"
        where = self._written_threads
        parts: dict[str, list[tuple[int, str, int, int]]] = {}
        for (mailbox, thread_id), doc_id in self._doc_ids["threads"].items():
            parts.setdefault(mailbox, []).append((doc_id, thread_id, *where[doc_id]))
        boxes = {box.name: box.index_part(parts.get(box.name, [])) for box in self.boxes.values()
                 if box.name in parts or box.index is not None or box._agenda is not None}
        return index_document(self._region, boxes)

    def _copy(self, run: "_Run", handle) -> int:
        """Copy a run of unchanged records from the file on disk (see _open_on_disk); the bytes written."""
        if run.end == run.start:
            return 0
        assert self._on_disk is not None, "the file on disk is open whenever a record's text is there"
        self._on_disk.seek(run.start)
        done = 0
        while done < run.end - run.start:
            block = self._on_disk.read(min(run.end - run.start - done, 1 << 20))
            if not block:
                break
            handle.write(block)
            done += len(block)
        if done != run.end - run.start or not run.separators_in(self._on_disk):
            raise StoreError(f"the store {self.path} changed on disk while mailesc held its lock; it was not "
                             f"written over")
        return done

    def installation_secret(self) -> bytes:
        """The secret that signs this installation's Message-IDs and markers: `<store>-secret` (signing.py)."""
        return installation_secret(self.path)

    def record_poll(self, at: datetime) -> None:
        """A successful poll, for `status` to tell a live daemon from a dead one (see write_heartbeat)."""
        if self.readonly:
            raise StoreError(f"the store {self.path} was opened read-only")
        write_heartbeat(self.path, at)

    def close(self) -> None:
        if self._on_disk is not None:
            self._on_disk.close()
            self._on_disk = None
        if self._lock:
            self._lock.close()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Summing:
    """A file handle that keeps the CRC-32 of what is written through it."""

    def __init__(self, handle):
        self.handle, self.crc = handle, 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        return self.handle.write(data)


class _Run:
    """Records that follow each other in the file on disk, copied as one block: [start, end) and, to be sure
    the block really is them, each separator between them (`,\n"id":`) with where it should be."""

    def __init__(self, start: int = 0, length: int = 0):
        self.start, self.end = start, start + length
        self.separators: list[tuple[int, bytes]] = []

    def extends(self, span: tuple[int, int], prefix: bytes) -> bool:
        """Take the next record if its text starts right after this run and the separator before it."""
        if self.end == self.start or span[0] != self.end + len(prefix):
            return False
        self.separators.append((self.end, prefix))
        self.end = span[0] + span[1]
        return True

    def separators_in(self, on_disk) -> bool:
        for at, prefix in self.separators:
            on_disk.seek(at)
            if on_disk.read(len(prefix)) != prefix:
                return False
        return True


_INDEX = object()  # the index's record, seen while loading (read before, by _find_index)
_INDEX_START = '{"name":"%s","mailbox":"","state":' % INDEX_RECORD


def _index_unread(text: str):
    """`read` for _documents_of at a load: every record is parsed but the index's (big, and read already)."""
    return _INDEX if text.startswith(_INDEX_START) else json.loads(text)


def _find_index(path: Path) -> dict | None:
    """The state of the index's record, found from the end of the file (the meta table is one of the last):
    None when there is none, or the file is not in mailesc's line layout (it is then read whole)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            tail, start = b"", size
            while True:
                start = max(0, start - (1 << 20))
                handle.seek(start)
                tail = handle.read(size - start if not tail else len(tail) + (1 << 20))[:size - start]
                at = tail.rfind(b'\n},"meta":{\n')
                if at >= 0 or start == 0:
                    break
    except OSError:
        return None
    if at < 0:
        return None
    for line in tail[at + 13:].split(b"\n"):
        if line.startswith(b"},"):
            return None  # the end of the meta table
        key, _, text = line.rstrip(b",").partition(b":")
        if text.startswith(_INDEX_START.encode()):
            try:
                return json.loads(text)["state"]
            except (ValueError, KeyError, TypeError):
                return None
    return None


class _Changed:
    """A record whose text is to be made at the next write: its (mailbox, name or id). (Not a tuple: a tuple
    in the texts is where a text is on disk.)"""

    __slots__ = ("key",)

    def __init__(self, key: tuple):
        self.key = key



class DryRunStore(Store):
    """--dry-run: the store as it is on disk, read without taking its lock (a running daemon may hold it);
    the cycle changes it in memory only, and nothing is ever written, archived or created."""

    def __init__(self, path: Path):
        super().__init__(path, readonly=True)

    def flush(self) -> None:
        pass

    def archive_threads(self, box: FileBox, threads: list[Thread]) -> None:
        pass

    def record_poll(self, at: datetime) -> None:
        pass  # a dry run is not the daemon: it beats no heartbeat

    def installation_secret(self) -> bytes:
        """The installation's secret; a dry run before the first start creates none (it creates nothing), so its
        Message-IDs, made with a throwaway secret, are not the ones the real first start will use."""
        if not secret_path(self.path).exists():
            return secrets.token_bytes(32)
        return installation_secret(self.path)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """A short exclusive lock beside `path`, waited for (for small files many processes write)."""
    with _open_lock_file(path) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _open_lock_file(path: Path):
    """The lock file beside `path` (`mailesc.json.lock`), opened for flock; its folder is made if missing."""
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(lock, "a")
    except OSError as error:
        raise StoreError(f"cannot open the lock file {lock}: {error.strerror}") from None


def _lock(path: Path):
    handle = _open_lock_file(path)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreBusy(f"another mailesc process is using {path}; stop it first, or try again when it is "
                        f"done") from None
    return handle


# -- heartbeat ----------------------------------------------------------------------------------------------------


def heartbeat_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.stem + "-heartbeat.json")


def write_heartbeat(store_path: Path, at: datetime) -> None:
    """Record the time of the last successful poll in a tiny file beside the store, replaced atomically at
    every poll. The store itself records a success at most every few minutes (a write rewrites the whole
    file); this file costs one small write, so `status` can tell a stopped daemon within one poll.

    The file data is fsynced before the rename, so a crash never leaves it empty; the folder is not (a
    power cut may bring back the previous beat, which only makes the daemon look older than it is)."""
    path = heartbeat_path(store_path)
    temp = path.with_name(f".{path.name}.tmp")  # one writer (the lock holder): a fixed name leaves no litter
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps({"last_poll_at": isoformat(at)}).encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as error:
        raise StoreError(f"cannot write the heartbeat file {path}: {error.strerror}") from None


def read_heartbeat(store_path: Path) -> tuple[datetime | None, str | None]:
    """(time of the last successful poll or None, why it could not be read or None). A damaged heartbeat is
    no loss (the next poll rewrites it), so it is reported as a problem, not refused like the store."""
    path = heartbeat_path(store_path)
    try:
        doc = json.loads(path.read_bytes())
        return parse_iso(doc["last_poll_at"]), None
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"cannot read the heartbeat file {path}: {error.strerror}"
    except (ValueError, KeyError, TypeError):
        return None, f"the heartbeat file {path} is damaged (the next successful poll replaces it)"


# -- archive ------------------------------------------------------------------------------------------------------


def archive_folder(store_path: Path) -> Path:
    return store_path.with_name(store_path.stem + "-archive")


def read_archive(store_path: Path, threads: bool = True) -> Iterator[tuple[Thread | None, list[Breach]]]:
    """Every archived thread with its breaches, the latest copy of each (a crash may have written two);
    with `threads=False`, None instead of each thread (quicker, for breach lists)."""
    latest: dict[tuple[str, str], tuple[dict, tuple[Path, str]]] = {}
    for path in sorted(archive_folder(store_path).glob("*.jsonl")):
        for doc, where in _documents(path):
            key = doc["thread"].get("mailbox", DEFAULT_MAILBOX), doc["thread"]["id"]
            latest.pop(key, None)  # re-insert: the dict keeps archive order, latest copy last
            latest[key] = doc, where
    for doc, where in latest.values():
        yield _archived(doc, where, threads)


@overload
def _archived(doc: dict, where: tuple[Path, str], threads: Literal[True] = True) -> tuple[Thread, list[Breach]]: ...
@overload
def _archived(doc: dict, where: tuple[Path, str], threads: bool) -> tuple[Thread | None, list[Breach]]: ...
def _archived(doc: dict, where: tuple[Path, str], threads: bool = True) -> tuple[Thread | None, list[Breach]]:
    try:
        return _thread_from(doc["thread"]) if threads else None, [_breach_from(b) for b in doc["breaches"]]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise StoreError(damaged("the archive file", *where, record_problem(error))) from None


def find_breach(store_path: Path, breach_id: int) -> tuple[Thread | None, Breach | None]:
    """One breach and its thread, live or archived, without building every record (for `breaches show`)."""
    db = TinyDB(str(store_path), storage=AtomicJSONStorage) if store_path.exists() else None
    doc = db.table("breaches").get(doc_id=breach_id) if db is not None else None
    if db is not None and doc is not None:
        try:
            mailbox = doc.get("mailbox", DEFAULT_MAILBOX)
            thread_doc = next((t for t in db.table("threads").all()
                               if t["id"] == doc["thread"] and t.get("mailbox", DEFAULT_MAILBOX) == mailbox), None)
            return (_thread_from(thread_doc) if thread_doc else None), _breach_from(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(damaged("the store", store_path, f"near breach {breach_id}",
                                     record_problem(error))) from None
    marker = f'"id":{breach_id},'
    found: tuple[Thread | None, Breach | None] = (None, None)
    for path in sorted(archive_folder(store_path).glob("*.jsonl")):
        for line_doc, where in _documents(path, marker):
            thread, breaches = _archived(line_doc, where)
            breach = next((b for b in breaches if b.id == breach_id), None)
            if breach is not None:
                found = thread, breach  # the latest copy wins
    return found


_CUT_RECORD = b'{"thread":'  # how every archive line starts: a line that does, but does not parse, was cut short


_Part = TypeVar("_Part")


@overload
def _documents(path: Path, marker: str | None = None) -> Iterator[tuple[dict, tuple[Path, str]]]: ...
@overload
def _documents(path: Path, marker: str | None = None, *,
               read: Callable[[str], _Part]) -> Iterator[tuple[dict | _Part, tuple[Path, str]]]: ...
def _documents(path: Path, marker: str | None = None,
               read: Callable[[str], object] | None = None) -> Iterator[tuple[object, tuple[Path, str]]]:
    """The records of an archive file, each with its place (the file, "line N"); with `marker`, only the lines
    holding it (parsed, the others skipped unread). A line cut short by a crash is skipped: its thread was
    still in the live store (which is only written after the archive line is safe), and is archived again
    later. Anything else that is not a record (an empty file, garbage, another shape) is refused.

    `read(text)` may stand in for parsing a whole line (it returns None when it cannot, and the line is then
    parsed and checked as usual)."""
    wanted = marker.encode("utf-8") if marker else None
    try:
        with open(path, "rb") as handle:
            empty = True
            for number, line in enumerate(handle, start=1):
                empty = False
                if wanted is not None and wanted not in line:
                    continue
                place = f"line {number}"
                if read is not None and (part := _read_part(read, line)) is not None:
                    yield part, (path, place)
                    continue
                try:
                    doc = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError:
                    raise StoreError(damaged("the archive file", path, place, "it is not UTF-8 text")) from None
                except json.JSONDecodeError as error:
                    if line.startswith(_CUT_RECORD) or _CUT_RECORD.startswith(line.rstrip(b"\n")):
                        continue  # cut short by a crash (see above)
                    raise StoreError(damaged("the archive file", path, place, f"not JSON ({error.msg})")) from None
                if not (isinstance(doc, dict) and isinstance(doc.get("thread"), dict) and "id" in doc["thread"]
                        and isinstance(doc.get("breaches"), list)):
                    raise StoreError(damaged("the archive file", path, place, "not an archived thread"))
                yield doc, (path, place)
    except OSError as error:
        raise StoreError(f"cannot read the archive file {path}: {error.strerror}; it was left untouched") from None
    if empty:
        raise StoreError(damaged("the archive file", path, "", "it is empty (0 bytes), but mailesc never writes "
                                                              "an empty archive file"))


def _read_part(read: Callable[[str], _Part], line: bytes) -> _Part | None:
    try:
        return read(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


_DECODER = json.JSONDecoder()
_ARCHIVE_LINE = '{"thread":{'


def _last_value(text: str, key: str, end: int | None = None) -> tuple[object, int]:
    """(the value of `key`, where it begins) when `key` is the last key of the object that closes at `end` (the
    end of `text`): mailesc writes the parts that lists and reports read last, so that they are read alone.
    Raises ValueError otherwise. (`,"key":` cannot occur inside a JSON string: its quote would be escaped.)"""
    end = len(text.rstrip()) if end is None else end
    at = text.rfind(f',"{key}":', 0, end)
    if at < 0:
        raise ValueError(key)
    value, stop = _DECODER.raw_decode(text, at + len(key) + 4)
    if text[stop:end] != "}":
        raise ValueError(key)
    return value, at


def _archived_breaches(text: str) -> list:
    """The breach documents of an archive line, without parsing its thread."""
    return _breaches_at(text)[0]


def _breaches_at(text: str) -> tuple[list, int]:
    """(the breach documents of an archive line, where they begin); ValueError when the line is not one or they
    are not a list (the line is then read whole, and refused, by _documents)."""
    if not text.startswith(_ARCHIVE_LINE):
        raise ValueError("not an archived thread")
    breaches, at = _last_value(text, "breaches")
    if not isinstance(breaches, list):
        raise ValueError("not an archived thread")
    return breaches, at


def _archived_facts(text: str) -> tuple[dict | None, list]:
    """(the report summary of an archive line's thread, its breach documents), without parsing the rest."""
    breaches, at = _breaches_at(text)
    facts, _ = _last_value(text, FACTS_KEY, at)
    return _summary(facts), breaches


def _facts_or_doc(text: str) -> tuple[Literal[True], dict | None] | tuple[Literal[False], object]:
    """(True, the report summary) of a thread document's text; (False, the whole document) for a thread written
    before the summary was kept (or whose summary is not one: the thread is then read for it)."""
    try:
        return True, _summary(_last_value(text, FACTS_KEY)[0])
    except ValueError:
        return False, json.loads(text)


def _summary(facts: object) -> dict | None:
    """A stored report summary (report_facts: a document, or None when no customer wrote); ValueError if it is
    neither."""
    if facts is not None and not isinstance(facts, dict):
        raise ValueError(FACTS_KEY)
    return facts


def breach_documents(store_path: Path) -> dict[int | str, tuple[object, str]]:
    """Every breach document on record, live and archived (the latest copy of each), by id, with where it was
    read: for breach lists, which read no thread (neither in the live file nor in archive lines). A document
    that has no number for an id is kept by where it was read, for reporting.queries.checked_breach to refuse."""
    found: dict[int | str, tuple[object, str]] = {}
    for path in sorted(archive_folder(store_path).glob("*.jsonl")):
        for part, (where, place) in _documents(path, read=_archived_breaches):
            breaches = part if isinstance(part, list) else part["breaches"]
            for doc in breaches:
                found[_breach_key(doc, f"{where} {place}")] = doc, f"{where} {place}"
    for _table, _doc_id, doc, place, _span in _documents_of(AtomicJSONStorage(str(store_path)), only="breaches"):
        found[_breach_key(doc, f"{store_path} {place}")] = doc, f"{store_path} {place}"
    return found


def _breach_key(doc: object, where: str) -> int | str:
    """A breach document's id, or where it was read when it has none (any JSON value could be there, even one
    that cannot be a dict key)."""
    breach_id = doc.get("id") if isinstance(doc, dict) else None
    return breach_id if isinstance(breach_id, int) else where


def report_documents(store_path: Path) -> Iterator[tuple[dict | Thread | None, bool, str]]:
    """For `report`: (each thread's report summary, True, where) or, for a thread written before summaries were
    kept, (the Thread, False, where); archived ones first, the latest copy of each thread, then the live ones
    (which win). The breaches come from breach_documents."""
    archived: dict[tuple, tuple[dict | Thread | None, bool, str]] = {}
    for path in sorted(archive_folder(store_path).glob("*.jsonl")):
        for part, (where, place) in _documents(path, read=_archived_facts):
            if isinstance(part, tuple):
                facts = part[0]
                key = (facts.get("mailbox", DEFAULT_MAILBOX), facts.get("thread")) if facts is not None else \
                    (None, f"{where} {place}")  # no customer: not counted
                item: tuple[dict | Thread | None, bool, str] = facts, True, f"{where} {place}"
            else:
                thread = _archived(part, (where, place))[0]
                key, item = (thread.mailbox, thread.id), (thread, False, f"{where} {place}")
            archived.pop(key, None)
            archived[key] = item
    live: list[tuple[dict | Thread | None, bool, str]] = []
    threads = _documents_of(AtomicJSONStorage(str(store_path)), only="threads", read=_facts_or_doc)
    for _table, _doc_id, read, place, _span in threads:
        at = f"{store_path} {place}"
        if read[0]:
            doc = read[1]
            live.append((doc, True, at))
            key = (doc.get("mailbox", DEFAULT_MAILBOX), doc.get("thread")) if doc is not None else (None, at)
        else:
            try:
                if not isinstance(read[1], dict):
                    raise TypeError("not a thread")
                thread = _thread_from(read[1])
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise StoreError(damaged("the store", store_path, place, record_problem(error))) from None
            live.append((thread, False, at))
            key = thread.mailbox, thread.id
        archived.pop(key, None)
    yield from archived.values()
    yield from live


def _append_lines(path: Path, lines: list[str]) -> None:
    """Append to this month's archive file; a new file is written whole and renamed into place, so an
    archive file is never empty (an empty one is damage, and refused)."""
    data = ("\n".join(lines) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            AtomicJSONStorage(str(path)).write_with(lambda handle: handle.write(data.decode("utf-8")))
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            if os.fstat(fd).st_size and not _ends_with_newline(path):
                os.write(fd, b"\n")  # a crash cut the last line short: start afresh after it
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        raise StoreError(f"cannot write the archive file {path}: {error.strerror}") from None
    _fsync_folder(path.parent)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _month(thread: Thread) -> str:
    last = max((m.arrived for m in thread.messages), default=None)
    return last.strftime("%Y-%m") if last else "undated"


# -- records <-> JSON documents -----------------------------------------------------------------------------------


TABLES = ("threads", "breaches", "sync", "health", "meta", "quarantine", "outgoing")
_TABLE_LINE = re.compile(r'(?:\{|\},)"(\w+)":\{')


@overload
def _documents_of(storage: AtomicJSONStorage, only: str | None = None
                  ) -> Iterator[tuple[str, int, dict, str, tuple[int, int] | None]]: ...
@overload
def _documents_of(storage: AtomicJSONStorage, only: str | None = None, *, read: Callable[[str], _Part],
                  skip: Region | None = None) -> Iterator[tuple[str, int, _Part, str, tuple[int, int] | None]]: ...
def _documents_of(storage: AtomicJSONStorage, only: str | None = None, read: Callable[[str], object] = json.loads,
                  skip: Region | None = None) -> Iterator[tuple[str, int, object, str, tuple[int, int] | None]]:
    """(table, document id, document, where it is, (offset, length) of its text in the file) of every record.
    A file mailesc wrote has one document a line and is parsed a line at a time, so the whole parsed file never
    sits in memory; any other (TinyDB's own single line, an older mailesc) is parsed whole, and its records
    have no offsets. Whatever is not such a file is refused (see damaged()).

    With `only`, the records of that table alone: the other lines are not even parsed (a breach list skips
    the threads). `read` turns a document's text into what is yielded (json.loads: the document). `skip`: the
    threads table's records, not read at all (their bytes were checked against the store's index)."""
    try:
        handle = open(storage.path, "rb")
    except FileNotFoundError:
        return
    except OSError as error:
        raise StoreError(f"cannot read the store {storage.path}: {error.strerror}; it was left untouched") from None
    with handle:
        try:
            first = _table_header(handle.readline())
            if first is None:
                for table, documents in (storage.read() or {}).items():
                    while documents and (only is None or table == only):
                        doc_id, doc = documents.popitem()
                        yield table, int(doc_id), doc if read is json.loads else read(_text(doc)), \
                            f"in record {doc_id} of table {table!r}", None
                return
            table, complete = first, False
            skipping = only is not None and table != only
            start, skipped = handle.tell(), 0
            if skip is not None and table == "threads" and start == skip.start + 1:
                start = handle.seek(skip.end + 1)  # past the last record's line end: the next table's header
                skipped = skip.lines
            for number, raw in enumerate(handle, start=2 + skipped):
                line_start, start = start, start + len(raw)
                record = raw[:1] == b'"' and not complete  # `"17":{...},`; headers and the end start otherwise
                if record and skipping and _looks_whole(raw):
                    continue  # a record of a table not wanted: checked for its shape and UTF-8, not parsed
                where = f"at line {number}"
                try:
                    line = raw.decode("utf-8").rstrip("\n")
                except UnicodeDecodeError:
                    raise StoreError(damaged("the store", storage.path, where, "it is not UTF-8 text")) from None
                if complete:
                    if line.strip():
                        raise StoreError(damaged("the store", storage.path, where, "there is more after its end"))
                    continue
                if record:
                    key, _, text = line.rstrip(",").partition(":")
                    try:
                        doc = read(text)
                    except json.JSONDecodeError as error:
                        raise StoreError(damaged("the store", storage.path, where, f"not JSON ({error.msg})")) from None
                    if not (len(key) > 2 and key[-1] == '"' and key[1:-1].isdigit()) or (
                            read is json.loads and not isinstance(doc, dict)):
                        raise StoreError(damaged("the store", storage.path, where, "not a numbered record"))
                    head = len(key) + 1  # the document id is digits in quotes: the first colon ends it
                    body = len(raw.rstrip(b"\n").rstrip(b","))
                    yield table, int(key[1:-1]), doc, where, (line_start + head, body - head)
                elif header := _TABLE_LINE.fullmatch(line):
                    table = header.group(1)
                    skipping = only is not None and table != only
                elif line == "}}":
                    complete = True
                else:
                    raise StoreError(damaged("the store", storage.path, where, "not a numbered record"))
        except OSError as error:
            raise StoreError(f"cannot read the store {storage.path}: {error.strerror}; it was left untouched") from None
        if not complete:
            raise StoreError(damaged("the store", storage.path, "at its end", "it ends too early (cut short?)"))


def _looks_whole(raw: bytes) -> bool:
    """A record line of a table being skipped: whole (`"17":{...}` and a comma or the end) and UTF-8 text; any
    other line is read in full, which says what is wrong with it."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return raw.endswith((b"},\n", b"}\n")) and b'":{' in raw[:24]


def _table_header(line: bytes) -> str | None:
    """The table a line of mailesc's layout opens, or None when the file is in another layout."""
    try:
        header = _TABLE_LINE.fullmatch(line.decode("utf-8").rstrip("\n"))
    except UnicodeDecodeError:
        return None  # the whole-file reader says where
    return header.group(1) if header else None


def parse_tables(data: bytes, path: Path, what: str = "the store") -> dict:
    """A whole file in TinyDB's layout, {"table": {"document id": {document}}}, checked for that shape."""
    if not data.strip():
        emptiness = "it is empty (0 bytes)" if not data else f"it holds only blank space ({len(data)} bytes)"
        raise StoreError(damaged(what, path, "", f"{emptiness}, but mailesc never writes an empty file (a new one "
                                                f"is made only where there is none)"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StoreError(damaged(what, path, f"at byte {error.start}", "it is not UTF-8 text")) from None
    try:
        tables = json.loads(text)
    except json.JSONDecodeError as error:
        raise StoreError(damaged(what, path, f"at line {error.lineno}, column {error.colno}",
                                 f"not JSON ({error.msg})")) from None
    except RecursionError:
        raise StoreError(damaged(what, path, "", "not JSON (nested too deeply)")) from None
    if not isinstance(tables, dict):
        raise StoreError(damaged(what, path, "at the top", f"a JSON object of tables was expected, not "
                                                           f"{_json_kind(tables)}"))
    for name, documents in tables.items():
        if not isinstance(documents, dict):
            raise StoreError(damaged(what, path, _table_place(name), f"an object of records was expected, not "
                                                                     f"{_json_kind(documents)}"))
        for doc_id, doc in documents.items():
            if not doc_id.isdigit() or not isinstance(doc, dict):
                raise StoreError(damaged(what, path, _table_place(name), "a record is not a numbered object"))
    return tables


def damaged(what: str, path: Path, where: str, problem: str) -> str:
    """Why a file is refused: which file, where in it, what is wrong, never what it holds (customer names,
    subjects and addresses must not reach a terminal or the journal)."""
    return (f"{what} {path} is damaged{' ' + where if where else ''}: {problem}; it was left untouched. "
            f"Restore it from a backup or move it aside to start afresh.")


def record_problem(error: Exception) -> str:
    """What is wrong with a record, said without its values (exception texts quote them)."""
    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str) and error.args[0].isidentifier():
        return f"a record lacks the field {error.args[0]!r}"  # a name from mailesc's own code, not from the file
    return "a record has a field mailesc cannot read (missing, or of the wrong type or form)"


def _table_place(name: str) -> str:
    return f"in table {name!r}" if name in TABLES or name == "reviews" else "in a table mailesc does not know"


def _json_kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(
        type(value), "a number")


def _text(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _named_doc(key: tuple[str, str], state: dict) -> dict:
    mailbox, name = key
    return {"name": name, "state": state} if mailbox == DEFAULT_MAILBOX else {"name": name, "mailbox": mailbox,
                                                                               "state": state}


def _plain(values: dict) -> dict:
    """A copy fit for JSON: times as ISO 8601 text, enums as their values."""
    return {k: isoformat(v) if isinstance(v, datetime) else str(v) if isinstance(v, StrEnum) else v
            for k, v in values.items()}


def _time(text: str | None) -> datetime | None:
    return _stored_time(text) if text else None


def _stored_time(text: str) -> datetime:
    """A time mailesc wrote itself (ISO 8601 with offset): the fast path of parse_iso, for big stores."""
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else parse_iso(text)


def _thread_doc(thread: Thread) -> dict:
    """Built field by field: dataclasses.asdict deep-copies every value and was the slowest part of a flush."""
    doc = _plain(vars(thread))
    doc["ids"] = sorted(thread.ids)
    doc["breach_ids"] = dict(thread.breach_ids)
    doc["messages"] = [_plain({name: getattr(m, name) for name in _MESSAGE_FIELDS}) for m in thread.messages]
    doc["notices"] = [_notice_doc(n) for n in thread.notices]
    if thread.clock_error is None:
        del doc["clock_error"]  # written only when there is one: most threads never have it
    if thread.mailbox == DEFAULT_MAILBOX:
        del doc["mailbox"]  # a single-mailbox store stays as it was
    del doc["response_hours"]  # kept in the report summary
    doc[FACTS_KEY] = report_facts(thread)  # always the last key: reports read it without parsing the rest
    return doc


FACTS_KEY = "report"


def report_facts(thread: Thread) -> dict | None:
    """The summary of a thread that `report` reads (reporting.queries.ThreadFacts), written with the thread so
    that a report over 100k threads parses neither their messages nor runs a calendar per thread; None: no
    customer wrote (not counted)."""
    first = thread.first_customer_message()
    if first is None:
        return None
    reply = thread.first_response_after(first.arrived)
    facts = {"thread": thread.id, "received": isoformat(first.arrived), "customer": first.sender,
             "policy": thread.policy, "breach": thread.breach_ids.get(0),
             "responded": isoformat(reply.arrived) if reply else None,
             "hours": thread.response_hours if reply else None}
    if thread.mailbox != DEFAULT_MAILBOX:
        facts["mailbox"] = thread.mailbox
    return facts


_MESSAGE_FIELDS = tuple(f.name for f in fields(ThreadMessage))
_SHARED = ("folder", "sender", "name", "subject")  # repeated from message to message: one copy each


def _thread_from(doc: dict) -> Thread:
    messages = [ThreadMessage(**{**m, **{k: intern(m[k]) for k in _SHARED if k in m}, "kind": Kind(m["kind"]),
                                 "message_id": intern(m["message_id"]), "arrived": _stored_time(m["arrived"])})
                for m in doc["messages"]]
    notices = [_mail_from(n, n["kind"], parse_iso(n["at"])) for n in doc.get("notices", [])]
    return Thread(id=intern(doc["id"]), subject=doc["subject"], ids={intern(i) for i in doc["ids"]}, messages=messages,
                  policy=doc.get("policy"), due_at=_time(doc.get("due_at")),
                  breach_ids={int(clock): breach for clock, breach in doc.get("breach_ids", {}).items()},
                  notices=notices, clock_error=doc.get("clock_error"), mailbox=doc.get("mailbox", DEFAULT_MAILBOX),
                  response_hours=(doc.get(FACTS_KEY) or {}).get("hours"))


def _breach_doc(breach: Breach) -> dict:
    """Built from the fields as they are (no deep copy: dataclasses.asdict copied every escalation record only
    for it to be replaced below, half of a replay's flush); tests/unit/test_store_docs.py holds it to asdict."""
    doc = _plain(vars(breach))
    doc["escalations"] = [_escalation_doc(e) for e in breach.escalations]
    if breach.notifications:
        doc["notifications"] = [_notification_doc(n) for n in breach.notifications]
    else:
        del doc["notifications"]  # written only once a level posted: the format stays what it was
    if breach.mailbox == DEFAULT_MAILBOX:
        del doc["mailbox"]
    return doc


_BREACH_FIELDS = frozenset(f.name for f in fields(Breach))


def _breach_from(doc: dict) -> Breach:
    escalations = [_mail_from(e, MailKind.ESCALATION.value, _stored_time(e["at"])) for e in doc["escalations"]]
    notifications = [_mail_from(n, n["kind"], _stored_time(n["at"])) for n in doc.get("notifications", ())]
    values = {k: v for k, v in doc.items() if k in _BREACH_FIELDS}
    return Breach(**{**values, "status": Status(doc["status"]), "received_at": _stored_time(doc["received_at"]),
                     "due_at": _stored_time(doc["due_at"]), "responded_at": _time(doc.get("responded_at")),
                     "acknowledged_at": _time(doc.get("acknowledged_at")),
                     "escalations": escalations, "notifications": notifications})


# A queued mail is written with the keys its kind always had, so that the format stays what it was: an
# escalation (in its breach's `escalations`) without `kind`, `resent` only once `breaches resend` was used; a
# warning or acknowledgement (in its thread's `notices`) with `kind` and without `level`, `digest`, `resent`.
_ESCALATION_KEYS = ("level", "at", "to", "message_id", "template", "delivery", "sent_at", "error", "attempts",
                    "retry_at", "digest", "resent")
_NOTIFICATION_KEYS = ("kind", "level", "at", "to", "message_id", "template", "delivery", "sent_at", "error",
                      "attempts", "retry_at", "resent")  # a level's webhook post, in its breach's `notifications`
_NOTICE_KEYS = ("kind", "at", "to", "message_id", "template", "delivery", "sent_at", "error", "attempts", "retry_at")
_OUTGOING_KEYS = ("kind", "message_id", "to", "at", "template", "delivery", "sent_at", "error", "attempts",
                  "retry_at", "covers", "resent", "day")
_MAIL_FIELDS = frozenset(f.name for f in fields(QueuedMail))


def _mail_doc(mail: QueuedMail, keys: tuple[str, ...]) -> dict:
    doc = {key: getattr(mail, key) for key in keys}
    doc["to"] = list(mail.to)
    if "covers" in doc:
        doc["covers"] = list(mail.covers)
    if "resent" in doc:
        doc["resent"] = [dict(entry) for entry in mail.resent]
        if not doc["resent"]:
            del doc["resent"]  # written only once `breaches resend` was used
    return _plain(doc)


def _escalation_doc(mail: QueuedMail) -> dict:
    return _mail_doc(mail, _ESCALATION_KEYS)


def _notification_doc(mail: QueuedMail) -> dict:
    return _mail_doc(mail, _NOTIFICATION_KEYS)


def _notice_doc(mail: QueuedMail) -> dict:
    return _mail_doc(mail, _NOTICE_KEYS)


def _outgoing_doc(mail: QueuedMail) -> dict:
    """A mail of no single thread (a storm-control or daily digest) in the box's `outgoing` table."""
    return _mail_doc(mail, _OUTGOING_KEYS)


def _outgoing_from(doc: dict) -> QueuedMail:
    return _mail_from(doc, doc["kind"], _stored_time(doc["at"]))


def _mailbox_doc(mailbox: str, doc: dict) -> dict:
    """A document of a box's own table, with its mailbox named unless it is the default one."""
    return doc if mailbox == DEFAULT_MAILBOX else {**doc, "mailbox": mailbox}


def _mail_from(doc: dict, kind: str, at: datetime) -> QueuedMail:
    values = {key: value for key, value in doc.items() if key in _MAIL_FIELDS}
    return QueuedMail(**{**values, "kind": kind, "at": at, "sent_at": _time(doc.get("sent_at")),
                         "retry_at": _time(doc.get("retry_at")), "delivery": Delivery(doc["delivery"])})


def _quarantined_doc(item: Quarantined) -> dict:
    doc = _plain(asdict(item))
    if item.mailbox == DEFAULT_MAILBOX:
        del doc["mailbox"]
    return doc


def _quarantined_from(doc: dict) -> Quarantined:
    return Quarantined(key=doc["key"], folder=doc["folder"], reason=doc["reason"], at=parse_iso(doc["at"]),
                       arrived=_time(doc.get("arrived")), retry=bool(doc.get("retry", False)),
                       mailbox=doc.get("mailbox", DEFAULT_MAILBOX))
