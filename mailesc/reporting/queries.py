"""What `breaches list` and `report` select, and the light rows they read, the same for both stores.

A list or a report over 100k breaches must not build 100k `Breach` and `Thread` objects: both stores hand over
the stored JSON documents instead (`StoredBreach`), and for a report each thread's small summary
(`ThreadFacts`, which the store writes beside the thread, see store.report_facts), parsing a time only where
it is compared or computed with. The filters (`BreachFilter`) are the same tests on either store (PostgreSQL
runs them as SQL: stores/postgres.py, `_breach_conditions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from mailesc.errors import StoreError
from mailesc.model import DEFAULT_MAILBOX, Breach, Status, Thread
from mailesc.reviews import Reviews

STATUSES = tuple(str(status) for status in Status)


def stored_time(text: str | None, what: str = "a breach") -> datetime | None:
    """A time mailesc wrote (ISO 8601 with offset); a record that holds something else is damage."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise StoreError(f"the store is damaged: {what} has a time mailesc cannot read; it was left untouched. "
                         f"Restore it from a backup")
    return when


def required_time(text: str | None, what: str) -> datetime:
    """A time a record must have (stored_time; none at all is damage too)."""
    return stored_time(text, what) or _damaged_time(what)


class StoredBreach:
    """A breach as both stores keep it: its JSON document (store._breach_doc's shape), read on demand. Texts are
    printed as stored; a time is parsed only when a row computes with it (and then once). Built 100k times for
    a long list: the id and the deadline (every row compares or computes with it) are read at once, nothing
    else is copied."""

    __slots__ = ("doc", "id", "due_at", "_times")

    REQUIRED = frozenset(("id", "thread", "customer", "subject", "policy", "received_at", "due_at", "status",
                          "escalations"))

    def __init__(self, doc: dict):
        self.doc: dict = doc
        self.id: int = doc["id"]
        try:
            due = datetime.fromisoformat(doc["due_at"])
        except (TypeError, ValueError):
            due = None
        self.due_at: datetime = due if due is not None and due.tzinfo is not None else \
            _damaged_time(f"breach {doc.get('id')}")
        self._times: dict[str, datetime | None] | None = None

    @classmethod
    def of(cls, breach: Breach) -> "StoredBreach":
        """A breach object (`breaches show`, tests) as the store would keep it."""
        from mailesc.store import _breach_doc

        return cls(_breach_doc(breach))

    @classmethod
    def checked(cls, doc: object, where: str = "") -> "StoredBreach":
        """A breach document read from a store, refused (StoreError naming `where`, e.g. "at FILE line 3") when it
        lacks what lists read."""
        if not isinstance(doc, dict) or not cls.REQUIRED <= doc.keys() or not isinstance(doc["id"], int):
            raise StoreError(f"the store is damaged{' ' + where if where else ''}: a breach record lacks a field "
                             f"mailesc reads; it was left untouched. Restore it from a backup")
        return cls(doc)

    def _time(self, key: str) -> datetime | None:
        if self._times is None:
            self._times = {}
        if key not in self._times:
            self._times[key] = stored_time(self.doc.get(key), f"breach {self.id}")
        return self._times[key]

    @property
    def thread(self) -> str:
        return self.doc["thread"]

    @property
    def mailbox(self) -> str:
        return self.doc.get("mailbox", DEFAULT_MAILBOX)

    @property
    def policy(self) -> str:
        return self.doc["policy"]

    @property
    def customer(self) -> str:
        return self.doc["customer"]

    @property
    def subject(self) -> str:
        return self.doc["subject"]

    @property
    def status(self) -> str:
        return self.doc["status"]

    @property
    def clock(self) -> int:
        return self.doc.get("clock", 0)

    @property
    def escalations(self) -> list[dict]:
        return self.doc["escalations"]

    @property
    def received_at(self) -> datetime:
        return self._time("received_at") or _damaged_time(f"breach {self.id}")

    @property
    def responded_at(self) -> datetime | None:
        return self._time("responded_at")

    @property
    def acknowledged_at(self) -> datetime | None:
        return self._time("acknowledged_at")


def _damaged_time(what: str) -> datetime:
    raise StoreError(f"the store is damaged: {what} has a time mailesc cannot read; it was left untouched. "
                     f"Restore it from a backup")


def checked_breach(doc, where: str) -> StoredBreach:
    """A breach document read from a store, refused (StoreError naming `where`) when it lacks what lists read."""
    return StoredBreach.checked(doc, where)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, 100k times
class ThreadFacts:
    """What a report reads of a customer thread: when and by whom it was opened, its first team response and
    the business hours to it (stored when it was answered; None when not answered or not known yet)."""

    received: datetime
    customer: str
    policy: str | None
    mailbox: str
    breach: int | None  # the breach of its first response, if any
    responded: datetime | None
    hours: float | None

    @classmethod
    def of(cls, thread: Thread) -> "ThreadFacts | None":
        """From a thread object (records older than the stored summary, and tests); None: no customer wrote."""
        first = thread.first_customer_message()
        if first is None:
            return None
        reply = thread.first_response_after(first.arrived)
        return cls(received=first.arrived, customer=first.sender, policy=thread.policy, mailbox=thread.mailbox,
                   breach=thread.breach_ids.get(0), responded=reply.arrived if reply else None,
                   hours=thread.response_hours if reply else None)

    @classmethod
    def stored(cls, facts: dict, where: str = "a thread") -> "ThreadFacts":
        """From the summary a store keeps with each thread (store.report_facts)."""
        try:
            return cls(received=required_time(facts["received"], where), customer=facts["customer"],
                       policy=facts.get("policy"), mailbox=facts.get("mailbox", DEFAULT_MAILBOX),
                       breach=facts.get("breach"), responded=stored_time(facts.get("responded"), where),
                       hours=facts.get("hours"))
        except (KeyError, TypeError, AttributeError):
            raise StoreError(f"the store is damaged: {where} has a report summary mailesc cannot read; it was "
                             f"left untouched. Restore it from a backup") from None


def stored_facts(summaries: list[dict]) -> list[ThreadFacts]:
    """ThreadFacts.stored of many summaries in one loop (a report reads one per thread, 100k of them): the same
    reading, the same refusal of damage (StoreError), without two calls per thread."""
    parse, facts = datetime.fromisoformat, []
    try:
        for summary in summaries:
            received, responded = parse(summary["received"]), summary.get("responded")
            responded = parse(responded) if responded is not None else None
            if received.tzinfo is None or (responded is not None and responded.tzinfo is None):
                raise ValueError("a time without its offset")
            facts.append(ThreadFacts(received, summary["customer"], summary.get("policy"),
                                     summary.get("mailbox", DEFAULT_MAILBOX), summary.get("breach"), responded,
                                     summary.get("hours")))
    except (KeyError, TypeError, AttributeError, ValueError):
        raise StoreError("the store is damaged: a thread has a report summary mailesc cannot read; it was left "
                         "untouched. Restore it from a backup") from None
    return facts


def stored_breaches(docs: Iterable[dict]) -> dict[int, StoredBreach]:
    """StoredBreach.checked of many documents in one loop, by id (StoreError for the first that is damaged)."""
    required, breaches = StoredBreach.REQUIRED, {}
    for doc in docs:
        if not required <= doc.keys() or not isinstance(doc["id"], int):
            StoredBreach.checked(doc)  # raises, saying what is wrong
        breach = StoredBreach(doc)
        breaches[breach.id] = breach
    return breaches


@dataclass
class ReportRecords:
    """What a report counts over: the customer threads (their facts), the breaches by id, the reviews."""

    threads: list[ThreadFacts] = field(default_factory=list)
    breaches: dict[int, StoredBreach | Breach] = field(default_factory=dict)
    reviews: Reviews = field(default_factory=Reviews)

    @classmethod
    def of(cls, threads: Iterable[Thread], breaches: Iterable[Breach], reviews: Reviews) -> "ReportRecords":
        """From objects (tests, hand-built histories)."""
        facts = [f for f in (ThreadFacts.of(thread) for thread in threads) if f is not None]
        return cls(facts, {breach.id: breach for breach in breaches}, reviews)


@dataclass(frozen=True)
class BreachFilter:
    """What `mailesc breaches list` narrows the list by; every field left empty lets every breach through."""

    since: datetime | None = None  # deadline at or after
    until: datetime | None = None  # deadline before
    policy: str | None = None
    customer: str | None = None  # an address, or a domain ("example.com" or "@example.com")
    status: str | None = None
    unreviewed: bool = False
    overdue_review: bool = False
    mailboxes: tuple[str, ...] = ()  # any of these mailboxes (none named: every mailbox)

    def select(self, breaches: Iterable, reviews: Reviews, now: datetime, period: timedelta) -> list:
        """The breaches (StoredBreach or Breach) this lets through, by id."""
        return [breach for breach in sorted(breaches, key=lambda b: b.id) if self.admits(breach, reviews, now, period)]

    def admits(self, breach, reviews: Reviews, now: datetime, period: timedelta) -> bool:
        return ((self.policy is None or breach.policy == self.policy)
                and (self.status is None or str(breach.status) == self.status)
                and (not self.mailboxes or breach.mailbox in self.mailboxes)
                and (self.customer is None or customer_matches(breach.customer, self.customer))
                and (self.since is None or breach.due_at >= self.since)
                and (self.until is None or breach.due_at < self.until)
                and (not self.unreviewed or reviews.current(breach.id) is None)
                and (not self.overdue_review or reviews.overdue(breach, now, period)))


def customer_matches(address: str, wanted: str) -> bool:
    """`wanted` is an address or a domain (with or without its @); case does not matter."""
    address, wanted = address.lower(), wanted.lower().strip()
    if "@" in wanted.lstrip("@"):
        return address == wanted
    return address.rpartition("@")[2] == wanted.lstrip("@")


def newest(selected: list, limit: int | None) -> list:
    """`--limit N`: the newest N of a list in id order (all of it without a limit)."""
    if limit is None:
        return selected
    return selected[-limit:] if limit > 0 else []
