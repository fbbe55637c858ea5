"""Breach records as people and scripts read them: JSON objects with the documented keys, CSV rows and a table.

Each takes a breach as both stores keep it (reporting.queries.StoredBreach): texts and times are printed as
stored, and a time is parsed only where a row computes with it (late by, overdue), so that a list of 100k
breaches builds no objects. (`breaches show` tells a breach's story: reporting/timeline.py.)"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from typing import IO, Iterable

from mailesc.clock import isoformat
from mailesc.durations import format_duration
from mailesc.model import DEFAULT_MAILBOX
from mailesc.reporting.queries import StoredBreach
from mailesc.reviews import Reviews

CSV_COLUMNS = ("id", "status", "clock", "policy", "customer", "subject", "received_at", "due_at", "responded_at",
               "late_by_seconds", "levels", "acknowledged_by", "acknowledged_at", "review_state", "cause", "note",
               "reviewed_by", "reviewed_at", "review_overdue", "thread", "delivery", "mailbox")  # new columns at the end


def level_delivery(breach: StoredBreach) -> dict[str, str]:
    """Level (as text, for JSON) -> its delivery state: sent, pending or failed."""
    return {str(e["level"]): e["delivery"] for e in breach.escalations}


def delivery_text(breach: StoredBreach) -> str:
    """"1:sent 2:failed": each level's delivery state, for CSV cells and the table."""
    escalations = breach.escalations
    return " ".join(f"{level}:{state}" for level, state in level_delivery(breach).items()) if escalations else ""


def _levels(breach: StoredBreach) -> str:
    """"1 2": the levels escalated."""
    escalations = breach.escalations
    return " ".join(str(e["level"]) for e in escalations) if escalations else ""


def _escalation_json(e: dict) -> dict:
    """An escalation level as lists print it, from its stored document (the keys of today's records; the
    optional ones are written only when set)."""
    return {"level": e["level"], "at": e["at"], "to": list(e["to"]), "message_id": e["message_id"],
            "delivery": e["delivery"], "sent_at": e.get("sent_at"), "error": e.get("error"), "digest": e.get("digest"),
            "attempts": e.get("attempts", 0), "retry_at": e.get("retry_at"), "resent": list(e.get("resent", ()))}


def _notification_json(n: dict) -> dict:
    """A level's webhook post (`notify`): which webhook (by name; its URL is never stored) and what became of it."""
    return {"level": n["level"], "kind": n["kind"], "to": list(n["to"]), "at": n["at"], "delivery": n["delivery"],
            "sent_at": n.get("sent_at"), "error": n.get("error"), "attempts": n.get("attempts", 0),
            "retry_at": n.get("retry_at")}


def breach_json(breach: StoredBreach, reviews: Reviews | None = None, now: datetime | None = None,
                period: timedelta | None = None) -> dict:
    """The documented JSON object of a breach (`breaches list/show --json`); its times as stored (ISO 8601);
    with `reviews` (and the time and review period they are judged at), its review too."""
    doc = breach.doc
    escalations = doc["escalations"]
    result = {
        "id": doc["id"],
        "thread": doc["thread"],
        "mailbox": doc.get("mailbox", DEFAULT_MAILBOX),
        "customer": doc["customer"],
        "subject": doc["subject"],
        "policy": doc["policy"],
        "status": doc["status"],
        "clock": _CLOCKS[doc.get("clock", 0) == 0],
        "received_at": doc["received_at"],
        "due_at": doc["due_at"],
        "responded_at": doc.get("responded_at"),
        "acknowledged_by": doc.get("acknowledged_by"),
        "acknowledged_at": doc.get("acknowledged_at"),
        "escalations": [_escalation_json(e) for e in escalations] if escalations else [],
        "delivery": level_delivery(breach) if escalations else {},
        "notifications": [_notification_json(n) for n in doc.get("notifications", ())],
    }
    if reviews is not None:
        if now is None or period is None:
            raise ValueError("a review is judged at a time and with a review period")
        result["review"] = reviews.summary(breach, now, period)
    return result


_CLOCKS = {True: "first_response", False: "next_response"}


def write_csv(out: IO[str], breaches: Iterable[StoredBreach], reviews: Reviews, now: datetime,
              period: timedelta) -> None:
    """One row per breach, streamed: the flat facts a spreadsheet wants (times as ISO 8601 with offset). One
    pass per row over the stored document and one review look-up: this is run 100k times for a long list."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    cutoff = now - period  # a breach without a cause whose deadline is before this is overdue for review
    for b in breaches:
        doc = b.doc
        state, current = reviews.standing(b.id)
        responded = doc.get("responded_at")
        responded_at = b.responded_at if responded else None
        late = int((responded_at - b.due_at).total_seconds()) if responded_at is not None else ""
        if current is None:
            review: tuple = ("", "", "", "", "yes" if b.due_at < cutoff else "no")
        else:
            review = (current.cause, current.note or "", current.by, isoformat(current.at), "no")
        writer.writerow((doc["id"], doc["status"], _CLOCKS[doc.get("clock", 0) == 0], doc["policy"], doc["customer"],
                         doc["subject"], doc["received_at"], doc["due_at"], responded or "", late, _levels(b),
                         doc.get("acknowledged_by") or "", doc.get("acknowledged_at") or "", state, *review,
                         doc["thread"], delivery_text(b), doc.get("mailbox", DEFAULT_MAILBOX)))


TABLE_COLUMNS = ("ID", "STATUS", "DUE", "LATE BY", "LEVELS", "DELIVERY", "REVIEW", "MAILBOX", "POLICY", "CUSTOMER",
                 "SUBJECT")


def table_row(breach: StoredBreach, reviews: Reviews, now: datetime, period: timedelta) -> tuple[str, ...]:
    doc = breach.doc
    responded = breach.responded_at if doc.get("responded_at") else None
    late = format_duration(responded - breach.due_at) if responded is not None else "(no reply)"
    state, current = reviews.standing(breach.id)
    review = current.cause or "" if current else ("OVERDUE" if now - breach.due_at > period else state)
    escalations = doc["escalations"]
    return (str(doc["id"]), doc["status"], doc["due_at"], late,
            ",".join(str(e["level"]) for e in escalations) if escalations else "-", delivery_text(breach) or "-",
            review, doc.get("mailbox", DEFAULT_MAILBOX), doc["policy"], doc["customer"], doc["subject"][:60])


def plain_table(rows: Iterable[tuple[str, ...]],
                widths: tuple[int, ...] = (5, 14, 25, 10, 6, 16, 22, 10, 12, 28)) -> Iterable[str]:
    """Fixed-width lines, streamed (for pipes and very long lists); the last column is never padded (a cell
    wider than its column pushes the rest to the right, as str.ljust does)."""
    line = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    for row in rows:
        yield line.format(*row[:len(widths)], row[-1])
