"""The outbox: the one send loop for every mail mailesc sends. The mails queued in a box (QueuedMail records:
escalations on breaches; warnings and acknowledgements on threads; storm-control and daily digests in the box's
`outgoing` table) are composed (compose.py) and handed to the transport, many fresh escalations to the same
recipients at once as one storm-control digest.

Write-ahead, for every kind alike: pending → attempts + 1 → commit → may_send() → send → settle (sent, failed
for good, or retried with backoff) → commit. A crash in between resends the same mail with the same Message-ID
instead of losing it or writing another."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from datetime import datetime, timedelta, tzinfo

from mailesc.clock import isoformat
from mailesc.compose import Composer, digest_message_id, webhook_post
from mailesc.errors import LeaseLost, PartiallyRefused, PermanentTransportError, TemporaryTransportError
from mailesc.logs import fields
from mailesc.model import Delivery, MailKind, OutgoingMail, QueuedMail, WebhookPost
from mailesc.queue import Queued
from mailesc.render import ComposeError, Templates

if TYPE_CHECKING:
    from mailesc.notifiers import Notifier
    from mailesc.repository import MailboxStore
    from mailesc.sources import Source
    from mailesc.transports import Transport

log = logging.getLogger("mailesc.outbox")
RETRY_FIRST, RETRY_MOST = timedelta(seconds=30), timedelta(minutes=30)
DIGEST_AFTER = 5  # more escalations than this to the same recipients at once go out as one digest


@dataclass(frozen=True)
class Delivered:
    mails: int = 0  # mails the server accepted (a digest is one mail for many records)
    sent: int = 0  # records (escalation levels, warnings, acknowledgements, daily digests) that went out
    failed: int = 0  # refused for good
    waiting: int = 0  # still pending (tried now or inside their retry pause): retried later
    last_error: str | None = None
    posts: int = 0  # webhook posts the receivers took (counted apart: sent, failed and waiting count mails only)


_NOT_MAILS = (MailKind.DIGEST, MailKind.WEBHOOK)  # a digest: its members count; a post is no mail


@dataclass
class _Envelope:
    """One mail to send: the record whose Message-ID it has, and the records it settles (its members: for a
    storm-control digest the escalations it lists, and the digest's own record; else the record alone)."""

    record: Queued
    members: list[Queued] = field(default_factory=list)

    @property
    def is_digest(self) -> bool:
        return self.record.mail.kind == MailKind.DIGEST

    @property
    def settled(self) -> list[Queued]:
        return self.members + [self.record] if self.is_digest else self.members


Compose = Callable[[QueuedMail, datetime], OutgoingMail]


class Outbox:
    def __init__(self, store: MailboxStore, source: Source | None, transport: Transport, templates: Templates,
                 sender: str, reply_to: str = "",
                 digest_after: int = DIGEST_AFTER, durable: bool = True, secret: bytes = b"", policies=None,
                 zone: tzinfo | None = None, composers: dict[str, Compose] | None = None,
                 notifier: Notifier | None = None):
        """`composers`: how mails of other kinds are composed (kind -> function of the record and the time; the
        daily digest's comes from daily.py). `notifier`: what posts the levels' webhook posts (None: they fail)."""
        self.notifier = notifier
        self.store, self.source, self.transport = store, source, transport
        # policies: rule order (digest order) and each rule's calendar zone (times in mails); zone: [templates]
        # timezone, every mail's times in it instead of the calendar's; secret: signs the X-Mailesc marker
        self.composer = Composer(templates, sender, reply_to, secret, policies, zone)
        self.composers = dict(composers or {})
        self.sender, self.digest_after, self.durable = sender, digest_after, durable

    def rescan(self) -> None:
        """Look for unsent mails again (an admin's request put some back)."""
        self.store.requeue()

    def commit(self) -> None:
        """Write the records to disk now (a replay, which nobody can resend, skips this)."""
        if self.durable:
            self.store.flush()

    def pending(self, now: datetime | None = None) -> list[Queued]:
        """Mails recorded and not yet accepted; with `now`, only those whose retry time has come."""
        return [item for item in self._unsent() if now is None or item.mail.retry_at is None
                or item.mail.retry_at <= now]

    def next_retry(self) -> datetime | None:
        return min((item.mail.retry_at for item in self._unsent() if item.mail.retry_at), default=None)

    def _unsent(self) -> list[Queued]:
        return self.store.pending_mails()

    def deliver(self, now: datetime) -> Delivered:
        """Send every pending mail once; what could not be sent stays pending for the next cycle.

        Write-ahead: before a mail goes out, its records are marked as tried (escalations tied to their digest,
        whose own record is queued too) and committed; after the server accepts it, they are marked sent and
        committed again. A crash in between resends the very same mail, with the same Message-ID."""
        unsent = self._unsent()
        pending = [item for item in unsent if item.mail.retry_at is None or item.mail.retry_at <= now]
        planned = self._envelopes(pending, now)
        if planned:
            log.debug("sending %d mail(s) for %d record(s)", len(planned), len(pending))
        envelopes = {envelope.record.mail.message_id: envelope for envelope in planned}
        mails: dict[str, OutgoingMail | WebhookPost] = {}
        for mail_id, envelope in envelopes.items():
            try:
                mails[mail_id] = self._compose(envelope, now)
            except Exception as error:  # one thread's odd message must not hold back the other mails
                self._not_composed(mail_id, envelope.settled, error)
        for mail_id in mails:
            envelope = envelopes[mail_id]
            for item in envelope.settled:
                item.mail.attempts += 1
                if item.breach:
                    item.mail.digest = mail_id if envelope.is_digest else None
                self._save(item)
        self.commit()
        if mails and not self.store.may_send():  # a worker frozen after the commit, whose lease ran out meanwhile
            raise LeaseLost(f"the lease of mailbox {self.store.name!r} ran out before its mails were sent: the "
                            f"worker that holds it now sends them, with the same Message-IDs")

        def settle(mail_id: str, error: Exception | None) -> None:
            for item in envelopes[mail_id].settled:
                self._mark(item, error, now)
            self.commit()

        letters = [mail for mail in mails.values() if isinstance(mail, OutgoingMail)]
        results = self.transport.send(letters, settle) if letters else {}
        posted = 0
        for mail_id, post in mails.items():  # after the mails: a chat post never holds back a manager's mail
            if isinstance(post, WebhookPost):
                refused = self._post(post)
                posted += refused is None
                settle(mail_id, refused)
        records = [item.mail for item in pending if item.mail.kind not in _NOT_MAILS]
        waiting = [item.mail for item in (self.pending() if planned else unsent)  # also those inside their retry
                   if item.mail.kind not in _NOT_MAILS]  # pause (nothing planned: nothing changed since)
        return Delivered(
            mails=sum(1 for error in results.values() if error is None or isinstance(error, PartiallyRefused)),
            posts=posted,
            sent=sum(1 for r in records if r.delivery is Delivery.SENT),
            failed=sum(1 for r in records if r.delivery is Delivery.FAILED),
            waiting=len(waiting),
            last_error=next((r.error for r in reversed(records) if r.delivery is Delivery.PENDING),
                            next((r.error for r in waiting if r.error), None)),
        )

    def _envelopes(self, pending: list[Queued], now: datetime) -> list[_Envelope]:
        """The mails to send. Storm control: more than `digest_after` fresh escalations to the same recipients
        go out as one digest listing them all, queued as a mail of its own that covers them. A mail tried before
        goes out again exactly as it was: alone with its own Message-ID, or in the same digest."""
        again: dict[str, list[Queued]] = {}
        fresh: dict[tuple[str, ...], list[Queued]] = {}
        singles = []
        for item in pending:
            if item.mail.kind == MailKind.DIGEST:
                continue  # goes out with its escalations (below)
            if item.breach and item.mail.digest:
                again.setdefault(item.mail.digest, []).append(item)
            elif item.breach and item.mail.attempts == 0 and item.mail.kind != MailKind.WEBHOOK:  # never folded
                fresh.setdefault(tuple(sorted(item.mail.to)), []).append(item)
            else:
                singles.append(item)
        for items in fresh.values():
            if len(items) > self.digest_after:
                again[digest_message_id((i.mail.message_id for i in items), self.sender)] = items
            else:
                singles += items
        envelopes = [_Envelope(item, [item]) for item in singles]
        for mail_id, items in again.items():
            envelopes.append(_Envelope(Queued(self._digest_record(mail_id, items, now), None), items))
        self._settle_orphans(pending, set(again))
        return envelopes

    def _digest_record(self, mail_id: str, items: list[Queued], now: datetime) -> QueuedMail:
        """The queued record of a storm-control digest: the one on record (a retry, or a member put back by
        `breaches resend`), else a new one covering these escalations (an older mailesc kept none)."""
        record = self.store.outgoing.get(mail_id)
        if record is None:
            record = QueuedMail(kind=MailKind.DIGEST, message_id=mail_id, to=list(items[0].mail.to), at=now,
                                template="digest", covers=[item.mail.message_id for item in items])
            self.store.enqueue(record)
        elif record.delivery is not Delivery.PENDING:
            record.delivery, record.retry_at = Delivery.PENDING, None
        return record

    def _settle_orphans(self, pending: list[Queued], sending: set[str]) -> None:
        """A digest's record whose escalations are none of them waiting any more (they were put back to go
        elsewhere) has nothing left to send: it is closed, never sent empty."""
        if not any(item.mail.kind == MailKind.DIGEST for item in pending):
            return  # no digest's record waits: none to close (and no second listing of the unsent mails)
        waiting = {item.mail.digest for item in self._unsent() if item.breach and item.mail.digest}
        for item in pending:
            if item.mail.kind == MailKind.DIGEST and item.mail.message_id not in sending | waiting:
                item.mail.delivery = Delivery.FAILED
                item.mail.error = "none of its escalations waits for it any more"
                self._save(item)

    def _post(self, post: WebhookPost) -> Exception | None:
        """Hand a post to the notifier; what it raises (it should not) is a temporary failure, said by type."""
        if self.notifier is None:
            return PermanentTransportError(f"this process posts to no webhook (webhook {post.name})")
        try:
            return self.notifier.post(post)
        except Exception as error:  # its text might hold the URL: the type says enough
            return TemporaryTransportError(f"posting to webhook {post.name} failed: {type(error).__name__}")

    def _compose(self, envelope: _Envelope, now: datetime) -> OutgoingMail | WebhookPost:
        record = envelope.record.mail
        if record.kind == MailKind.WEBHOOK:
            item = envelope.record
            if item.breach is None or item.thread is None:
                raise ComposeError("a webhook post belongs to a breach")
            return webhook_post(record, item.breach, now, self.composer.zone_of(item.thread))
        if envelope.is_digest:
            members = [(item.thread, item.breach, item.mail.level or 0, item.mail.message_id)
                       for item in envelope.members if item.thread is not None and item.breach is not None]
            return self.composer.storm_digest(record.message_id, list(record.to), members, now)
        if record.kind in self.composers:
            return self.composers[record.kind](record, now)
        item = envelope.record
        if item.thread is None or self.source is None:  # the installation's outbox (daily digests) has no source
            raise ComposeError(f"no way to compose a mail of kind {record.kind!r}")
        return self.composer.thread_mail(kind=record.kind, message_id=record.message_id, to=record.to,
                                         template=record.template, thread=item.thread, now=now,
                                         fetch=self.source.fetch, breach=item.breach, level=record.level)

    def _mark(self, item: Queued, error: Exception | None, now: datetime) -> None:
        record = item.mail
        quiet = record.kind == MailKind.DIGEST  # its escalations say what became of it
        if error is None or isinstance(error, PartiallyRefused):
            record.delivery, record.sent_at, record.error = Delivery.SENT, now, str(error) if error else None
            record.retry_at = None
            if not quiet:
                log.info("sent the %s for %s to %s as %s", _what(item), _naming(item),
                         "the customer" if _to_customer(item) else ", ".join(record.to), record.message_id,
                         extra=_fields(item))
        elif isinstance(error, PermanentTransportError):
            record.delivery, record.error = Delivery.FAILED, str(error)
            if not quiet:
                log.error("the %s %s failed for good: %s", _what(item), record.message_id, _loggable(item, error),
                          extra=_fields(item))
        else:
            self._retry_later(item, str(error), now, getattr(error, "retry_after", None))
            if not quiet:
                log.warning("the %s %s is not sent yet, will retry at %s: %s", _what(item), record.message_id,
                            isoformat(record.retry_at), _loggable(item, error), extra=_fields(item))
            return
        self._save(item)

    def _not_composed(self, mail_id: str, items: list[Queued], error: Exception) -> None:
        """A mail that cannot be composed fails for good, with the reason: trying again composes the same
        mail from the same records and fails the same way (it stayed pending for ever before). `status`
        shows it; `breaches resend` tries again once the cause (a template, say) is fixed. The reason never
        quotes the exception's text, which may hold what the customer wrote."""
        reason = str(error) if isinstance(error, ComposeError) else f"{type(error).__name__} while composing"
        for item in items:
            item.mail.attempts += 1
            item.mail.delivery, item.mail.error = Delivery.FAILED, f"could not compose the mail: {reason}"
            item.mail.retry_at = None
            self._save(item)
        log.error("the mail %s could not be composed and is recorded as failed: %s", mail_id, reason)

    def _retry_later(self, item: Queued, error: str, now: datetime, retry_after: timedelta | None = None) -> None:
        record = item.mail
        record.error = error
        record.retry_at = retry_time(record.attempts, now)
        if retry_after is not None:  # the receiver asked for a longer pause (a webhook's Retry-After)
            record.retry_at = max(record.retry_at, now + retry_after)
        self._save(item)

    def _save(self, item: Queued) -> None:
        self.store.put_mail(item.mail, thread=item.thread, breach=item.breach)


def _what(item: Queued) -> str:
    """What a mail is, for the log: "level 2 escalation", "daily digest", "warning"..."""
    if item.breach:
        return f"level {item.mail.level} {'webhook post' if item.mail.kind == MailKind.WEBHOOK else 'escalation'}"
    return "daily digest" if item.mail.kind == MailKind.DAILY else item.mail.kind


def _naming(item: Queued) -> str:
    if item.thread is None:
        return f"the day {item.mail.day}" if item.mail.day else "the installation"
    return f"breach {item.breach.id} (thread {item.thread.id})" if item.breach else f"thread {item.thread.id}"


def _to_customer(item: Queued) -> bool:
    return item.breach is None and item.mail.kind == MailKind.ACK


def _loggable(item: Queued, error: Exception) -> str:
    """A delivery error for the log: a server's refusal of an acknowledgement names the customer's address."""
    text = str(error)
    for address in item.mail.to if _to_customer(item) else ():
        text = re.sub(re.escape(address), "the customer", text, flags=re.IGNORECASE)
    return text


def _fields(item: Queued) -> dict:
    """The structured fields of a delivery line: ids only (an acknowledgement's recipient is a customer)."""
    values: dict[str, object] = {"thread": item.thread.id} if item.thread is not None else {}
    values.update(mail=item.mail.message_id, kind=str(item.mail.kind))
    if item.breach:
        values.update(breach=item.breach.id, escalation_level=item.mail.level)
    return fields(**values)


def retry_time(attempts: int, now: datetime) -> datetime:
    """Back off after `attempts` failed tries: 30 s after the first, doubling up to 30 minutes.

    The number of doublings is capped before the power is taken: 2 ** (attempts - 1) itself overflows a
    timedelta at the 43rd try, and that error would then fail every cycle and stop all mail."""
    doublings = min(max(attempts - 1, 0), _DOUBLINGS_TO_MOST)
    return now + min(RETRY_FIRST * 2 ** doublings, RETRY_MOST)


_DOUBLINGS_TO_MOST = math.ceil(math.log2(RETRY_MOST / RETRY_FIRST))  # 6: 30 s * 64 is past 30 minutes
