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
    return " ".join(f"{level}:{state}" for level, state in level_delivery(breach).items())


def _clock(breach: StoredBreach) -> str:
    return "first_response" if breach.clock == 0 else "next_response"


def _escalation_json(e: dict) -> dict:
    """An escalation level as lists print it, from its stored document (the keys of today's records; the
    optional ones are written only when set)."""
    return {"level": e["level"], "at": e["at"], "to": list(e["to"]), "message_id": e["message_id"],
            "delivery": e["delivery"], "sent_at": e.get("sent_at"), "error": e.get("error"), "digest": e.get("digest"),
            "attempts": e.get("attempts", 0), "retry_at": e.get("retry_at"), "resent": list(e.get("resent", ()))}


def breach_json(breach: StoredBreach, reviews: Reviews | None = None, now: datetime | None = None,
                period: timedelta | None = None) -> dict:
    """The documented JSON object of a breach (`breaches list/show --json`); its times as stored (ISO 8601)."""
    doc = breach.doc
    result = {
        "id": doc["id"],
        "thread": doc["thread"],
        "mailbox": breach.mailbox,
        "customer": doc["customer"],
        "subject": doc["subject"],
        "policy": doc["policy"],
        "status": doc["status"],
        "clock": _clock(breach),
        "received_at": doc["received_at"],
        "due_at": doc["due_at"],
        "responded_at": doc.get("responded_at"),
        "acknowledged_by": doc.get("acknowledged_by"),
        "acknowledged_at": doc.get("acknowledged_at"),
        "escalations": [_escalation_json(e) for e in breach.escalations],
        "delivery": level_delivery(breach),
    }
    if reviews is not None:
        result["review"] = reviews.summary(breach, now, period)
    return result


def write_csv(out: IO[str], breaches: Iterable[StoredBreach], reviews: Reviews, now: datetime,
              period: timedelta) -> None:
    """One row per breach, streamed: the flat facts a spreadsheet wants (times as ISO 8601 with offset)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for b in breaches:
        doc = b.doc
        current = reviews.current(b.id)
        late = int((b.responded_at - b.due_at).total_seconds()) if doc.get("responded_at") else ""
        writer.writerow((doc["id"], doc["status"], _clock(b), doc["policy"], doc["customer"], doc["subject"],
                         doc["received_at"], doc["due_at"], doc.get("responded_at") or "", late,
                         " ".join(str(e["level"]) for e in b.escalations), doc.get("acknowledged_by") or "",
                         doc.get("acknowledged_at") or "", reviews.state(b.id),
                         current.cause if current else "", (current.note or "") if current else "",
                         current.by if current else "", isoformat(current.at) if current else "",
                         "yes" if reviews.overdue(b, now, period) else "no", doc["thread"], delivery_text(b),
                         b.mailbox))


TABLE_COLUMNS = ("ID", "STATUS", "DUE", "LATE BY", "LEVELS", "DELIVERY", "REVIEW", "MAILBOX", "POLICY", "CUSTOMER",
                 "SUBJECT")


def table_row(breach: StoredBreach, reviews: Reviews, now: datetime, period: timedelta) -> tuple[str, ...]:
    doc = breach.doc
    late = format_duration(breach.responded_at - breach.due_at) if doc.get("responded_at") else "(no reply)"
    current = reviews.current(breach.id)
    review = current.cause if current else ("OVERDUE" if reviews.overdue(breach, now, period)
                                            else reviews.state(breach.id))
    return (str(doc["id"]), doc["status"], doc["due_at"], late,
            ",".join(str(e["level"]) for e in breach.escalations) or "-", delivery_text(breach) or "-", review,
            breach.mailbox, doc["policy"], doc["customer"],
            doc["subject"][:60])


def plain_table(rows: Iterable[tuple[str, ...]],
                widths: tuple[int, ...] = (5, 14, 25, 10, 6, 16, 22, 10, 12, 28)) -> Iterable[str]:
    """Fixed-width lines, streamed (for pipes and very long lists); the last column is never padded."""
    for row in rows:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]
