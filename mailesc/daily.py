"""The daily digest: once a day, at a configured local time, one mail to the managers listing yesterday's
breaches and every breach still waiting for its root cause.

Write-ahead like the outbox: the day's digest is recorded (with its Message-ID) before it is sent and marked
sent after, so a crash resends the same mail instead of skipping the day or sending a second one."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from mailesc.clock import isoformat
from mailesc.compose import daily_digest_mail, daily_message_id
from mailesc.config import DailyDigestConfig
from mailesc.errors import PermanentTransportError, StoreError, TransportError
from mailesc.humane import human_time
from mailesc.model import Breach
from mailesc.outbox import retry_time
from mailesc.render import Templates

log = logging.getLogger("mailesc.daily")
RECORD = "daily_digest"  # its record in the store's health table
LISTED = 50  # unreviewed breaches named one by one; the rest are counted


class DailyDigest:
    def __init__(self, config: DailyDigestConfig, store, templates: Templates, transport, sender: str,
                 review_period: timedelta, mail_zone=None):
        self.config, self.store, self.templates, self.transport = config, store, templates, transport
        self.sender, self.review_period = sender, review_period
        self.mail_zone = mail_zone or config.timezone  # [templates] timezone, else the digest's own zone

    def due_at(self, now: datetime) -> datetime | None:
        """When the next digest should go: today's time if today's is not sent yet, else tomorrow's."""
        if self.config.at is None:
            return None
        record = self.store.installation.health.get(RECORD, {})
        if record.get("delivery") == "pending":
            return datetime.fromisoformat(record["retry_at"]) if record.get("retry_at") else now
        today = now.astimezone(self.config.timezone).date()
        day = today + timedelta(days=1) if record.get("date") == today.isoformat() else today
        return datetime.combine(day, self.config.at, tzinfo=self.config.timezone)

    def run(self, now: datetime) -> None:
        """Record today's digest when its time has come, and send what is recorded and not yet sent."""
        due = self.due_at(now)
        if due is None or now < due:
            return
        record = self.store.installation.health.get(RECORD, {})
        if record.get("delivery") != "pending":
            day = now.astimezone(self.config.timezone).date()
            record = {"date": day.isoformat(), "message_id": self._message_id(day), "delivery": "pending",
                      "attempts": 0, "retry_at": None, "error": None}
        record = {**record, "attempts": record["attempts"] + 1}
        self.store.installation.health[RECORD] = record
        self.store.installation.flush()  # on record before it goes out: a crash resends this very mail
        try:
            error = self.transport.send([self._compose(record, now)]).get(record["message_id"])
        except StoreError:
            raise
        except Exception as fault:  # a template or transport fault is retried later; it never stops the daemon
            log.debug("the daily digest could not be sent", exc_info=True)
            error = fault
        self.store.installation.health[RECORD] = {**record, **_outcome(error, record["attempts"], now)}
        self.store.installation.flush()

    def waiting(self) -> str | None:
        """Why the day's digest is recorded but not sent yet (it waits for a retry), or None."""
        record = self.store.installation.health.get(RECORD, {})
        return (record.get("error") or "not sent yet") if record.get("delivery") == "pending" else None

    def _compose(self, record: dict, now: datetime):
        day = date.fromisoformat(record["date"])
        return daily_digest_mail(self.templates, self.config.template, self.context(day, now), sender=self.sender,
                                 to=list(self.config.to), message_id=record["message_id"], now=now)

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

    def _message_id(self, day: date) -> str:
        return daily_message_id(day, self.sender)


def _summary(breach: Breach, now: datetime, zone) -> dict:
    """One breach as the digest lists it; times as people read them (`due_iso`, `received_iso` for ISO)."""
    return {"id": breach.id, "mailbox": breach.mailbox, "customer": breach.customer, "subject": breach.subject, "policy": breach.policy,
            "status": str(breach.status), "due": human_time(breach.due_at, zone, now),
            "received": human_time(breach.received_at, zone, now), "due_iso": isoformat(breach.due_at),
            "received_iso": isoformat(breach.received_at),
            "levels": [e.level for e in breach.escalations], "age_days": (now - breach.due_at).days}


def _outcome(error: Exception | None, attempts: int, now: datetime) -> dict:
    if error is None:
        log.info("daily digest sent")
        return {"delivery": "sent", "sent_at": isoformat(now), "retry_at": None, "error": None}
    if isinstance(error, PermanentTransportError):
        log.error("the daily digest was refused for good: %s", error)
        return {"delivery": "failed", "error": str(error), "retry_at": None}
    retry = retry_time(attempts, now)
    log.warning("the daily digest is not sent yet, will retry at %s: %s", isoformat(retry), error)
    return {"error": str(error) if isinstance(error, TransportError) else repr(error), "retry_at": isoformat(retry)}
