"""The outbox: escalations recorded in the store (status pending) are rendered and handed to the transport.

A record is written before its mail is sent and marked after, so a crash in between resends the same
Message-ID instead of losing the escalation. Temporary failures stay pending and are retried next cycle."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

import mailparser

from mailesc.clock import isoformat
from mailesc.durations import format_duration
from mailesc.errors import PartiallyRefused, PermanentTransportError, SourceError
from mailesc.model import Breach, Delivery, EscalationRecord, Kind, Thread
from mailesc.parse import clean
from mailesc.render import ATTACHMENT_BUDGET, Attachment, OutgoingMail, Templates, build_mail

log = logging.getLogger("mailesc.outbox")
logging.getLogger("mailparser").setLevel(logging.ERROR)  # it warns about every MIME part it skips
EXCERPT_CHARS = 600


@dataclass(frozen=True)
class Delivered:
    sent: int = 0
    failed: int = 0  # refused for good
    waiting: int = 0  # still pending: retried next cycle
    last_error: str | None = None


class Outbox:
    def __init__(self, store, source, transport, templates: Templates, sender: str):
        self.store, self.source, self.transport, self.templates = store, source, transport, templates
        self.sender = sender

    def pending(self) -> list[tuple[Breach, EscalationRecord]]:
        return [(breach, record) for breach in self.store.breaches.values()
                for record in breach.escalations if record.delivery is Delivery.PENDING]

    def deliver(self, now: datetime) -> Delivered:
        """Send every pending escalation once; what could not be sent stays pending for the next cycle."""
        pending = self.pending()
        mails = {}
        for breach, record in pending:
            try:
                mails[record.message_id] = self._compose(breach, record, now)
            except Exception as error:  # one thread's odd message must not hold back the other escalations
                record.error = f"could not compose the mail: {type(error).__name__}: {error}"
                self.store.put_breach(breach)
                log.error("escalation %s for %s not composed, will retry: %s", record.message_id, breach.thread,
                          record.error)
                log.debug("composing %s failed", record.message_id, exc_info=True)
        results = self.transport.send(list(mails.values())) if mails else {}
        for breach, record in pending:
            if record.message_id in results:
                self._mark(breach, record, results[record.message_id], now)
        return Delivered(
            sent=sum(1 for _, r in pending if r.delivery is Delivery.SENT),
            failed=sum(1 for _, r in pending if r.delivery is Delivery.FAILED),
            waiting=sum(1 for _, r in pending if r.delivery is Delivery.PENDING),
            last_error=next((r.error for _, r in reversed(pending) if r.delivery is Delivery.PENDING), None),
        )

    def _mark(self, breach: Breach, record: EscalationRecord, error: Exception | None, now: datetime) -> None:
        if error is None or isinstance(error, PartiallyRefused):
            record.delivery, record.sent_at, record.error = Delivery.SENT, now, str(error) if error else None
            log.info("escalated %s (level %d) to %s as %s", breach.thread, record.level, ", ".join(record.to),
                     record.message_id)
        elif isinstance(error, PermanentTransportError):
            record.delivery, record.error = Delivery.FAILED, str(error)
            log.error("escalation %s failed for good: %s", record.message_id, error)
        else:
            record.error = str(error)
            log.warning("escalation %s not sent yet, will retry: %s", record.message_id, error)
        self.store.put_breach(breach)

    def _compose(self, breach: Breach, record: EscalationRecord, now: datetime) -> OutgoingMail:
        thread = self.store.threads[breach.thread]
        messages = [m for m in thread.sorted_messages() if m.kind is not Kind.OWN]
        omitted: list[str] = []
        try:
            raws = self.source.fetch([m.key for m in messages])
        except SourceError as error:
            raws = {}
            omitted.append(f"the thread's messages could not be fetched from the mailbox ({error})")
        attachments, size = [], 0
        for number, message in enumerate(messages, start=1):
            data = raws.get(message.key)
            if data is None:
                omitted.append(f"message {number} ({message.message_id}) is no longer in the mailbox")
            elif size + len(data) > ATTACHMENT_BUDGET:
                omitted.append(f"message {number} ({message.message_id}, {len(data)} bytes) is too large to attach")
            else:
                size += len(data)
                attachments.append(Attachment(f"{number:02d}-{message.kind}.eml", data))
        first = thread.first_customer_message()
        context = escalation_context(thread, breach, record, now, raws.get(first.key) if first else None, omitted)
        subject, text, html = self.templates.render(record.template, context)
        return build_mail(
            sender=self.sender, to=record.to, subject=subject, text=text, html=html,
            message_id=record.message_id, references=[thread.id] + [m.message_id for m in messages[-20:]
                                                                     if m.message_id != thread.id],
            date=now, attachments=attachments,
            headers={"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All",
                     "X-Mailesc": f"escalation; level={record.level}; breach={breach.id}"},
        )


def escalation_context(thread: Thread, breach: Breach, record: EscalationRecord, now: datetime,
                       first_raw: bytes | None, omitted: list[str]) -> dict:
    """Everything a template may use. Times are ISO 8601 strings with offset."""
    excerpt, defects = body_excerpt(first_raw)
    first = thread.first_customer_message()
    return {
        "customer": breach.customer,
        "customer_name": first.name if first else "",
        "subject": breach.subject,
        "policy": breach.policy,
        "received": isoformat(breach.received_at),
        "due": isoformat(breach.due_at),
        "overdue_by": format_duration(now - breach.due_at),
        "level": record.level,
        "recipients": list(record.to),
        "excerpt": excerpt,
        "defects": defects,
        "thread": thread.id,
        "breach_id": breach.id,
        "messages": [{"from": m.sender, "subject": m.subject, "arrived": isoformat(m.arrived), "kind": str(m.kind)}
                     for m in thread.sorted_messages() if m.kind is not Kind.OWN],
        "omitted": omitted,
        "now": isoformat(now),
    }


def body_excerpt(raw: bytes | None) -> tuple[str, list[str]]:
    """A short plain-text excerpt of a message body, and the MIME defects mail-parser found in it."""
    if raw is None:
        return "(the message body is not available)", []
    try:
        parsed = mailparser.parse_from_bytes(raw)
        text = "\n".join(parsed.text_plain) or _strip_tags("\n".join(parsed.text_html))
        defects = sorted(parsed.defects_categories)
    except Exception as error:  # mail-parser raises many kinds on broken MIME; the escalation must still go out
        return f"(the message body could not be decoded: {type(error).__name__})", []
    lines = [clean(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith(">")]
    excerpt = "\n".join(lines)
    return (excerpt[:EXCERPT_CHARS].rstrip() + " ...") if len(excerpt) > EXCERPT_CHARS else excerpt, defects


def _strip_tags(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style).*?</\1>", " ", html))
