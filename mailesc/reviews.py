"""Root-cause reviews of breaches: an append-only history per breach (who, when, what), never overwritten.

Reviews live in their own small file beside the store, so an admin can record a cause while the daemon
runs: the daemon holds the store's lock for its whole life but never writes reviews."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable, Protocol

from tinydb import TinyDB

from mailesc.clock import isoformat, parse_iso
from mailesc.errors import StoreError, UsageError
from mailesc.store import AtomicJSONStorage, damaged, file_lock, record_problem

REVIEWED, REOPENED, UNREVIEWED = "reviewed", "reopened", "unreviewed"


class Reviewable(Protocol):
    """What a review's due date is counted from: a breach object or a breach as stored (StoredBreach)."""

    @property
    def id(self) -> int: ...

    @property
    def due_at(self) -> datetime: ...
REVIEW_FILE = "the review file"


@dataclass(frozen=True)
class ReviewEntry:
    breach: int
    at: datetime
    by: str
    action: str  # "review" (a cause recorded or changed) or "reopen" (the cause no longer stands)
    cause: str | None = None
    note: str | None = None

    def as_json(self) -> dict:
        """Built field by field: dataclasses.asdict deep-copies and was most of a long list's review summaries."""
        return {"breach": self.breach, "at": isoformat(self.at), "by": self.by, "action": self.action,
                "cause": self.cause, "note": self.note}


def reviews_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.stem + "-reviews" + store_path.suffix)


class Reviews:
    """Every review entry, by breach, oldest first."""

    def __init__(self, entries: Iterable[ReviewEntry] = ()):
        self._by_breach: dict[int, list[ReviewEntry]] = {}
        self.extend(entries)

    @classmethod
    def load(cls, store_path: Path) -> "Reviews":
        path = reviews_path(store_path)
        if not path.exists():
            return cls()
        tables = AtomicJSONStorage(str(path), what=REVIEW_FILE).read() or {}  # TinyDB's layout, checked
        entries = []
        for doc_id, doc in tables.get("reviews", {}).items():  # in insertion order, as TinyDB lists them
            try:
                entries.append(_entry_from(doc))
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise StoreError(damaged(REVIEW_FILE, path, f"in review record {doc_id}",
                                         record_problem(error))) from None
        return cls(entries)

    def extend(self, entries) -> None:
        """More entries, oldest first (a streamed breach list adds each batch's reviews as it goes)."""
        for entry in entries:
            self._by_breach.setdefault(entry.breach, []).append(entry)

    def entries(self) -> list[ReviewEntry]:
        """Every entry, each breach's in their order (for `store copy`)."""
        return [entry for history in self._by_breach.values() for entry in history]

    def history(self, breach_id: int) -> list[ReviewEntry]:
        return list(self._by_breach.get(breach_id, []))

    def current(self, breach_id: int) -> ReviewEntry | None:
        """The entry that stands: the latest, unless it is a reopening."""
        history = self._by_breach.get(breach_id)
        return history[-1] if history and history[-1].action == "review" else None

    def standing(self, breach_id: int) -> tuple[str, ReviewEntry | None]:
        """(state, the entry that stands) in one look-up: what each row of a long breach list reads."""
        history = self._by_breach.get(breach_id)
        if not history:
            return UNREVIEWED, None
        last = history[-1]
        return (REVIEWED, last) if last.action == "review" else (REOPENED, None)

    def state(self, breach_id: int) -> str:
        history = self._by_breach.get(breach_id)
        if not history:
            return UNREVIEWED
        return REVIEWED if history[-1].action == "review" else REOPENED

    def overdue(self, breach: Reviewable, now: datetime, period: timedelta) -> bool:
        """Still without a cause, longer than the review period after its deadline."""
        return self.current(breach.id) is None and now - breach.due_at > period

    def summary(self, breach: Reviewable, now: datetime, period: timedelta) -> dict:
        """The review as `breaches list/show --json` print it (`breach`: a Breach or a StoredBreach)."""
        entries = self._by_breach.get(breach.id, ())
        current = entries[-1] if entries and entries[-1].action == "review" else None
        due = breach.due_at
        return {"state": REVIEWED if current else REOPENED if entries else UNREVIEWED,
                "cause": current and current.cause, "note": current and current.note,
                "by": current and current.by, "at": isoformat(current.at) if current else None,
                "due_at": isoformat(due + period), "overdue": current is None and now - due > period,
                "history": [entry.as_json() for entry in entries]}


def record_review(store_path: Path, entry: ReviewEntry, causes: tuple[str, ...] | None = None) -> ReviewEntry:
    """Append `entry` to the review file (under its own short lock); a cause must be one of `causes` (None: the
    caller checked it with check_cause, as app.review does for both stores)."""
    if causes is not None:
        check_cause(entry, causes)
    path = reviews_path(store_path)
    with file_lock(path):
        Reviews.load(store_path)  # every entry must be readable: a damaged file is refused, never rewritten
        db = TinyDB(str(path), storage=AtomicJSONStorage, what=REVIEW_FILE)
        db.table("reviews").insert({**entry.as_json()})
    return entry


def check_cause(entry: ReviewEntry, causes: tuple[str, ...]) -> None:
    """A review must name one of the configured causes (whichever store records it)."""
    if entry.action == "review" and entry.cause not in causes:
        raise UsageError(f"unknown cause {entry.cause!r}; the causes are: {', '.join(causes)} "
                         f"(configure them in [review] causes)")


def _entry_from(doc: dict) -> ReviewEntry:
    return ReviewEntry(breach=int(doc["breach"]), at=_time(doc["at"]), by=doc["by"], action=doc["action"],
                       cause=doc.get("cause"), note=doc.get("note"))


def _time(text: str) -> datetime:
    """A time mailesc wrote (with its offset): fromisoformat at once; anything else the careful way."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return parse_iso(text)
    return when if when.tzinfo is not None else parse_iso(text)
