"""The outbox: mails recorded in the store (escalations on breaches; warnings and acknowledgements on threads)
are rendered and handed to the transport, many escalations at once as one digest.

A record is written before its mail is sent and settled after, so a crash in between resends the same mail
with the same Message-ID instead of losing it. Temporary failures stay pending and are retried with backoff."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from mailesc.clock import isoformat
from mailesc.compose import Composer, digest_message_id
from mailesc.errors import LeaseLost, PartiallyRefused, PermanentTransportError
from mailesc.logs import fields
from mailesc.model import Breach, Delivery, OutgoingMail, QueuedMail, Thread
from mailesc.render import ComposeError, Templates

log = logging.getLogger("mailesc.outbox")
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

    record: QueuedMail
    thread: Thread
    breach: Breach | None = None  # for escalations

    @property
    def what(self) -> str:
        return f"level {self.record.level} escalation" if self.breach else self.record.kind


class Outbox:
    def __init__(self, store, source, transport, templates: Templates, sender: str, reply_to: str = "",
                 digest_after: int = DIGEST_AFTER, durable: bool = True, secret: bytes = b"", policies=None,
                 zone: tzinfo | None = None):
        self.store, self.source, self.transport = store, source, transport
        # policies: rule order (digest order) and each rule's calendar zone (times in mails); zone: [templates]
        # timezone, every mail's times in it instead of the calendar's; secret: signs the X-Mailesc marker
        self.composer = Composer(templates, sender, reply_to, secret, policies, zone)
        self.sender, self.digest_after, self.durable = sender, digest_after, durable

    def rescan(self) -> None:
        """Look for unsent mails again (an admin's request put some back)."""
        self.store.requeue()

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
        return [_Pending(item.mail, item.thread, item.breach) for item in self.store.pending_mails()]

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
                again[digest_message_id((i.record.message_id for i in items), self.sender)] = items
            else:
                singles += items
        return [(item.record.message_id, [item], False) for item in singles] + [
            (mail_id, items, True) for mail_id, items in again.items()]

    def _digest(self, mail_id: str, items: list[_Pending], now: datetime) -> OutgoingMail:
        members = [(item.thread, item.breach, item.record.level, item.record.message_id) for item in items]
        return self.composer.storm_digest(mail_id, list(items[0].record.to), members, now)

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
        self.store.put_mail(item.record, thread=item.thread, breach=item.breach)

    def _compose(self, item: _Pending, now: datetime) -> OutgoingMail:
        record = item.record
        return self.composer.thread_mail(kind=record.kind,
                                         message_id=record.message_id, to=record.to, template=record.template,
                                         thread=item.thread, now=now, fetch=self.source.fetch, breach=item.breach,
                                         level=record.level)


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
