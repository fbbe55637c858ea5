"""One cycle: pull new mail, thread it, evaluate every clock at `now`, record what is due, send the outbox.

This is the only module that knows the order of the steps; `once`, `run` and `replay` all drive it."""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import getaddresses, parseaddr
from sys import intern
from typing import TYPE_CHECKING, Iterable, Iterator, TypeVar

from mailesc import sla
from mailesc.agenda import Agenda
from mailesc.classify import People, SpamRules, classify
from mailesc.clock import isoformat, parse_iso
from mailesc.errors import ParseError, SourceError
from mailesc.logs import detail, fields
from mailesc.model import (Breach, Delivery, Kind, MailKind, Message, QueuedMail, Quarantined,
                           RawMessage, Status, Thread, ThreadMessage)
from mailesc.compose import ack_mail_id, escalation_mail_id, warning_mail_id
from mailesc.outbox import DIGEST_AFTER, Outbox
from mailesc.parse import parse_message
from mailesc.policies import Policies, Rule
from mailesc.repository import MailboxStore
from mailesc.threads import SUBJECT_WINDOW, ThreadIndex

if TYPE_CHECKING:
    from mailesc.render import Templates
    from mailesc.sources import Source
    from mailesc.transports import Transport

log = logging.getLogger("mailesc.cycle")
T = TypeVar("T")
HEALTH_EVERY = timedelta(minutes=5)
INGEST_CHUNK = 1000  # messages taken at once: a first sync of a big mailbox never holds all their headers
ARCHIVE_EVERY = timedelta(hours=1)  # looking for threads to archive walks them all: not every cycle
ACK_ONLY_WITHIN = timedelta(hours=1)  # older mail is history: the customer gets no acknowledgement for it


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
    mails_failed: int = 0
    mails_waiting: int = 0
    source_error: str | None = None
    transport_error: str | None = None


class Engine:
    def __init__(self, *, policies: Policies, team: tuple[str, ...], store: MailboxStore, source: Source,
                 transport: Transport, templates: Templates,
                 sender: str, reply_to: str = "", digest_after: int = DIGEST_AFTER, durable: bool = True,
                 archive_after: timedelta | None = None, secret: bytes, mail_zone=None,
                 since: timedelta | datetime | None = None, spam: SpamRules | None = None,
                 subject_window: timedelta = SUBJECT_WINDOW):
        """`since`: mail that arrived before this (a time, or a span back from the store's first start) is
        history: it threads and answers, but starts no clock. None (a replay): every message counts."""
        self.policies, self.store, self.source = policies, store, source
        self.since = since
        self._history_before: datetime | None = None
        self._first_start: datetime | None = None
        self._timed_with: Policies | None = None  # the policies the untimed threads were last tried with
        self._untimed_logged: set[str | None] = set()
        self.archive_after = archive_after
        self._archived_at: datetime | None = None
        self.secret = secret  # signs the Message-IDs and markers of mailesc's mails (signing.py)
        self.people = who_is_who(policies, team, sender, secret)
        self.own_address, self.spam = self.people.own_address, spam
        self.index = ThreadIndex(list(store.threads.values()), subject_window=subject_window,
                                 is_internal=self.people.is_internal)
        self._escalations = {record.message_id: breach for breach in store.breaches.values()
                             for record in breach.escalations}
        self._acknowledged = last_acknowledgements(store.threads.values())
        self.agenda = Agenda(store.threads.keys())  # every thread is looked at once, then only when due or changed
        self.outbox = Outbox(store, source, transport, templates, sender, reply_to, digest_after, durable, secret,
                             policies, mail_zone)

    def cycle(self, now: datetime) -> CycleReport:
        report = CycleReport()
        if self.since is not None and self._first_start is None:
            self._first_start = first_start = self.store.first_start(now)
            self._history_before = history_cutoff(self.since, first_start)
            self.store.flush()  # on disk before any mail is read: a crash must not move the anchor
        if self.policies is not self._timed_with:  # a start, or the policies were reloaded: try again what failed
            self._timed_with = self.policies
            self._retime(now)
            self._reread_later(lambda item: not is_message_problem(item.reason))
        self._reread(now, report)
        try:
            for chunk in _chunks(self.source.poll(self.store.sync), INGEST_CHUNK):
                self.ingest(chunk, now, report)
        except SourceError as error:
            report.source_error = str(error)  # deadlines are still checked on what is known
        self._record_poll(now, report.source_error)
        self.escalate(now, report)
        self.store.flush()  # breaches and pending escalations are on disk before anything is sent
        self.deliver(now, report)
        self.store.flush()
        self.archive(now)
        return report

    def _record_poll(self, now: datetime, error: str | None) -> None:
        """The mailbox's health for `mailesc status`: written when it changes, and a success at most every
        few minutes (every write rewrites the store file); every success also beats the heartbeat, a small
        file beside the store, so that `status` sees a stopped daemon."""
        before = self.store.health.get("mailbox", {})
        if error is None:
            if self.outbox.durable:  # a replay has no daemon to watch
                self.store.record_poll(now)
            last_ok = before.get("ok_at")
            if before.get("error") or not last_ok or now - parse_iso(last_ok) >= HEALTH_EVERY:
                self.store.health["mailbox"] = {"ok_at": isoformat(now), "error": None, "failing_since": None}
        elif before.get("error") != error:
            self.store.health["mailbox"] = {**before, "error": error, "error_at": isoformat(now),
                                            "failing_since": before.get("failing_since") or isoformat(now)}

    # -- intake -------------------------------------------------------------------------------------------------

    def ingest(self, raws: list[RawMessage], now: datetime, report: CycleReport) -> None:
        report.fetched += len(raws)
        for raw in sorted(raws, key=lambda r: (r.arrived or now, r.key)):
            try:
                message = parse_message(raw, now, self.store.name)
                whole = raw.data if raw.size is None else None  # IMAP hands over headers only
                self._take(message, classify(message, self.people, self.spam, whole), now, report)
            except Exception as error:  # a broken message goes to quarantine and never stops the others
                reason = str(error) if isinstance(error, ParseError) else f"{type(error).__name__}: {error}"
                self.store.put_quarantined(Quarantined(key=raw.key, folder=raw.folder, reason=reason, at=now,
                                                       arrived=raw.arrived))
                report.quarantined += 1
                log.warning("quarantined %s: %s", raw.key, reason, extra=fields(key=raw.key))

    def _take(self, message: Message, kind: Kind, now: datetime, report: CycleReport) -> None:
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
        thread = self.index.place(message, may_open=kind is not Kind.AUTO)
        if thread is None:
            return  # auto-generated mail never opens a thread (in one, it is kept but never counts)
        thread.mailbox = self.store.name
        known = next((m for m in thread.messages if m.message_id == message.message_id), None)
        if known is not None:  # the same message again: in a second folder, or re-read after a UIDVALIDITY change
            if known.folder == message.folder and known.key != message.key:
                known.key = message.key  # where to fetch it from now
                self.store.put_thread(thread)
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
            self._start_clock(thread, message, report)  # the first customer message, even if it came in late
            self._acknowledge_customer(thread, message, now, report)
        if kind is Kind.CUSTOMER or kind is Kind.TEAM:
            self._keep_response_hours(thread)
        self.index.add(thread)
        self.store.put_thread(thread)
        self.agenda.changed(thread.id)
        report.messages += 1

    def _acknowledge(self, message: Message, report: CycleReport) -> None:
        """A reply to an escalation mail acknowledges that breach: its ladder stops. Only a reply from one of
        the escalation's recipients or from the team counts: knowing a Message-ID is not having the mail."""
        for parent in message.parents:
            breach = self._escalations.get(parent)
            if breach is not None and breach.acknowledged_at is None:
                if not self._may_acknowledge(message.sender, breach):
                    log.info("a reply to an escalation of breach %d came from neither its recipients nor the "
                             "team: not an acknowledgement", breach.id)
                    continue
                breach.acknowledged_by, breach.acknowledged_at = message.sender, message.arrived
                self.store.put_breach(breach)
                self.agenda.changed(breach.thread)
                report.acknowledged += 1
                log.info("breach %d acknowledged by a reply to its escalation; its ladder stops", breach.id,
                         extra=fields(breach=breach.id, thread=breach.thread))

    def _may_acknowledge(self, sender: str, breach: Breach) -> bool:
        return self.people.is_team(sender) or any(sender == address.lower() for record in breach.escalations
                                                   for address in record.to)

    def _acknowledge_customer(self, thread: Thread, message: Message, now: datetime, report: CycleReport) -> None:
        """Tell the customer we have the message: once per thread, once per sender and period, and only
        for fresh mail (never for the history found on a first run)."""
        rule = self.policies.get(thread.policy)
        if rule is None or rule.acknowledge is None or now - message.arrived > ACK_ONLY_WITHIN:
            return
        if any(n.kind == "ack" for n in thread.notices) or thread.first_response_after(message.arrived):
            return
        last = self._acknowledged.get(message.sender)
        if last is not None and now - last < rule.acknowledge_every:
            return
        self.store.enqueue(QueuedMail(kind=MailKind.ACK, message_id=ack_mail_id(self.secret, thread, self.own_address),
                                      to=[reply_address(message)], at=now, template=rule.acknowledge), thread=thread)
        self._acknowledged[message.sender] = now
        report.acknowledgements_recorded += 1
        log.info("thread %s: acknowledgement to the customer recorded", thread.id, extra=detail(thread=thread.id))

    def _start_clock(self, thread: Thread, message: Message, report: CycleReport | None = None) -> None:
        if thread.breach_ids:
            return  # the clock already ran out; what was recorded stands
        rule = self.policies.first_match(message)
        thread.policy, thread.due_at, thread.clock_error = (rule.name if rule else None), None, None
        if rule is None:
            log.info("thread %s: no rule matches, no clock", thread.id, extra=detail(thread=thread.id))
            return
        try:
            thread.due_at = rule.calendar.add(message.arrived, rule.first_response)
        except ValueError as error:  # a calendar that never opens: the policy's problem, not the message's
            self._cannot_time(thread, error, report)
            return
        log.info("thread %s: clock started, rule %s, first response due %s", thread.id, rule.name,
                 isoformat(thread.due_at), extra=detail(thread=thread.id, policy=rule.name,
                                                        deadline=isoformat(thread.due_at)))

    def _cannot_time(self, thread: Thread, error: Exception, report: CycleReport | None) -> None:
        """Keep the thread (and its message) without a clock, flagged for `status`; it is timed again when the
        policies change. Logged once per rule, not once per message."""
        thread.clock_error = str(error)
        self.store.put_thread(thread)
        if report is not None:
            report.untimed += 1
        if thread.policy not in self._untimed_logged:
            self._untimed_logged.add(thread.policy)
            log.error("policy %s cannot time a thread (%s): it is kept without a clock until the policy is fixed "
                      "(mailesc policies check; mailesc status counts such threads)", thread.policy, error)

    def _retime(self, now: datetime) -> None:
        """Time again the threads their policy could not time, with the policies as they are now: their first
        customer message is read again and matched afresh (by the rule's name if the mailbox cannot give it)."""
        threads = sorted((thread for thread in self.store.threads.values() if thread.clock_error), key=lambda t: t.id)
        self._untimed_logged.clear()
        if not threads:
            return
        firsts = {thread.id: thread.first_customer_message() for thread in threads}
        try:
            raws = self.source.fetch({first.key for first in firsts.values() if first is not None})
        except SourceError:
            raws = {}
        for thread in threads:
            first, before = firsts[thread.id], thread.clock_error
            if first is None:
                continue
            if thread.breach_ids:  # its first deadline stands; a later clock failed: evaluate it again
                thread.clock_error = None
            elif (message := self._reparse(first, raws.get(first.key), now)) is not None:
                self._start_clock(thread, message)
            else:
                self._time_by_name(thread, first)
            if thread.clock_error is None:
                log.info("a thread its policy could not time before is timed again (policy %s)", thread.policy)
            elif thread.clock_error == before:
                continue
            self._keep_response_hours(thread)
            self.store.put_thread(thread)
            self.agenda.changed(thread.id)

    def _keep_response_hours(self, thread: Thread) -> None:
        """The first response's business hours, kept on the thread for reports (computed once, when it is
        answered or its first customer message or policy changes, instead of per thread at every report)."""
        try:
            thread.response_hours = sla.response_hours(thread, self.policies.get(thread.policy))
        except ValueError:  # a calendar that cannot count: the report counts it itself
            thread.response_hours = None

    def _reparse(self, first: ThreadMessage, data: bytes | None, now: datetime) -> Message | None:
        if data is None:
            return None
        try:
            return parse_message(RawMessage(key=first.key, folder=first.folder, data=data, arrived=first.arrived), now,
                                 self.store.name)
        except ParseError:
            return None

    def _time_by_name(self, thread: Thread, first: ThreadMessage) -> None:
        rule = self.policies.get(thread.policy)
        if rule is None:
            return  # the rule is gone and the message cannot be read: it stays flagged
        try:
            thread.due_at, thread.clock_error = rule.calendar.add(first.arrived, rule.first_response), None
        except ValueError as error:
            self._cannot_time(thread, error, None)

    # -- quarantine ---------------------------------------------------------------------------------------------

    def _reread_later(self, wanted) -> None:
        for item in self.store.quarantine.values():
            if not item.retry and wanted(item):
                item.retry = True
                self.store.put_quarantined(item)

    def _reread(self, now: datetime, report: CycleReport) -> None:
        """Quarantined messages marked for another read are fetched again and taken in like new mail (with the
        arrival time the source first gave them); what fails again goes back to quarantine, unmarked."""
        marked = [item for item in self.store.quarantine.values() if item.retry]
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
                self.store.drop_quarantined(item.key)
                raws.append(RawMessage(key=item.key, folder=item.folder, data=found[item.key], arrived=item.arrived))
            else:
                item.retry = False
                self.store.put_quarantined(item)
                log.warning("quarantined %s is no longer in the mailbox: it stays in quarantine", item.key)
        report.reread += len(raws)
        self.ingest(raws, now, report)

    # -- deadlines ----------------------------------------------------------------------------------------------

    def escalate(self, now: datetime, report: CycleReport) -> None:
        """Record every warning and escalation level that is due at `now` (the outbox sends them), looking
        only at the threads whose time has come or that changed."""
        due = self._in_deadline_order(self.agenda.take_due(now))
        log.debug("evaluating the clocks of %d thread(s) at %s", len(due), isoformat(now))
        for thread in due:
            rule = self.policies.get(thread.policy)
            if rule is None or thread.clock_error:
                continue  # a rule removed from the policies climbs no ladder; nor does one that cannot time it
            try:
                verdicts = sla.evaluate(thread, rule, now)
            except ValueError as error:  # a level's time in a calendar that never opens again
                self._cannot_time(thread, error, report)
                continue
            verdicts = [v for v in verdicts if not self._is_history(v.received_at)]
            self.agenda.wake(thread.id, min((v.next_at for v in verdicts if v.next_at), default=None))
            for verdict in verdicts:
                if verdict.warn_due and not any(n.kind == "warning" for n in thread.notices):
                    self._warn(thread, rule, now, report)
                if not verdict.breached:
                    continue
                breach = self._breach_for(thread, verdict, report)
                if verdict.responded_at is not None:
                    self._close(breach, verdict.responded_at)
                elif breach.acknowledged_at is None:  # a manager who answered an escalation stops the ladder
                    self._climb(thread, breach, verdict.due_steps, now, report)

    def _is_history(self, received_at: datetime) -> bool:
        """Mail from before `since`: read for threading and responses, but it starts no clock."""
        return self._history_before is not None and received_at < self._history_before

    def _in_deadline_order(self, thread_ids: set[str]) -> list[Thread]:
        """The clocked ones of these threads, earliest deadline first (so breach ids follow deadlines)."""
        threads = [self.store.threads[i] for i in thread_ids if i in self.store.threads]
        return sorted((t for t in threads if t.due_at is not None), key=lambda t: (t.due_at, t.id))

    def _warn(self, thread: Thread, rule: Rule, now: datetime, report: CycleReport) -> None:
        if rule.warning is None:  # only a rule with a warning has one due
            return
        self.store.enqueue(QueuedMail(kind=MailKind.WARNING,
                                      message_id=warning_mail_id(self.secret, thread, self.own_address),
                                      to=list(rule.warning.to), at=now, template=rule.warning.template),
                           thread=thread)
        report.warnings_recorded += 1
        log.info("thread %s: warning recorded, first response due %s", thread.id, isoformat(thread.due_at),
                 extra=detail(thread=thread.id, deadline=isoformat(thread.due_at)))

    def _climb(self, thread: Thread, breach: Breach, steps, now: datetime, report: CycleReport) -> None:
        """Record every level due, except that a thread found overdue at the first start is escalated at its
        current level only: a lower level that fell due before mailesc first watched the mailbox is passed over
        when a higher one is due too (no level 1 and level 2 in one second). A level that fell due while the
        daemon was down is owed, and goes out late."""
        steps = sorted(steps, key=lambda step: step.level.number)
        for step in steps:
            passed_over = (step is not steps[-1] and self._first_start is not None and step.at < self._first_start)
            if step.level.number not in breach.escalated_levels() and not passed_over:
                record = QueuedMail(kind=MailKind.ESCALATION, level=step.level.number, at=now,
                                    to=list(step.level.to), template=step.level.template,
                                    message_id=escalation_mail_id(self.secret, thread, breach.clock,
                                                                  step.level.number, self.own_address))
                self.store.enqueue(record, thread=thread, breach=breach)
                self._escalations[record.message_id] = breach
                report.escalations_recorded += 1
                log.info("breach %d: level %d escalation recorded (thread %s)", breach.id, record.level, thread.id,
                         extra=detail(breach=breach.id, thread=thread.id, escalation_level=record.level))

    def next_deadline(self, now: datetime) -> datetime | None:
        """The next moment a clock needs looking at (for the daemon's sleep and replay's simulated time);
        `now` itself when new mail changed a thread that has not been looked at yet."""
        retry = self.outbox.next_retry()
        return min((when for when in (self.agenda.next_at(now), retry if retry and retry > now else None) if when),
                   default=None)

    def _breach_for(self, thread: Thread, verdict: sla.Verdict, report: CycleReport) -> Breach:
        if verdict.clock in thread.breach_ids:
            return self.store.breaches[thread.breach_ids[verdict.clock]]
        first = thread.first_customer_message()
        assert first is not None, "a clock that breached was started by a customer message"
        breach = self.store.new_breach(thread=thread.id, customer=first.sender, subject=first.subject,
                                       policy=thread.policy, received_at=verdict.received_at, due_at=verdict.due_at,
                                       clock=verdict.clock)
        thread.breach_ids[verdict.clock] = breach.id
        self.store.put_thread(thread)
        report.breaches += 1
        log.info("breach %d: thread %s missed its %s %s deadline %s", breach.id, thread.id, thread.policy,
                 "first-response" if verdict.clock == 0 else "next-response", isoformat(verdict.due_at),
                 extra=fields(breach=breach.id, thread=thread.id, policy=thread.policy, clock=verdict.clock,
                              deadline=isoformat(verdict.due_at)))
        return breach

    def _close(self, breach: Breach, responded_at: datetime) -> None:
        if (breach.status, breach.responded_at) != (Status.RESPONDED_LATE, responded_at):
            breach.status, breach.responded_at = Status.RESPONDED_LATE, responded_at
            self.store.put_breach(breach)

    # -- retention ----------------------------------------------------------------------------------------------

    def archive(self, now: datetime) -> None:
        """Move threads that have been quiet for `archive_after`, with nothing left to send or to fall due,
        to the archive (at most once an hour: it walks every thread)."""
        if self.archive_after is None or (self._archived_at and now - self._archived_at < ARCHIVE_EVERY):
            return
        self._archived_at = now
        done = [thread for thread in self.store.threads.values() if self._finished(thread, now)]
        if not done:
            return
        for thread in done:
            self.index.remove(thread)
            self.agenda.forget(thread.id)
            for breach_id in thread.breach_ids.values():
                for record in self.store.breaches[breach_id].escalations:
                    self._escalations.pop(record.message_id, None)
        self.store.archive(done)
        self.store.flush()
        log.info("archived %d thread(s) quiet for %s or longer", len(done), self.archive_after)

    def _finished(self, thread: Thread, now: datetime) -> bool:
        last = max((m.arrived for m in thread.messages), default=None)
        if last is None or self.archive_after is None or now - last < self.archive_after:
            return False
        breaches = [self.store.breaches[i] for i in thread.breach_ids.values() if i in self.store.breaches]
        records = [*thread.notices, *(record for breach in breaches for record in breach.escalations)]
        if any(record.delivery is Delivery.PENDING for record in records):
            return False
        rule = self.policies.get(thread.policy)
        if thread.clock_error:
            return False  # kept live until its policy can time it
        return thread.due_at is None or rule is None or not any(
            verdict.next_at for verdict in sla.evaluate(thread, rule, now))

    # -- reload -------------------------------------------------------------------------------------------------

    def use(self, policies: Policies, templates) -> None:
        """Put policies and templates loaded again (SIGHUP) in use: every thread is looked at again at the next
        evaluation, so a changed ladder or warning applies at once. Deadlines already computed stay."""
        self.policies = policies
        self.people = replace(self.people, managers=policies.recipients())
        self.outbox.composer.policies, self.outbox.composer.templates = policies, templates  # rule order, zones
        for thread_id in self.store.threads:
            self.agenda.changed(thread_id)

    # -- outbox -------------------------------------------------------------------------------------------------

    def deliver(self, now: datetime, report: CycleReport) -> None:
        delivered = self.outbox.deliver(now)
        report.mails_sent += delivered.mails
        report.mails_failed += delivered.failed
        report.mails_waiting = delivered.waiting
        report.transport_error = delivered.last_error


def history_cutoff(since: timedelta | datetime, first_start: datetime) -> datetime:
    """The moment before which mail is history: `since` itself, or that span back from the first start."""
    return first_start - since if isinstance(since, timedelta) else since


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


def who_is_who(policies: Policies, team: tuple[str, ...], sender: str, secret: bytes = b"") -> People:
    """The team, the escalation recipients, mailesc's own address and secret, for classifying messages."""
    return People(team=team, managers=policies.recipients(), own_address=getaddresses([sender])[0][1].lower(),
                  secret=secret)
