"""The nouns of mailesc as plain dataclasses: no I/O, no clocks, no config."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from datetime import datetime
from enum import StrEnum

from mailesc.headertext import header_text

DEFAULT_MAILBOX = "default"  # the name of the mailbox of a config with a single, unnamed [mailbox] table


@dataclass(frozen=True)
class RawMessage:
    """A message as a source hands it over: bytes plus where and when it arrived."""

    key: str  # stable within the source; used to fetch the message again
    folder: str
    data: bytes
    arrived: datetime | None  # INTERNALDATE, Maildir mtime or mbox From_ line; None if unknown
    size: int | None = None  # of the whole message, where `data` holds only its header (IMAP RFC822.SIZE)

    @property
    def full_size(self) -> int:
        return self.size if self.size is not None else len(self.data)


@dataclass(frozen=True)
class Message:
    """The parsed facts about one message that mailesc needs."""

    key: str
    folder: str
    message_id: str
    parents: tuple[str, ...]  # References, then In-Reply-To: oldest ancestor first
    subject: str
    sender: str  # the From address, lower case
    sender_name: str
    recipients: tuple[str, ...]  # To and Cc addresses, lower case
    date: datetime | None
    arrived: datetime
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, raw value): header() decodes
    size: int = 0  # bytes of the whole message
    mailbox: str = "default"  # the name of the configured mailbox it came from (set by the engine that read it)

    def header(self, name: str) -> str | None:
        values = self._by_name.get(name.lower())
        return header_text(values[0]) if values else None

    def header_values(self, name: str) -> list[str]:
        return [header_text(value) for value in self._by_name.get(name.lower(), ())]

    def has_header(self, name: str) -> bool:
        return name.lower() in self._by_name

    def header_names(self):
        """The lower-case names of its headers (a set-like view): checks that look at a few headers ask once
        whether any of them is there at all (most messages have none of the spam or auto-reply headers)."""
        return self._by_name.keys()

    @cached_property
    def _by_name(self) -> dict[str, list[str]]:
        """Raw values by lower-case name, built at the first lookup (classification asks for many)."""
        by_name: dict[str, list[str]] = {}
        for key, value in self.headers:
            by_name.setdefault(key, []).append(value)
        return by_name


def with_header_index(message: Message, by_name: dict[str, list[str]]) -> Message:
    """`message` with its header index already made (parse.py builds it while reading the header: the same
    dict Message._by_name would build from `message.headers` at the first lookup, made only once)."""
    message.__dict__["_by_name"] = by_name  # where cached_property keeps it (a frozen dataclass has a __dict__)
    return message


class Kind(StrEnum):
    CUSTOMER = "customer"  # opens a thread and starts the clock
    TEAM = "team"  # a team reply to the customer: stops the clock
    INTERNAL = "internal"  # team mail that only goes to the team or managers (forwards)
    AUTO = "auto"  # auto-replies, bounces, lists: never a customer, never a response
    OWN = "own"  # mailesc's own escalations
    SPAM = "spam"  # tagged as spam by the server's filter: never a customer, never a response


@dataclass(slots=True)
class ThreadMessage:
    """What a thread remembers of each of its messages (slotted: a daemon holds one per message it tracks)."""

    key: str
    folder: str
    message_id: str
    kind: Kind
    sender: str
    arrived: datetime
    subject: str = ""
    name: str = ""  # the sender's display name
    size: int = 0  # bytes, so that a huge message is not fetched just to find it too large to attach


class Delivery(StrEnum):
    PENDING = "pending"  # recorded, not yet accepted by the mail server
    SENT = "sent"
    FAILED = "failed"  # refused for good; shown to the operator


class MailKind(StrEnum):
    """What a queued mail is: the values of `QueuedMail.kind`."""

    ESCALATION = "escalation"  # a level of a breach's ladder, to managers (kept in the breach's `escalations`)
    WARNING = "warning"  # to the team before a deadline (kept in the thread's `notices`)
    ACK = "ack"  # to the customer: we have your message (kept in the thread's `notices`)
    DIGEST = "digest"  # storm control: many escalations to the same recipients as one mail
    DAILY = "daily"  # the daily digest to the managers
    WEBHOOK = "webhook"  # a level's chat post (`notify = ["webhook:ops"]`; kept in the breach's `notifications`)


@dataclass
class QueuedMail:
    """One mail mailesc sends, of any kind, from the moment it falls due until the server accepted it or
    refused it for good. It is recorded before it is sent and settled after (write-ahead), so that a crash
    resends this very mail, with its Message-ID, instead of losing it or writing another."""

    kind: str  # a MailKind value
    message_id: str
    to: list[str]
    at: datetime  # when it was recorded (fell due)
    template: str
    level: int | None = None  # escalations and webhook posts: the ladder level
    delivery: Delivery = Delivery.PENDING
    sent_at: datetime | None = None
    error: str | None = None
    attempts: int = 0  # tries so far (counted before each try)
    retry_at: datetime | None = None  # after a temporary failure: not before this
    digest: str | None = None  # escalations: the Message-ID of the storm digest it went out in, if any
    covers: list[str] = field(default_factory=list)  # digests: the Message-IDs of the escalations it lists
    resent: list[dict] = field(default_factory=list)  # `breaches resend`: {"at", "to", "was"} (ISO time, lists)
    day: str | None = None  # the daily digest: the ISO date it is about


def EscalationRecord(level: int, at: datetime, to: list[str], message_id: str, template: str = "escalation",
                     **delivery) -> QueuedMail:
    """A breach's escalation mail (the name of the record type before the queue: kept for old imports)."""
    return QueuedMail(kind=MailKind.ESCALATION.value, message_id=message_id, to=to, at=at, template=template,
                      level=level, **delivery)


def Notice(kind: str, at: datetime, to: list[str], message_id: str, template: str, **delivery) -> QueuedMail:
    """A thread's warning or acknowledgement (the name of the record type before the queue: kept for old
    imports)."""
    return QueuedMail(kind=kind, message_id=message_id, to=to, at=at, template=template, **delivery)


_arrival = attrgetter("arrived")  # a message's sort key by arrival


class Status(StrEnum):
    OPEN = "open"
    RESPONDED_LATE = "responded_late"


@dataclass
class Thread:
    id: str  # the root Message-ID
    subject: str  # normalised: no Re/Fwd prefixes
    ids: set[str] = field(default_factory=set)  # every Message-ID that leads here
    messages: list[ThreadMessage] = field(default_factory=list)
    policy: str | None = None  # rule chosen when the first customer message arrived
    due_at: datetime | None = None  # of the first response
    breach_ids: dict[int, int] = field(default_factory=dict)  # clock number (0: the first response) -> breach
    notices: list[QueuedMail] = field(default_factory=list)  # warnings and acknowledgements
    clock_error: str | None = None  # why its policy could not time it (a calendar that never opens): no clock
    # until the policies change; then it is timed again. Never a reason to quarantine the customer's message.
    mailbox: str = DEFAULT_MAILBOX  # the mailbox it was read from: a thread id is unique within its mailbox only
    # business hours from the first customer message to the first team response, in its policy's calendar:
    # set by the engine when the thread is answered (sla.response_hours) and kept, so that reports need no
    # calendar per thread; None while unanswered (or for records written before it was kept)
    response_hours: float | None = None

    def first_customer_message(self) -> ThreadMessage | None:
        return self.first_customer_message_after(None)

    # The first of the messages that qualify, by arrival; of equal arrivals the one added first, as in
    # sorted_messages(). min() over the qualifying ones instead of sorting them all: a first sync asks
    # this several times per message taken (tests/unit/test_model_first.py compares both).
    def first_customer_message_after(self, start: datetime | None) -> ThreadMessage | None:
        return min((m for m in self.messages if m.kind is Kind.CUSTOMER and (start is None or m.arrived > start)),
                   key=_arrival, default=None)

    def first_response_after(self, start: datetime) -> ThreadMessage | None:
        return min((m for m in self.messages if m.kind is Kind.TEAM and m.arrived > start), key=_arrival,
                   default=None)

    def sorted_messages(self) -> list[ThreadMessage]:
        return sorted(self.messages, key=_arrival)


@dataclass
class Breach:
    id: int
    thread: str
    customer: str
    subject: str
    policy: str
    received_at: datetime
    due_at: datetime
    status: Status = Status.OPEN
    responded_at: datetime | None = None
    escalations: list[QueuedMail] = field(default_factory=list)  # kind 'escalation', one per level
    acknowledged_by: str | None = None  # a manager who replied to an escalation: the ladder stops
    acknowledged_at: datetime | None = None
    clock: int = 0  # 0: the first response; 1, 2, ...: the next responses after the customer wrote again
    mailbox: str = DEFAULT_MAILBOX  # its thread's mailbox (breach ids are unique in the whole installation)
    # the levels' posts to chat (kind 'webhook', to ["webhook:NAME"]), kept apart from the mails so that what
    # counts escalation mails (levels, reports, the daily digest) never counts a post
    notifications: list[QueuedMail] = field(default_factory=list)

    def escalated_levels(self) -> set[int]:
        """The levels recorded: a level's mail and its posts are recorded together, so its mail says it."""
        return {record.level for record in self.escalations if record.level is not None}

    def queued(self) -> list[QueuedMail]:
        """Everything sent about this breach: its escalation mails, then its posts."""
        return [*self.escalations, *self.notifications]


@dataclass(frozen=True)
class Attachment:
    name: str  # e.g. "01-customer.eml"
    data: bytes


@dataclass(frozen=True)
class WebhookPost:
    """A post ready for a notifier (its text composed by compose.py): the record's id, the webhook's name."""

    record_id: str  # the QueuedMail's message_id: the post's stable identity
    name: str  # the webhook's name in the config (`[webhook.NAME]`); its URL is the notifier's secret
    text: str
    breach: int
    level: int


@dataclass(frozen=True)
class OutgoingMail:
    """A mail ready for a transport (built by compose.py through render.build_mail)."""

    message_id: str
    sender: str  # envelope sender address
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class Quarantined:
    key: str
    folder: str
    reason: str
    at: datetime
    arrived: datetime | None = None  # as the source said, so that a message read again keeps its arrival time
    retry: bool = False  # read it again at the next cycle (`mailesc quarantine retry`, or the policies changed)
    mailbox: str = DEFAULT_MAILBOX
