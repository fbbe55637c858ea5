"""The daily digest: once a day, at a configured local time, one mail to the managers listing yesterday's
breaches and every breach still waiting for its root cause.

The day's digest is a queued mail like any other (kind "daily"): recorded with its Message-ID before it is
sent and settled after by the outbox's one send loop, so a crash resends the same mail instead of skipping the
day or sending a second one."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from mailesc.clock import isoformat
from mailesc.compose import daily_digest_mail, daily_message_id
from mailesc.config import DailyDigestConfig
from mailesc.humane import human_time
from mailesc.model import Breach, Delivery, MailKind, QueuedMail
from mailesc.outbox import Outbox
from mailesc.queue import latest_daily
from mailesc.render import Templates

if TYPE_CHECKING:
    from mailesc.transports import Transport

log = logging.getLogger("mailesc.daily")
LISTED = 50  # unreviewed breaches named one by one; the rest are counted


class DailyDigest:
    """Decides when the day's digest is due and what it says; the outbox sends it, from the installation's
    queue (a QueuedMail of kind "daily" in the installation box's `outgoing`, `day` the date it is about)."""

    def __init__(self, config: DailyDigestConfig, store, templates: Templates, transport: Transport, sender: str,
                 review_period: timedelta, mail_zone=None):
        self.config, self.store, self.templates, self.transport = config, store, templates, transport
        self.sender, self.review_period = sender, review_period
        self.mail_zone = mail_zone or config.timezone  # [templates] timezone, else the digest's own zone

    def latest(self) -> QueuedMail | None:
        """The digest of the latest day on record (an older store's, taken over from its health table)."""
        return latest_daily(self.store.installation.outgoing)

    def due_at(self, now: datetime) -> datetime | None:
        """When the next digest should go: today's time if today's is not sent yet, else tomorrow's."""
        if self.config.at is None:
            return None
        record = self.latest()
        if record is not None and record.delivery is Delivery.PENDING:
            return record.retry_at or now
        today = now.astimezone(self.config.timezone).date()
        # Today's is done when a digest of today, or of a later day, is on record: the latter after the digest's
        # zone moved west (or `once --now` went back in time). Never a digest of a day before one already sent,
        # and never the same day's twice (it would be recorded anew under the same Message-ID and sent again).
        done = record is not None and (record.day or "") >= today.isoformat()
        day = today + timedelta(days=1) if done else today
        return datetime.combine(day, self.config.at, tzinfo=self.config.timezone)

    def run(self, now: datetime) -> None:
        """Queue today's digest when its time has come, and send what is queued and not yet sent (through the
        outbox's write-ahead loop: a crash resends this very mail)."""
        due = self.due_at(now)
        if due is None or now < due:
            return
        record = self.latest()
        if record is None or record.delivery is not Delivery.PENDING:
            day = now.astimezone(self.config.timezone).date()
            self.store.installation.enqueue(QueuedMail(
                kind=MailKind.DAILY, message_id=daily_message_id(day, self.sender), to=list(self.config.to), at=now,
                template=self.config.template, day=day.isoformat()))
        elif not record.to:  # taken over from an older store, which did not record them
            record.to = list(self.config.to)
        self._outbox().deliver(now)

    def waiting(self) -> str | None:
        """Why the day's digest is recorded but not sent yet (it waits for a retry), or None."""
        record = self.latest()
        return (record.error or "not sent yet") if record is not None and record.delivery is Delivery.PENDING \
            else None

    def _outbox(self) -> Outbox:
        return Outbox(self.store.installation, None, self.transport, self.templates, self.sender,
                      composers={MailKind.DAILY.value: self._compose})

    def _compose(self, record: QueuedMail, now: datetime):
        day = date.fromisoformat(record.day or record.at.date().isoformat())
        return daily_digest_mail(self.templates, record.template, self.context(day, now),
                                 sender=self.sender, to=list(record.to), message_id=record.message_id, now=now)

    def context(self, day: date, now: datetime) -> dict:
        """What the template gets: yesterday's breaches (by deadline, local time) and the unreviewed ones."""
        history = self.store.history(threads=False)  # the file store's or the database's, live and archived
        zone = self.config.timezone
        start = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=zone)
        end = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        ordered = sorted(history.breaches.values(), key=lambda b: b.due_at)
        unreviewed = [b for b in ordered if history.reviews.current(b.id) is None]
        overdue = [b for b in unreviewed if history.reviews.overdue(b, now, self.review_period)]
        return {"date": day.isoformat(), "yesterday": (day - timedelta(days=1)).isoformat(), "now": isoformat(now),
                "breaches": [_summary(b, now, self.mail_zone) for b in ordered if start <= b.due_at < end],
                "unreviewed": [_summary(b, now, self.mail_zone) for b in unreviewed[:LISTED]],
                "unreviewed_count": len(unreviewed), "overdue_count": len(overdue),
                "review_period_days": self.review_period.days}


def _summary(breach: Breach, now: datetime, zone) -> dict:
    """One breach as the digest lists it; times as people read them (`due_iso`, `received_iso` for ISO)."""
    return {"id": breach.id, "mailbox": breach.mailbox, "customer": breach.customer, "subject": breach.subject, "policy": breach.policy,
            "status": str(breach.status), "due": human_time(breach.due_at, zone, now),
            "received": human_time(breach.received_at, zone, now), "due_iso": isoformat(breach.due_at),
            "received_iso": isoformat(breach.received_at),
            "levels": [e.level for e in breach.escalations], "age_days": (now - breach.due_at).days}
