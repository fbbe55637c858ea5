"""Intake: new mail parsed, classified, threaded, timed and acknowledged; a message that cannot be read goes to
quarantine (and is read again when asked, or when the policies change) and never stops the others."""

from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, timedelta
from email.utils import parseaddr
from sys import intern
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

from mailesc.classify import SpamRules, classify
from mailesc.clock import isoformat
from mailesc.compose import ack_mail_id
from mailesc.errors import ParseError, SourceError
from mailesc.logs import detail, fields
from mailesc.model import (Breach, Kind, MailKind, Message, QueuedMail, Quarantined, RawMessage, Thread,
                           ThreadMessage)
from mailesc.parse import parse_message
from mailesc.sources import Poll
from mailesc.stages.state import CycleReport, MailboxState
from mailesc.stages.timing import Timing

if TYPE_CHECKING:
    from mailesc.sources import Source

log = logging.getLogger("mailesc.cycle")  # the stages log as the cycle always did (a contract of the log lines)
T = TypeVar("T")
INGEST_CHUNK = 1000  # messages taken at once: a first sync of a big mailbox never holds all their headers
ACK_ONLY_WITHIN = timedelta(hours=1)  # older mail is history: the customer gets no acknowledgement for it


class Intake:
    def __init__(self, state: MailboxState, timing: Timing, source: Source, spam: SpamRules | None = None):
        self.state, self.timing, self.source, self.spam = state, timing, source, spam
        self._acks: dict[str, datetime] | None = None  # see _acknowledged

    @property
    def _acknowledged(self) -> dict[str, datetime]:
        """Customer address -> when mailesc last acknowledged one of their messages: found in every thread
        when a customer is first to be acknowledged, not at every start."""
        if self._acks is None:
            self._acks = last_acknowledgements(self.state.store.threads.values())
        return self._acks

    def read_new(self, now: datetime, report: CycleReport) -> None:
        """Take in what the source has that the store's bookmarks have not seen, a chunk at a time. A source
        that fails is reported; what was taken before the failure stays taken."""
        poll = Poll(self.source, self.state.store.sync)
        try:
            for chunk in _chunks(poll, INGEST_CHUNK):
                self.ingest(chunk, now, report)
        except SourceError as error:
            report.source_error = str(error)  # deadlines are still checked on what is known
        self.state.store.sync.update(poll.bookmarks)  # the source's bookmarks move once all it handed over is taken

    def ingest(self, raws: list[RawMessage], now: datetime, report: CycleReport) -> None:
        report.fetched += len(raws)
        for raw in sorted(raws, key=lambda r: (r.arrived or now, r.arrived is None, r.key)):  # at the same
            # moment, mail that carries its time before mail that has none (a replay's undated messages, at its end)
            try:
                message = parse_message(raw, now, self.state.store.name)
                whole = raw.data if raw.size is None else None  # IMAP hands over headers only
                self._take(message, classify(message, self.state.people, self.spam, whole), now, report)
            except Exception as error:  # a broken message goes to quarantine and never stops the others
                reason = str(error) if isinstance(error, ParseError) else f"{type(error).__name__}: {error}"
                self.state.store.put_quarantined(Quarantined(key=raw.key, folder=raw.folder, reason=reason, at=now,
                                                             arrived=raw.arrived))
                report.quarantined += 1
                log.warning("quarantined %s: %s", raw.key, reason, extra=fields(key=raw.key))

    def _take(self, message: Message, kind: Kind, now: datetime, report: CycleReport) -> None:
        state = self.state
        log.debug("message %s (%s): %s", message.message_id, message.key, kind)
        if kind is Kind.OWN:
            report.ignored_own += 1
            return
        if kind is Kind.SPAM:
            report.ignored_spam += 1
            return  # never a thread, a response or an acknowledgement; never attached to a manager's mail
        report.ignored_auto += kind is Kind.AUTO
        if kind is not Kind.AUTO:
            self._acknowledge(message, report)
        thread = state.index.place(message, may_open=kind is not Kind.AUTO)
        if thread is None:
            return  # auto-generated mail never opens a thread (in one, it is kept but never counts)
        thread.mailbox = state.store.name
        known = next((m for m in thread.messages if m.message_id == message.message_id), None)
        if known is not None:  # the same message again: in a second folder, or re-read after a UIDVALIDITY change
            if known.folder == message.folder and known.key != message.key:
                known.key = message.key  # where to fetch it from now
                state.store.put_thread(thread)
            report.duplicates += 1
            return
        opens = kind is Kind.CUSTOMER and thread.first_customer_message() is None
        thread.messages.append(ThreadMessage(key=message.key, folder=intern(message.folder),
                                             message_id=intern(message.message_id), kind=kind,
                                             sender=intern(message.sender), arrived=message.arrived,
                                             subject=intern(message.subject), name=intern(message.sender_name),
                                             size=message.size))  # interned as the store does when it reads them
        # back: one copy of a folder, sender or subject for all its messages (a first sync of 100k messages
        # held ~20 MB more than a restart over the same store without it)
        report.threads_opened += opens
        if opens:
            log.info("thread %s opened by a customer message", thread.id, extra=detail(thread=thread.id))
        elif kind is Kind.TEAM and thread.due_at is not None:
            log.info("thread %s: team response seen", thread.id,
                     extra=detail(thread=thread.id, at=isoformat(message.arrived)))
        if kind is Kind.CUSTOMER and (first := thread.first_customer_message()) is not None \
                and first.message_id == message.message_id:
            self.timing.start_clock(thread, message, report)  # the first customer message, even if it came in late
            self._acknowledge_customer(thread, message, now, report)
        if kind is Kind.CUSTOMER or kind is Kind.TEAM:
            self.timing.keep_response_hours(thread)
        state.index.add(thread)
        state.store.put_thread(thread)
        state.agenda.changed(thread.id)
        report.messages += 1

    def _acknowledge(self, message: Message, report: CycleReport) -> None:
        """A reply to an escalation mail acknowledges that breach: its ladder stops. Only a reply from one of
        the escalation's recipients or from the team counts: knowing a Message-ID is not having the mail."""
        for parent in message.parents:
            breach = self.state.escalations.get(parent)
            if breach is not None and breach.acknowledged_at is None:
                if not self._may_acknowledge(message.sender, breach):
                    log.info("a reply to an escalation of breach %d came from neither its recipients nor the "
                             "team: not an acknowledgement", breach.id)
                    continue
                breach.acknowledged_by, breach.acknowledged_at = message.sender, message.arrived
                self.state.store.put_breach(breach)
                self.state.agenda.changed(breach.thread)
                report.acknowledged += 1
                log.info("breach %d acknowledged by a reply to its escalation; its ladder stops", breach.id,
                         extra=fields(breach=breach.id, thread=breach.thread))

    def _may_acknowledge(self, sender: str, breach: Breach) -> bool:
        return self.state.people.is_team(sender) or any(sender == address.lower() for record in breach.escalations
                                                         for address in record.to)

    def _acknowledge_customer(self, thread: Thread, message: Message, now: datetime, report: CycleReport) -> None:
        """Tell the customer we have the message: once per thread, once per sender and period, and only
        for fresh mail (never for the history found on a first run)."""
        rule = self.state.policies.get(thread.policy)
        if rule is None or rule.acknowledge is None or now - message.arrived > ACK_ONLY_WITHIN:
            return
        if any(n.kind == "ack" for n in thread.notices) or thread.first_response_after(message.arrived):
            return
        last = self._acknowledged.get(message.sender)
        if last is not None and now - last < rule.acknowledge_every:
            return
        self.state.store.enqueue(QueuedMail(kind=MailKind.ACK,
                                            message_id=ack_mail_id(self.state.secret, thread, self.state.own_address),
                                            to=[reply_address(message)], at=now, template=rule.acknowledge),
                                 thread=thread)
        self._acknowledged[message.sender] = now
        report.acknowledgements_recorded += 1
        log.info("thread %s: acknowledgement to the customer recorded", thread.id, extra=detail(thread=thread.id))

    # -- quarantine ---------------------------------------------------------------------------------------------

    def reread_later(self, wanted: Callable[[Quarantined], bool]) -> None:
        """Mark the quarantined messages `wanted` picks to be read again at the next reread()."""
        for item in self.state.store.quarantine.values():
            if not item.retry and wanted(item):
                item.retry = True
                self.state.store.put_quarantined(item)

    def reread(self, now: datetime, report: CycleReport) -> None:
        """Quarantined messages marked for another read are fetched again and taken in like new mail (with the
        arrival time the source first gave them); what fails again goes back to quarantine, unmarked."""
        store = self.state.store
        marked = [item for item in store.quarantine.values() if item.retry]
        if not marked:
            return
        try:
            found = self.source.fetch({item.key for item in marked})
        except SourceError as error:
            log.warning("quarantined messages are not read again yet: %s", error)
            return  # still marked: the next cycle tries again
        raws = []
        for item in marked:
            if item.key in found:
                store.drop_quarantined(item.key)
                raws.append(RawMessage(key=item.key, folder=item.folder, data=found[item.key], arrived=item.arrived))
            else:
                item.retry = False
                store.put_quarantined(item)
                log.warning("quarantined %s is no longer in the mailbox: it stays in quarantine", item.key)
        report.reread += len(raws)
        self.ingest(raws, now, report)


_EXCEPTION_REASON = re.compile(r"[A-Z]\w*(?:Error|Exception|Warning): ")


def is_message_problem(reason: str) -> bool:
    """A quarantine reason that says the message itself cannot be read (a ParseError's words), as opposed to
    an error in mailesc or its policies (\"ValueError: ...\"), which is worth another read once that changes."""
    return not _EXCEPTION_REASON.match(reason)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def last_acknowledgements(threads) -> dict[str, datetime]:
    """Customer address -> when mailesc last acknowledged one of their messages."""
    acks = sorted((notice.at, thread.first_customer_message().sender) for thread in threads
                  for notice in thread.notices if notice.kind == "ack")
    return {sender: at for at, sender in acks}  # the latest wins


def reply_address(message: Message) -> str:
    """Where an automatic reply goes (RFC 3834): the Return-Path, else the From address."""
    return_path = parseaddr(message.header("return-path") or "")[1].lower()
    return return_path if "@" in return_path else message.sender
