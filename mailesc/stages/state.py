"""What the stages of one mailbox's cycle share, and what a cycle reports.

One `MailboxState` per mailbox, made by the engine and handed to every stage: each stage reads and changes the
records through it (the store box, the indexes kept beside it) and never through another stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailesc.agenda import Agenda, policies_fingerprint
from mailesc.classify import People
from mailesc.model import Breach
from mailesc.policies import Policies
from mailesc.repository import MailboxStore
from mailesc.threads import SUBJECT_WINDOW, ThreadIndex


@dataclass
class CycleReport:
    fetched: int = 0
    messages: int = 0  # taken into a thread
    duplicates: int = 0
    ignored_auto: int = 0
    ignored_own: int = 0
    ignored_spam: int = 0  # tagged as spam by the server: no thread opened, no response counted
    quarantined: int = 0
    reread: int = 0  # quarantined messages read again (`mailesc quarantine retry`, or the policies changed)
    threads_opened: int = 0
    untimed: int = 0  # threads taken in without a clock: their policy cannot time them (see Thread.clock_error)
    breaches: int = 0  # new breach records
    escalations_recorded: int = 0
    warnings_recorded: int = 0
    acknowledgements_recorded: int = 0
    acknowledged: int = 0
    mails_sent: int = 0
    posts_sent: int = 0  # webhook posts the receivers took
    mails_failed: int = 0
    mails_waiting: int = 0
    source_error: str | None = None
    transport_error: str | None = None


@dataclass
class MailboxState:
    """One mailbox's records and what is kept beside them in memory for the cycle.

    `index`: the live threads by Message-ID and subject (threads.py); `agenda`: which threads need looking at,
    and when (agenda.py); `escalations`: escalation Message-ID -> its breach, for replies that acknowledge one;
    `first_start`/`history_before`: when mailesc first watched the mailbox, and the moment before which mail is
    history (both None until the first cycle, and for good in a replay)."""

    store: MailboxStore
    policies: Policies
    people: People
    secret: bytes  # signs the Message-IDs and markers of mailesc's mails (signing.py)
    index: ThreadIndex
    agenda: Agenda
    escalations: dict[str, Breach] = field(default_factory=dict)
    first_start: datetime | None = None
    history_before: datetime | None = None

    @property
    def own_address(self) -> str:
        return self.people.own_address

    def is_history(self, received_at: datetime) -> bool:
        """Mail from before `since`: read for threading and responses, but it starts no clock."""
        return self.history_before is not None and received_at < self.history_before


def mailbox_state(store: MailboxStore, policies: Policies, people: People, secret: bytes,
                  subject_window: timedelta = SUBJECT_WINDOW, *,
                  since: timedelta | datetime | None = None) -> MailboxState:
    """The state of a mailbox whose records are in `store`, as a start finds them: the live threads indexed when
    new mail is first looked up (not at start: see ThreadIndex), the agenda the store kept for these policies
    and `since` (else every thread due for one look), every escalation recorded known by its Message-ID."""
    return MailboxState(
        store=store, policies=policies, people=people, secret=secret,
        index=ThreadIndex(lambda: list(store.threads.values()), subject_window=subject_window,
                          is_internal=people.is_internal),
        agenda=kept_agenda(store, policies_fingerprint(policies, since)),
        escalations={record.message_id: breach for breach in store.breaches.values()
                     for record in breach.escalations})


def kept_agenda(store: MailboxStore, fingerprint: str) -> Agenda:
    """The agenda the store kept for policies with this fingerprint (a restart evaluates only the threads due or
    changed), kept on with the store from now on; without one every thread is looked at once, then only when
    due or changed."""
    kept = store.agenda_state(fingerprint)
    agenda = Agenda(store.threads.keys() if kept is None else kept[1])
    for thread_id, when in (kept[0] if kept else {}).items():
        agenda.wake(thread_id, when)
    store.keep_agenda(agenda, fingerprint)
    return agenda


def history_cutoff(since: timedelta | datetime, first_start: datetime) -> datetime:
    """The moment before which mail is history: `since` itself, or that span back from the first start."""
    return first_start - since if isinstance(since, timedelta) else since
