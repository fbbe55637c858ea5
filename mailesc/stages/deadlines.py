"""Deadlines: the clocks whose time has come (or whose thread changed) are evaluated at `now`; what is due is
recorded — a warning, a breach, each escalation level of its ladder — for the outbox to send. Nothing here
sends, and nothing is recorded twice: a level on a breach is there once, with its Message-ID."""

from __future__ import annotations

import logging
from datetime import datetime

from mailesc import sla
from mailesc.clock import isoformat
from mailesc.compose import escalation_mail_id, warning_mail_id, webhook_post_id
from mailesc.logs import detail, fields
from mailesc.model import Breach, MailKind, QueuedMail, Status, Thread
from mailesc.policies import Rule
from mailesc.stages.state import CycleReport, MailboxState
from mailesc.stages.timing import Timing

log = logging.getLogger("mailesc.cycle")  # the stages log as the cycle always did (a contract of the log lines)


class Deadlines:
    def __init__(self, state: MailboxState, timing: Timing):
        self.state, self.timing = state, timing

    def escalate(self, now: datetime, report: CycleReport) -> None:
        """Record every warning and escalation level that is due at `now` (the outbox sends them), looking
        only at the threads whose time has come or that changed."""
        state = self.state
        due = self._in_deadline_order(state.agenda.take_due(now))
        log.debug("evaluating the clocks of %d thread(s) at %s", len(due), isoformat(now))
        for thread in due:
            rule = state.policies.get(thread.policy)
            if rule is None or thread.clock_error:
                continue  # a rule removed from the policies climbs no ladder; nor does one that cannot time it
            try:
                verdicts = sla.evaluate(thread, rule, now)
            except ValueError as error:  # a level's time in a calendar that never opens again
                self.timing.cannot_time(thread, error, report)
                continue
            verdicts = [v for v in verdicts if not state.is_history(v.received_at)]
            state.agenda.wake(thread.id, min((v.next_at for v in verdicts if v.next_at), default=None))
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

    def _in_deadline_order(self, thread_ids: set[str]) -> list[Thread]:
        """The clocked ones of these threads, earliest deadline first (so breach ids follow deadlines)."""
        threads = [self.state.store.threads[i] for i in thread_ids if i in self.state.store.threads]
        return sorted((t for t in threads if t.due_at is not None), key=lambda t: (t.due_at, t.id))

    def _warn(self, thread: Thread, rule: Rule, now: datetime, report: CycleReport) -> None:
        if rule.warning is None:  # only a rule with a warning has one due
            return
        self.state.store.enqueue(QueuedMail(kind=MailKind.WARNING,
                                            message_id=warning_mail_id(self.state.secret, thread,
                                                                       self.state.own_address),
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
        state = self.state
        steps = sorted(steps, key=lambda step: step.level.number)
        for step in steps:
            passed_over = (step is not steps[-1] and state.first_start is not None and step.at < state.first_start)
            if step.level.number not in breach.escalated_levels() and not passed_over:
                record = QueuedMail(kind=MailKind.ESCALATION, level=step.level.number, at=now,
                                    to=list(step.level.to), template=step.level.template,
                                    message_id=escalation_mail_id(state.secret, thread, breach.clock,
                                                                  step.level.number, state.own_address))
                state.store.enqueue(record, thread=thread, breach=breach)
                state.escalations[record.message_id] = breach
                report.escalations_recorded += 1
                log.info("breach %d: level %d escalation recorded (thread %s)", breach.id, record.level, thread.id,
                         extra=detail(breach=breach.id, thread=thread.id, escalation_level=record.level))
                for target in step.level.notify:  # its posts, written ahead with the mail at the same flush
                    state.store.enqueue(QueuedMail(
                        kind=MailKind.WEBHOOK, level=step.level.number, at=now, to=[target], template="",
                        message_id=webhook_post_id(state.secret, thread, breach.clock, step.level.number, target,
                                                   state.own_address)), thread=thread, breach=breach)

    def _breach_for(self, thread: Thread, verdict: sla.Verdict, report: CycleReport) -> Breach:
        store = self.state.store
        if verdict.clock in thread.breach_ids:
            return store.breaches[thread.breach_ids[verdict.clock]]
        first = thread.first_customer_message()
        assert first is not None, "a clock that breached was started by a customer message"
        breach = store.new_breach(thread=thread.id, customer=first.sender, subject=first.subject,
                                  policy=thread.policy, received_at=verdict.received_at, due_at=verdict.due_at,
                                  clock=verdict.clock)
        thread.breach_ids[verdict.clock] = breach.id
        store.put_thread(thread)
        report.breaches += 1
        log.info("breach %d: thread %s missed its %s %s deadline %s", breach.id, thread.id, thread.policy,
                 "first-response" if verdict.clock == 0 else "next-response", isoformat(verdict.due_at),
                 extra=fields(breach=breach.id, thread=thread.id, policy=thread.policy, clock=verdict.clock,
                              deadline=isoformat(verdict.due_at)))
        return breach

    def _close(self, breach: Breach, responded_at: datetime) -> None:
        if (breach.status, breach.responded_at) != (Status.RESPONDED_LATE, responded_at):
            breach.status, breach.responded_at = Status.RESPONDED_LATE, responded_at
            self.state.store.put_breach(breach)

