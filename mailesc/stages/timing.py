"""A thread's clock: started by its first customer message under the first rule that matches it; a thread its
policy cannot time (a calendar that never opens) is kept without a clock, flagged, and timed again when the
policies change."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from mailesc import sla
from mailesc.clock import isoformat
from mailesc.errors import ParseError, SourceError
from mailesc.logs import detail
from mailesc.model import Message, RawMessage, Thread, ThreadMessage
from mailesc.parse import parse_message
from mailesc.stages.state import CycleReport, MailboxState

if TYPE_CHECKING:
    from mailesc.sources import Source

log = logging.getLogger("mailesc.cycle")  # the stages log as the cycle always did (a contract of the log lines)


class Timing:
    def __init__(self, state: MailboxState, source: Source):
        self.state, self.source = state, source
        self._untimed_logged: set[str | None] = set()

    def start_clock(self, thread: Thread, message: Message, report: CycleReport | None = None) -> None:
        if thread.breach_ids:
            return  # the clock already ran out; what was recorded stands
        rule = self.state.policies.first_match(message)
        thread.policy, thread.due_at, thread.clock_error = (rule.name if rule else None), None, None
        if rule is None:
            log.info("thread %s: no rule matches, no clock", thread.id, extra=detail(thread=thread.id))
            return
        try:
            thread.due_at = rule.calendar.add(message.arrived, rule.first_response)
        except ValueError as error:  # a calendar that never opens: the policy's problem, not the message's
            self.cannot_time(thread, error, report)
            return
        log.info("thread %s: clock started, rule %s, first response due %s", thread.id, rule.name,
                 isoformat(thread.due_at), extra=detail(thread=thread.id, policy=rule.name,
                                                        deadline=isoformat(thread.due_at)))

    def cannot_time(self, thread: Thread, error: Exception, report: CycleReport | None) -> None:
        """Keep the thread (and its message) without a clock, flagged for `status`; it is timed again when the
        policies change. Logged once per rule, not once per message."""
        thread.clock_error = str(error)
        self.state.store.put_thread(thread)
        if report is not None:
            report.untimed += 1
        if thread.policy not in self._untimed_logged:
            self._untimed_logged.add(thread.policy)
            log.error("policy %s cannot time a thread (%s): it is kept without a clock until the policy is fixed "
                      "(mailesc policies check; mailesc status counts such threads)", thread.policy, error)

    def retime(self, now: datetime) -> None:
        """Time again the threads their policy could not time, with the policies as they are now: their first
        customer message is read again and matched afresh (by the rule's name if the mailbox cannot give it)."""
        store = self.state.store
        threads = store.untimed_threads()
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
                self.start_clock(thread, message)
            else:
                self._time_by_name(thread, first)
            if thread.clock_error is None:
                log.info("a thread its policy could not time before is timed again (policy %s)", thread.policy)
            elif thread.clock_error == before:
                continue
            self.keep_response_hours(thread)
            store.put_thread(thread)
            self.state.agenda.changed(thread.id)

    def keep_response_hours(self, thread: Thread) -> None:
        """The first response's business hours, kept on the thread for reports (computed once, when it is
        answered or its first customer message or policy changes, instead of per thread at every report)."""
        try:
            thread.response_hours = sla.response_hours(thread, self.state.policies.get(thread.policy))
        except ValueError:  # a calendar that cannot count: the report counts it itself
            thread.response_hours = None

    def _reparse(self, first: ThreadMessage, data: bytes | None, now: datetime) -> Message | None:
        if data is None:
            return None
        try:
            return parse_message(RawMessage(key=first.key, folder=first.folder, data=data, arrived=first.arrived), now,
                                 self.state.store.name)
        except ParseError:
            return None

    def _time_by_name(self, thread: Thread, first: ThreadMessage) -> None:
        rule = self.state.policies.get(thread.policy)
        if rule is None:
            return  # the rule is gone and the message cannot be read: it stays flagged
        try:
            thread.due_at, thread.clock_error = rule.calendar.add(first.arrived, rule.first_response), None
        except ValueError as error:
            self.cannot_time(thread, error, None)
