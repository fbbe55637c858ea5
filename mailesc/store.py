"""The embedded store: TinyDB in one JSON file, written atomically, once per cycle, under a file lock.

The whole live state is held in memory while mailesc runs; `flush()` writes what changed in one batch
(TinyDB rewrites its whole file on every write, so writing per message would be slow)."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import MutableMapping
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path

from tinydb import TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage
from tinydb.table import Document

from mailesc.clock import isoformat, parse_iso
from mailesc.errors import StoreError
from mailesc.model import (Breach, Delivery, EscalationRecord, Kind, Notice, Quarantined, Status, Thread,
                           ThreadMessage)


class AtomicJSONStorage(Storage):
    """TinyDB storage that never leaves a half-written file: temp file, fsync, rename; mode 0600."""

    def __init__(self, path: str):
        self.path = Path(path)

    def read(self):
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read the store {self.path}: {error.strerror}") from None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise StoreError(f"the store {self.path} is damaged ({error}); it was left untouched. "
                             f"Restore it from a backup or move it aside to start afresh.") from None

    def write(self, data) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False, separators=(",", ":"))
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


class NamedRecords(MutableMapping):
    """A table of small documents by name, written at the next flush when set: each source's bookmarks
    per folder (UIDVALIDITY and last UID, or seen Maildir keys), and the daemon's health."""

    def __init__(self, store: "Store", table: str):
        self.store, self.table, self.data = store, table, {}

    def __getitem__(self, name: str) -> dict:
        return self.data[name]

    def __setitem__(self, name: str, state: dict) -> None:
        self.data[name] = state
        self.store.mark_dirty(self.table, name)

    def __delitem__(self, name: str) -> None:
        raise StoreError(f"{self.table} records are replaced, never deleted")

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class _BatchingMiddleware(CachingMiddleware):
    WRITE_CACHE_SIZE = 1 << 62  # never write on its own: Store.flush() decides when


class Store:
    """A small repository API over TinyDB: threads, breaches, sync bookmarks, health, quarantine."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = None if readonly else _lock(self.path)
        if not readonly:
            self._remove_stale_temp_files()
        self._db = TinyDB(str(self.path), storage=_BatchingMiddleware(AtomicJSONStorage))
        self.threads: dict[str, Thread] = {}
        self.breaches: dict[int, Breach] = {}
        self.sync = NamedRecords(self, "sync")
        self.health = NamedRecords(self, "health")
        self.quarantine: dict[str, Quarantined] = {}
        tables = ("threads", "breaches", "sync", "health", "quarantine")
        self._doc_ids: dict[str, dict] = {table: {} for table in tables}
        self._dirty: dict[str, set] = {table: set() for table in tables}
        try:
            self._load()
        except StoreError:
            self.close()
            raise

    def _remove_stale_temp_files(self) -> None:
        """A write cut short by a crash leaves its temp file behind; with the lock held, none is in use."""
        for temp in self.path.parent.glob(f".{self.path.name}.*"):
            temp.unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            for doc in self._db.table("threads").all():
                self.threads[doc["id"]] = _thread_from(doc)
                self._doc_ids["threads"][doc["id"]] = doc.doc_id
            for doc in self._db.table("breaches").all():
                self.breaches[doc.doc_id] = _breach_from(doc)
                self._doc_ids["breaches"][doc.doc_id] = doc.doc_id
            for records in (self.sync, self.health):
                for doc in self._db.table(records.table).all():
                    records.data[doc["name"]] = doc["state"]
                    self._doc_ids[records.table][doc["name"]] = doc.doc_id
            for doc in self._db.table("quarantine").all():
                self.quarantine[doc["key"]] = _quarantined_from(doc)
                self._doc_ids["quarantine"][doc["key"]] = doc.doc_id
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(f"the store {self.path} has a record mailesc cannot read ({error!r}); "
                             f"it was left untouched") from None

    # -- changing -----------------------------------------------------------------------------------------------

    def put_thread(self, thread: Thread) -> None:
        self.threads[thread.id] = thread
        self._dirty["threads"].add(thread.id)

    def new_breach(self, **values) -> Breach:
        breach = Breach(id=max(self.breaches, default=0) + 1, **values)
        self.put_breach(breach)
        return breach

    def put_breach(self, breach: Breach) -> None:
        self.breaches[breach.id] = breach
        self._dirty["breaches"].add(breach.id)

    def mark_dirty(self, table: str, name: str) -> None:
        self._dirty[table].add(name)

    def put_quarantined(self, item: Quarantined) -> None:
        self.quarantine[item.key] = item
        self._dirty["quarantine"].add(item.key)

    def flush(self) -> None:
        """Write every change since the last flush in one atomic file write."""
        if self.readonly:
            raise StoreError(f"the store {self.path} was opened read-only")
        if not any(self._dirty.values()):
            return
        self._write("threads", {k: _thread_doc(self.threads[k]) for k in self._dirty["threads"]})
        for records in (self.sync, self.health):
            self._write(records.table, {k: {"name": k, "state": records[k]} for k in self._dirty[records.table]})
        self._write("quarantine", {k: _plain(asdict(self.quarantine[k])) for k in self._dirty["quarantine"]})
        self._write("breaches", {k: _breach_doc(self.breaches[k]) for k in self._dirty["breaches"]})
        try:
            self._db.storage.flush()
        except OSError as error:
            raise StoreError(f"cannot write the store {self.path}: {error.strerror}") from None
        for keys in self._dirty.values():
            keys.clear()

    def _write(self, name: str, docs: dict) -> None:
        """Replace the documents of `name` keyed by `docs`' keys: one pass over the table, however many.

        Breaches keep their id as TinyDB document id; other records get the next free one."""
        if not docs:
            return
        table, ids = self._db.table(name), self._doc_ids[name]
        table.remove(doc_ids=[ids[k] for k in docs if k in ids])
        next_id = max(ids.values(), default=0) + 1
        for key in docs:
            if key not in ids:
                ids[key] = key if name == "breaches" else next_id
                next_id = max(next_id, ids[key]) + 1
        table.insert_multiple(Document(doc, doc_id=ids[key]) for key, doc in docs.items())

    def close(self) -> None:
        self._db.close() if not self.readonly else None
        if self._lock:
            self._lock.close()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path.with_name(path.name + ".lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreError(f"another mailesc process is using {path}; stop it first") from None
    return handle


# -- records <-> JSON documents -----------------------------------------------------------------------------------


def _plain(values: dict) -> dict:
    return {k: isoformat(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _time(text: str | None) -> datetime | None:
    return parse_iso(text) if text else None


def _thread_doc(thread: Thread) -> dict:
    doc = _plain(asdict(thread))
    doc["ids"] = sorted(thread.ids)
    doc["messages"] = [_plain(asdict(m)) for m in thread.messages]
    doc["notices"] = [_plain(asdict(n)) for n in thread.notices]
    return doc


def _thread_from(doc: dict) -> Thread:
    messages = [ThreadMessage(**{**m, "kind": Kind(m["kind"]), "arrived": parse_iso(m["arrived"])})
                for m in doc["messages"]]
    notices = [Notice(**{**n, "at": parse_iso(n["at"]), "sent_at": _time(n.get("sent_at")),
                         "retry_at": _time(n.get("retry_at")), "delivery": Delivery(n["delivery"])})
               for n in doc.get("notices", [])]
    return Thread(id=doc["id"], subject=doc["subject"], ids=set(doc["ids"]), messages=messages,
                  policy=doc.get("policy"), due_at=_time(doc.get("due_at")),
                  breach_ids={int(clock): breach for clock, breach in doc.get("breach_ids", {}).items()},
                  notices=notices)


def _breach_doc(breach: Breach) -> dict:
    doc = _plain(asdict(breach))
    doc["escalations"] = [_plain(asdict(e)) for e in breach.escalations]
    return doc


def _breach_from(doc: dict) -> Breach:
    escalations = [EscalationRecord(**{**e, "at": parse_iso(e["at"]), "sent_at": _time(e.get("sent_at")),
                                       "retry_at": _time(e.get("retry_at")), "delivery": Delivery(e["delivery"])})
                   for e in doc["escalations"]]
    names = {f.name for f in fields(Breach)}
    values = {k: v for k, v in doc.items() if k in names}
    return Breach(**{**values, "status": Status(doc["status"]), "received_at": parse_iso(doc["received_at"]),
                     "due_at": parse_iso(doc["due_at"]), "responded_at": _time(doc.get("responded_at")),
                     "acknowledged_at": _time(doc.get("acknowledged_at")),
                     "escalations": escalations})


def _quarantined_from(doc: dict) -> Quarantined:
    return Quarantined(key=doc["key"], folder=doc["folder"], reason=doc["reason"], at=parse_iso(doc["at"]))
