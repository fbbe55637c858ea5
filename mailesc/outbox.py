"""The outbox: mails recorded in the store (escalations on breaches; warnings and acknowledgements on threads)
are rendered and handed to the transport, many escalations at once as one digest.

A record is written before its mail is sent and settled after, so a crash in between resends the same mail
with the same Message-ID instead of losing it. Temporary failures stay pending and are retried with backoff."""

from __future__ import annotations

import hashlib
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from mailesc.clock import isoformat
from mailesc.humane import format_span, human_time
from mailesc.errors import LeaseLost, PartiallyRefused, PermanentTransportError, SourceError
from mailesc.logs import fields
from mailesc.model import Breach, Delivery, EscalationRecord, Kind, Notice, Thread, ThreadMessage
from mailesc.parse import clean
from mailesc.signing import signed_marker
from mailesc.render import ATTACHMENT_BUDGET, Attachment, ComposeError, OutgoingMail, Templates, build_mail

log = logging.getLogger("mailesc.outbox")
logging.getLogger("mailparser").setLevel(logging.ERROR)  # it warns about every MIME part it skips
EXCERPT_CHARS = 600
QUOTE_LIMIT = 5 * 1024 * 1024  # a first message larger than this is not fetched just to quote its start
RETRY_FIRST, RETRY_MOST = timedelta(seconds=30), timedelta(minutes=30)
DIGEST_AFTER = 5  # more escalations than this to the same recipients at once go out as one digest


@dataclass(frozen=True)
class Delivered:
    mails: int = 0  # mails the server accepted (a digest is one mail for many records)
    sent: int = 0  # records (escalation levels, warnings, acknowledgements) that went out
    failed: int = 0  # refused for good
    waiting: int = 0  # still pending (tried now or inside their retry pause): retried later
    last_error: str | None = None


@dataclass
class _Pending:
    """A recorded mail not yet accepted by the server, with the records it belongs to."""

    record: EscalationRecord | Notice
    thread: Thread
    breach: Breach | None = None  # for escalations

    @property
    def what(self) -> str:
        return f"level {self.record.level} escalation" if self.breach else self.record.kind


class Outbox:
    def __init__(self, store, source, transport, templates: Templates, sender: str, reply_to: str = "",
                 digest_after: int = DIGEST_AFTER, durable: bool = True, secret: bytes = b"", policies=None,
                 zone: tzinfo | None = None):
        self.store, self.source, self.transport, self.templates = store, source, transport, templates
        self.policies = policies  # rule order (digest order) and each rule's calendar zone (times in mails)
        self.zone = zone  # [templates] timezone: every mail's times in this zone instead of the calendar's
        self.secret = secret  # signs the X-Mailesc marker, so that nobody else can write one that counts
        self.sender, self.reply_to, self.digest_after, self.durable = sender, reply_to, digest_after, durable
        self._waiting: set[tuple[str, int | None]] = set()
        self.rescan()

    def rescan(self) -> None:
        """Find every unsent record in the store (at start, and after an admin's request put some back): where
        they are is kept, so that a cycle does not walk every breach and thread to find them."""
        self._waiting = {
            (breach.thread, breach.id) for breach in self.store.breaches.values()
            if any(r.delivery is Delivery.PENDING for r in breach.escalations)} | {
            (thread.id, None) for thread in self.store.threads.values()
            if any(n.delivery is Delivery.PENDING for n in thread.notices)}

    def expect(self, thread: Thread, breach: Breach | None = None) -> None:
        """A record was added to `breach` (an escalation) or to `thread` (a notice): send it."""
        self._waiting.add((thread.id, breach.id if breach else None))

    def commit(self) -> None:
        """Write the records to disk now (a replay, which nobody can resend, skips this)."""
        if self.durable:
            self.store.flush()

    def pending(self, now: datetime | None = None) -> list[_Pending]:
        """Mails recorded and not yet accepted; with `now`, only those whose retry time has come."""
        return [item for item in self._unsent() if now is None or item.record.retry_at is None
                or item.record.retry_at <= now]

    def next_retry(self) -> datetime | None:
        return min((item.record.retry_at for item in self._unsent() if item.record.retry_at), default=None)

    def _unsent(self) -> list[_Pending]:
        unsent = []
        for thread_id, breach_id in sorted(self._waiting, key=lambda key: (key[1] is None, key[1] or 0, key[0])):
            thread = self.store.threads.get(thread_id)
            breach = self.store.breaches.get(breach_id) if breach_id is not None else None
            if thread is None or (breach_id is not None and breach is None):
                records = []  # archived
            else:
                records = breach.escalations if breach else thread.notices
            found = [_Pending(r, thread, breach) for r in records if r.delivery is Delivery.PENDING]
            if not found:
                self._waiting.discard((thread_id, breach_id))  # everything there was sent or failed for good
            unsent += found
        return unsent

    def deliver(self, now: datetime) -> Delivered:
        """Send every pending mail once; what could not be sent stays pending for the next cycle.

        Write-ahead: before a mail goes out, its records are marked as tried (and tied to their digest) and
        committed; after the server accepts it, they are marked sent and committed again. A crash in between
        resends the very same mail, with the same Message-ID."""
        pending = self.pending(now)
        planned = self._envelopes(pending)
        if planned:
            log.debug("sending %d mail(s) for %d record(s)", len(planned), len(pending))
        envelopes = {mail_id: items for mail_id, items, _ in planned}
        digests = {mail_id for mail_id, _, is_digest in planned if is_digest}
        mails = {}
        for mail_id, items in envelopes.items():
            try:
                mails[mail_id] = (self._digest(mail_id, items, now) if mail_id in digests
                                  else self._compose(items[0], now))
            except Exception as error:  # one thread's odd message must not hold back the other mails
                self._not_composed(mail_id, items, error)
        for mail_id in mails:
            for item in envelopes[mail_id]:
                item.record.attempts += 1
                if item.breach:
                    item.record.digest = mail_id if mail_id in digests else None
                self._save(item)
        self.commit()
        if mails and not self.store.may_send():  # a worker frozen after the commit, whose lease ran out meanwhile
            raise LeaseLost(f"the lease of mailbox {self.store.name!r} ran out before its mails were sent: the "
                            f"worker that holds it now sends them, with the same Message-IDs")

        def settle(mail_id: str, error: Exception | None) -> None:
            for item in envelopes[mail_id]:
                self._mark(item, error, now)
            self.commit()

        results = self.transport.send(list(mails.values()), settle) if mails else {}
        records = [item.record for item in pending]
        waiting = [item.record for item in self.pending()]  # also those still inside their retry pause
        return Delivered(
            mails=sum(1 for error in results.values() if error is None or isinstance(error, PartiallyRefused)),
            sent=sum(1 for r in records if r.delivery is Delivery.SENT),
            failed=sum(1 for r in records if r.delivery is Delivery.FAILED),
            waiting=len(waiting),
            last_error=next((r.error for r in reversed(records) if r.delivery is Delivery.PENDING),
                            next((r.error for r in waiting if r.error), None)),
        )

    def _envelopes(self, pending: list[_Pending]) -> list[tuple[str, list[_Pending], bool]]:
        """(Message-ID, items, is a digest) per mail to send. Storm control: more than `digest_after` fresh
        escalations to the same recipients go out as one digest listing them all. A mail tried before goes
        out again exactly as it was: alone with its own Message-ID, or in the same digest."""
        again: dict[str, list[_Pending]] = {}
        fresh: dict[tuple[str, ...], list[_Pending]] = {}
        singles = []
        for item in pending:
            if item.breach and item.record.digest:
                again.setdefault(item.record.digest, []).append(item)
            elif item.breach and item.record.attempts == 0:
                fresh.setdefault(tuple(sorted(item.record.to)), []).append(item)
            else:
                singles.append(item)
        for items in fresh.values():
            if len(items) > self.digest_after:
                again[digest_message_id(items, self.sender)] = items
            else:
                singles += items
        return [(item.record.message_id, [item], False) for item in singles] + [
            (mail_id, items, True) for mail_id, items in again.items()]

    def _zone_of(self, thread: Thread) -> tzinfo:
        """Where times in a mail about `thread` are told: [templates] timezone, else its rule's calendar zone."""
        rule = self.policies.get(thread.policy) if self.policies is not None and thread.policy else None
        return self.zone or (rule.calendar.zone if rule else timezone.utc)

    def _priority(self, policy: str | None) -> int:
        """A rule's place in the policies (the first rule is the most important); unknown rules last."""
        names = [rule.name for rule in self.policies.rules] if self.policies is not None else []
        return names.index(policy) if policy in names else len(names)

    def _digest(self, mail_id: str, items: list[_Pending], now: datetime) -> OutgoingMail:
        """One mail listing many escalations: by policy priority (rule order), then the most overdue first."""
        escalations = []
        ordered = sorted(items, key=lambda item: (self._priority(item.thread.policy), item.breach.due_at,
                                                  item.breach.id))
        for item in ordered:
            context = thread_context(item.thread, now, None, [], breach=item.breach, zone=self._zone_of(item.thread))
            context.update(level=item.record.level, breach_id=item.breach.id)
            escalations.append(context)
        recipients = list(items[0].record.to)
        zone = self.zone or (self._zone_of(items[0].thread) if len({self._zone_of(i.thread) for i in items}) == 1
                             else timezone.utc)
        subject, text, html = self.templates.render("digest", {"escalations": escalations, "count": len(items),
                                                              "recipients": recipients,
                                                              "now": human_time(now, zone, now),
                                                              "now_iso": isoformat(now)})
        headers = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All",
                   "X-Mailesc": signed_marker(self.secret, f"digest; escalations={len(items)}", mail_id)}
        if self.reply_to:
            headers["Reply-To"] = self.reply_to
        return build_mail(sender=self.sender, to=recipients, subject=subject, text=text, html=html,
                          message_id=mail_id, references=[item.record.message_id for item in items][:50], date=now,
                          headers=headers, attachments=[])

    def _mark(self, item: _Pending, error: Exception | None, now: datetime) -> None:
        record = item.record
        if error is None or isinstance(error, PartiallyRefused):
            record.delivery, record.sent_at, record.error = Delivery.SENT, now, str(error) if error else None
            record.retry_at = None
            log.info("sent the %s for %s to %s as %s", item.what, _naming(item),
                     "the customer" if _to_customer(item) else ", ".join(record.to), record.message_id,
                     extra=_fields(item))
        elif isinstance(error, PermanentTransportError):
            record.delivery, record.error = Delivery.FAILED, str(error)
            log.error("the %s %s failed for good: %s", item.what, record.message_id, _loggable(item, error),
                      extra=_fields(item))
        else:
            self._retry_later(item, str(error), now)
            log.warning("the %s %s is not sent yet, will retry at %s: %s", item.what, record.message_id,
                        isoformat(record.retry_at), _loggable(item, error), extra=_fields(item))
            return
        self._save(item)

    def _not_composed(self, mail_id: str, items: list[_Pending], error: Exception) -> None:
        """A mail that cannot be composed fails for good, with the reason: trying again composes the same
        mail from the same records and fails the same way (it stayed pending for ever before). `status`
        shows it; `breaches resend` tries again once the cause (a template, say) is fixed. The reason never
        quotes the exception's text, which may hold what the customer wrote."""
        reason = str(error) if isinstance(error, ComposeError) else f"{type(error).__name__} while composing"
        for item in items:
            item.record.attempts += 1
            item.record.delivery, item.record.error = Delivery.FAILED, f"could not compose the mail: {reason}"
            item.record.retry_at = None
            self._save(item)
        log.error("the mail %s could not be composed and is recorded as failed: %s", mail_id, reason)

    def _retry_later(self, item: _Pending, error: str, now: datetime) -> None:
        record = item.record
        record.error = error
        record.retry_at = retry_time(record.attempts, now)
        self._save(item)

    def _save(self, item: _Pending) -> None:
        self.store.put_breach(item.breach) if item.breach else self.store.put_thread(item.thread)

    def _compose(self, item: _Pending, now: datetime) -> OutgoingMail:
        thread, record = item.thread, item.record
        messages = [m for m in thread.sorted_messages() if m.kind is not Kind.OWN]
        first = thread.first_customer_message()
        omitted: list[str] = []
        chosen = _within_budget(messages, omitted) if item.breach else {}  # only escalations attach the thread
        opener = clock_opener(thread, item.breach)  # the customer message whose clock ran out
        answer = (team_answers(thread, opener)[-1:] or [None])[0]  # what the team said last before it
        quote = opener if opener and opener.size <= QUOTE_LIMIT else None
        if opener and not quote:
            omitted.append(f"the {'first' if opener is first else 'new'} message ({opener.size} bytes) "
                           f"is too large to quote")
        wanted = {m.key for m in chosen.values()} | {m.key for m in (quote, answer) if m and m.size <= QUOTE_LIMIT}
        try:
            raws = self.source.fetch(wanted)
        except SourceError as error:
            raws = None
            omitted.append(f"the thread's messages could not be fetched from the mailbox ({error})")
        attachments = _attachments(chosen, raws, omitted) if raws is not None else []
        context = thread_context(thread, now, raws.get(quote.key) if raws and quote else None, omitted,
                                 breach=item.breach, zone=self._zone_of(thread),
                                 answer_raw=raws.get(answer.key) if raws and answer else None)
        context["recipients"] = list(record.to)
        references = [thread.id] + [m.message_id for m in messages[-20:] if m.message_id != thread.id]
        marker = record.kind if not item.breach else f"escalation; level={record.level}; breach={item.breach.id}"
        headers = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All",
                   "X-Mailesc": signed_marker(self.secret, marker, record.message_id)}
        envelope_sender = None
        if item.breach:
            context.update(level=record.level, breach_id=item.breach.id)
        elif record.kind == "ack":  # to the customer: an RFC 3834 auto-reply, with a null envelope sender
            references = list(dict.fromkeys([thread.id, first.message_id]))
            headers["Auto-Submitted"], envelope_sender = "auto-replied", ""
            headers["X-Mailesc"] = marker  # never a signature the customer could copy onto a mail of theirs
        else:
            context.update(time_left=format_span(max(thread.due_at - now, timedelta(0))))
        if self.reply_to:
            headers["Reply-To"] = self.reply_to
        subject, text, html = self.templates.render(record.template, context)
        return build_mail(sender=self.sender, to=record.to, subject=subject, text=text, html=html,
                          message_id=record.message_id, references=references, date=now, attachments=attachments,
                          headers=headers, envelope_sender=envelope_sender)


def _naming(item: _Pending) -> str:
    return f"breach {item.breach.id} (thread {item.thread.id})" if item.breach else f"thread {item.thread.id}"


def _to_customer(item: _Pending) -> bool:
    return item.breach is None and item.record.kind == "ack"


def _loggable(item: _Pending, error: Exception) -> str:
    """A delivery error for the log: a server's refusal of an acknowledgement names the customer's address."""
    text = str(error)
    for address in item.record.to if _to_customer(item) else ():
        text = re.sub(re.escape(address), "the customer", text, flags=re.IGNORECASE)
    return text


def _fields(item: _Pending) -> dict:
    """The structured fields of a delivery line: ids only (an acknowledgement's recipient is a customer)."""
    values = {"thread": item.thread.id, "mail": item.record.message_id,
              "kind": "escalation" if item.breach else item.record.kind}
    if item.breach:
        values.update(breach=item.breach.id, escalation_level=item.record.level)
    return fields(**values)


def retry_time(attempts: int, now: datetime) -> datetime:
    """Back off after `attempts` failed tries: 30 s after the first, doubling up to 30 minutes.

    The number of doublings is capped before the power is taken: 2 ** (attempts - 1) itself overflows a
    timedelta at the 43rd try, and that error would then fail every cycle and stop all mail."""
    doublings = min(max(attempts - 1, 0), _DOUBLINGS_TO_MOST)
    return now + min(RETRY_FIRST * 2 ** doublings, RETRY_MOST)


_DOUBLINGS_TO_MOST = math.ceil(math.log2(RETRY_MOST / RETRY_FIRST))  # 6: 30 s * 64 is past 30 minutes


def digest_message_id(items: list[_Pending], sender: str) -> str:
    """Stable for the same escalations, so a retried digest keeps its Message-ID."""
    digest = hashlib.sha256(" ".join(sorted(item.record.message_id for item in items)).encode()).hexdigest()[:20]
    domain = sender.rpartition("@")[2].rstrip(">") or "mailesc.invalid"
    return f"<mailesc.digest.{digest}@{domain}>"


def _within_budget(messages: list[ThreadMessage], omitted: list[str]) -> dict[int, ThreadMessage]:
    """Number -> message to attach, oldest first, within the attachment budget by their known sizes (so a
    huge message is never fetched just to be left out); what is left out is said."""
    chosen, size = {}, 0
    for number, message in enumerate(messages, start=1):
        if size + message.size > ATTACHMENT_BUDGET:
            omitted.append(f"message {number} ({message.message_id}, {message.size} bytes) is too large to attach")
        else:
            size += message.size
            chosen[number] = message
    return chosen


def _attachments(chosen: dict[int, ThreadMessage], raws: dict[str, bytes], omitted: list[str]) -> list[Attachment]:
    attachments = []
    for number, message in chosen.items():
        if message.key in raws:
            attachments.append(Attachment(f"{number:02d}-{message.kind}.eml", raws[message.key]))
        else:
            omitted.append(f"message {number} ({message.message_id}) is no longer in the mailbox")
    return attachments


def clock_opener(thread: Thread, breach: Breach | None) -> ThreadMessage | None:
    """The customer message that started the clock a mail is about: the first one, or for a next-response
    breach the customer's new message after the team's answer."""
    first = thread.first_customer_message()
    if breach is None or not breach.clock:
        return first
    return next((m for m in thread.sorted_messages() if m.kind is Kind.CUSTOMER and m.arrived == breach.received_at),
                first)


def team_answers(thread: Thread, before: ThreadMessage | None) -> list[ThreadMessage]:
    """The team's answers to the customer before `before` arrived, oldest first."""
    return [m for m in thread.sorted_messages() if m.kind is Kind.TEAM and before and m.arrived < before.arrived]


def thread_context(thread: Thread, now: datetime, first_raw: bytes | None, omitted: list[str], *,
                   breach: Breach | None = None, zone: tzinfo | None = None, answer_raw: bytes | None = None) -> dict:
    """What every template may use. Times are in a human form in `zone` (`Mon 21 Dec 11:00 CET`), with an
    ISO 8601 twin (`received_iso`, ...) for whoever needs one; durations are `2h 05m`. For an escalation,
    `received` and `due` are those of the clock that broke (`clock`: first_response or next_response), and
    `answers` are what the team already wrote before the customer's message that started it."""
    zone = zone or timezone.utc
    first = thread.first_customer_message()
    opener = clock_opener(thread, breach)
    due = breach.due_at if breach else thread.due_at
    answers = team_answers(thread, opener)
    excerpt, defects = body_excerpt(first_raw)
    answer_excerpt = body_excerpt(answer_raw)[0] if answers else None

    def when(moment: datetime | None) -> str | None:
        return human_time(moment, zone, now)

    return {
        "customer": first.sender if first else "",
        "customer_name": first.name if first else "",
        "subject": first.subject if first else thread.subject,
        "policy": thread.policy,
        "clock": "next_response" if breach and breach.clock else "first_response",
        "received": when(opener.arrived) if opener else None,
        "received_iso": isoformat(opener.arrived) if opener else None,
        "first_received": when(first.arrived) if first else None,
        "due": when(due),
        "due_iso": isoformat(due),
        "overdue_by": format_span(now - due) if breach and due else None,
        "waiting_for": format_span(now - opener.arrived) if opener else None,
        "excerpt": excerpt,
        "defects": defects,
        "answers": [{"from": m.sender, "name": m.name, "arrived": when(m.arrived), "subject": m.subject}
                    for m in answers],
        "last_answer_excerpt": answer_excerpt,
        "thread": thread.id,
        "messages": [{"from": m.sender, "subject": m.subject, "arrived": when(m.arrived),
                      "arrived_iso": isoformat(m.arrived), "kind": str(m.kind)}
                     for m in thread.sorted_messages() if m.kind is not Kind.OWN],
        "omitted": omitted,
        "now": when(now),
        "now_iso": isoformat(now),
        "timezone": human_time(now, zone).rsplit(" ", 1)[-1],
    }


def body_excerpt(raw: bytes | None) -> tuple[str, list[str]]:
    """A short plain-text excerpt of a message body, paragraphs kept (one empty line between them, quoted
    lines left out), and the MIME defects mail-parser found in it."""
    if raw is None:
        return "(the message body is not available)", []
    import mailparser  # loads slowly: only when an escalation quotes a message

    try:
        parsed = mailparser.parse_from_bytes(raw)
        text = "\n".join(parsed.text_plain) or _strip_tags("\n".join(parsed.text_html))
        defects = sorted(parsed.defects_categories)
    except Exception as error:  # mail-parser raises many kinds on broken MIME; the escalation must still go out
        return f"(the message body could not be decoded: {type(error).__name__})", []
    paragraphs, lines = [], []
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue
        if line.strip():
            lines.append(clean(line))
        elif lines:
            paragraphs.append("\n".join(lines))
            lines = []
    if lines:
        paragraphs.append("\n".join(lines))
    excerpt = "\n\n".join(paragraphs)
    return (excerpt[:EXCERPT_CHARS].rstrip() + " ...") if len(excerpt) > EXCERPT_CHARS else excerpt, defects


def _strip_tags(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style).*?</\1>", " ", html))
