"""The one door of admin commands to the records, whichever store the config names.

Apart from app.py so that the commands that only read records (`breaches list`, `breaches show`) do not load
the engine, the sources and the transports that app.py wires (tests/cli/test_startup_imports.py pins it);
app.py re-exports both names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mailesc.store import Store

if TYPE_CHECKING:
    from mailesc.config import Config
    from mailesc.model import Breach, Thread
    from mailesc.reviews import Reviews
    from mailesc.stores.postgres import PostgresStore


def store_path(config: Config, replay: bool = False) -> Path:
    return config.replay_store_path if replay else config.store_path


def open_records(config: Config, replay: bool = False, *, threads: bool = True,
                 live: bool = True) -> Store | PostgresStore:
    """The one door of admin commands to the records, whichever store the config names: the PostgreSQL database
    of `[store] url` (workers may be running: everything is read in transactions, never locked), else the file
    store (read without its lock: the daemon may be running; its writes are atomic renames). A replay's store is
    always a file. Both give `history(threads)`, `select_breaches(...)`, `count_report(policies, ...)`,
    `find_breach(id)`, `reviews()`, `record_review(entry)`, `mailboxes()`, `box(name)`, `installation` and
    `last_polls()`; close it (a context manager). For the file store, `threads=False` skips reading the threads
    and `live=False` reads no live record at open (for commands that find their own, like `breaches show`)."""
    if config.store.url and not replay:
        from mailesc.stores.postgres import PostgresStore

        return PostgresStore.from_config(config.store)
    return Store(store_path(config, replay), readonly=True, threads=threads, live=live)


def breach(config: Config, breach_id: int, replay: bool = False) -> tuple[Thread | None, Breach, Reviews] | None:
    """`breaches show`: one breach (live or archived), its thread and its reviews; None when there is none."""
    with open_records(config, replay, live=False) as records:
        thread, found = records.find_breach(breach_id)
        if found is None:
            return None
        return thread, found, records.reviews(of=[breach_id])
