"""One cycle of one mailbox: the order of its steps, and the points where its records are written.

This is the only module that knows the order of the steps; `once`, `run` and `replay` all drive it. What each
step does lives in its stage (mailesc/stages/: intake, deadlines, retention; the outbox sends); the stages share
one MailboxState and never write the store to disk themselves: the cycle does, at the points that make a crash
safe (the first start's anchor before any mail is read; breaches and pending mails before anything is sent)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import getaddresses
from typing import TYPE_CHECKING

from mailesc.agenda import policies_fingerprint
from mailesc.classify import People, SpamRules
from mailesc.clock import isoformat, parse_iso
from mailesc.outbox import DIGEST_AFTER, Outbox
from mailesc.policies import Policies
from mailesc.repository import MailboxStore
from mailesc.stages.deadlines import Deadlines
from mailesc.stages.intake import (ACK_ONLY_WITHIN, INGEST_CHUNK, Intake, is_message_problem,  # noqa: F401
                                   last_acknowledgements, reply_address)
from mailesc.stages.retention import ARCHIVE_EVERY, Retention  # noqa: F401
from mailesc.stages.state import CycleReport, history_cutoff, mailbox_state
from mailesc.stages.timing import Timing
from mailesc.threads import SUBJECT_WINDOW

if TYPE_CHECKING:
    from mailesc.notifiers import Notifier
    from mailesc.render import Templates
    from mailesc.sources import Source
    from mailesc.transports import Transport

__all__ = ["ACK_ONLY_WITHIN", "ARCHIVE_EVERY", "CycleReport", "Engine", "HEALTH_EVERY", "INGEST_CHUNK",
           "history_cutoff", "is_message_problem", "last_acknowledgements", "reply_address", "who_is_who"]

log = logging.getLogger("mailesc.cycle")
HEALTH_EVERY = timedelta(minutes=5)


class Engine:
    def __init__(self, *, policies: Policies, team: tuple[str, ...], store: MailboxStore, source: Source,
                 transport: Transport, templates: Templates,
                 sender: str, reply_to: str = "", digest_after: int = DIGEST_AFTER, durable: bool = True,
                 archive_after: timedelta | None = None, secret: bytes, mail_zone=None,
                 since: timedelta | datetime | None = None, spam: SpamRules | None = None,
                 subject_window: timedelta = SUBJECT_WINDOW, notifier: Notifier | None = None):
        """`since`: mail that arrived before this (a time, or a span back from the store's first start) is
        history: it threads and answers, but starts no clock. None (a replay): every message counts."""
        self.state = mailbox_state(store, policies, who_is_who(policies, team, sender, secret), secret, subject_window,
                                   since=since)
        self.store, self.source, self.since, self.durable = store, source, since, durable
        self._timed_with: Policies | None = None  # the policies the untimed threads were last tried with
        self.timing = Timing(self.state, source)
        self.intake = Intake(self.state, self.timing, source, spam)
        self.deadlines = Deadlines(self.state, self.timing)
        self.retention = Retention(self.state, archive_after)
        self.outbox = Outbox(store, source, transport, templates, sender, reply_to, digest_after, durable, secret,
                             policies, mail_zone, notifier=notifier)

    @property
    def policies(self) -> Policies:
        return self.state.policies

    @policies.setter
    def policies(self, policies: Policies) -> None:
        self.state.policies = policies

    def cycle(self, now: datetime, report: CycleReport | None = None) -> CycleReport:
        """One cycle at `now`: the steps in their order, and the store written where a crash needs it. Counted
        in a new report, or added to `report` (a replay counts all of its cycles in one)."""
        report = CycleReport() if report is None else report
        state = self.state
        if self.since is not None and state.first_start is None:
            state.first_start = first_start = self.store.first_start(now)
            state.history_before = history_cutoff(self.since, first_start)
            self._commit()  # on disk before any mail is read: a crash must not move the anchor
        if self.policies is not self._timed_with:  # a start, or the policies were reloaded: try again what failed
            self._timed_with = self.policies
            self.timing.retime(now)
            self.intake.reread_later(lambda item: not is_message_problem(item.reason))
        self.intake.reread(now, report)
        self.intake.read_new(now, report)
        self._record_poll(now, report.source_error)
        self.deadlines.escalate(now, report)
        self._commit()  # breaches and pending escalations are on disk before anything is sent
        self.deliver(now, report)
        self._commit()
        looks = self.retention.due(now)  # the look is remembered in the store, archived or not
        if self.retention.archive(now) or looks:
            self._commit()
        return report

    def _commit(self) -> None:
        """A transaction point: every change since the last one is written, all or nothing (on PostgreSQL:
        fenced by the mailbox's lease). A replay's store is throwaway and nobody resends from it: the replay
        writes it once, at its end."""
        if self.durable:
            self.store.flush()

    def _record_poll(self, now: datetime, error: str | None) -> None:
        """The mailbox's health for `mailesc status`: written when it changes, and a success at most every
        few minutes (every write rewrites the store file); every success also beats the heartbeat, a small
        file beside the store, so that `status` sees a stopped daemon."""
        if not self.durable:
            return  # a replay has no daemon to watch, and a dry run writes nothing
        before = self.store.health.get("mailbox", {})
        if error is None:
            self.store.record_poll(now)
            last_ok = before.get("ok_at")
            if before.get("error") or not last_ok or now - parse_iso(last_ok) >= HEALTH_EVERY:
                self.store.health["mailbox"] = {"ok_at": isoformat(now), "error": None, "failing_since": None}
        elif before.get("error") != error:
            self.store.health["mailbox"] = {**before, "error": error, "error_at": isoformat(now),
                                            "failing_since": before.get("failing_since") or isoformat(now)}

    def next_deadline(self, now: datetime) -> datetime | None:
        """The next moment a clock needs looking at (for the daemon's sleep and replay's simulated time);
        `now` itself when new mail changed a thread that has not been looked at yet."""
        retry = self.outbox.next_retry()
        return min((when for when in (self.state.agenda.next_at(now), retry if retry and retry > now else None)
                    if when), default=None)

    # -- reload -------------------------------------------------------------------------------------------------

    def use(self, policies: Policies, templates) -> None:
        """Put policies and templates loaded again (SIGHUP) in use: every thread is looked at again at the next
        evaluation, so a changed ladder or warning applies at once. Deadlines already computed stay."""
        self.state.policies = policies
        self.state.people = replace(self.state.people, managers=policies.recipients())
        self.outbox.composer.policies, self.outbox.composer.templates = policies, templates  # rule order, zones
        for thread_id in self.store.threads:
            self.state.agenda.changed(thread_id)
        self.store.keep_agenda(self.state.agenda, policies_fingerprint(policies, self.since))

    # -- outbox -------------------------------------------------------------------------------------------------

    def deliver(self, now: datetime, report: CycleReport) -> None:
        delivered = self.outbox.deliver(now)
        report.mails_sent += delivered.mails
        report.posts_sent += delivered.posts
        report.mails_failed += delivered.failed
        report.mails_waiting = delivered.waiting
        report.transport_error = delivered.last_error


def who_is_who(policies: Policies, team: tuple[str, ...], sender: str, secret: bytes = b"") -> People:
    """The team, the escalation recipients, mailesc's own address and secret, for classifying messages."""
    return People(team=team, managers=policies.recipients(), own_address=getaddresses([sender])[0][1].lower(),
                  secret=secret)
