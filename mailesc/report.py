"""Breach records as people and scripts read them: JSON objects with the documented keys, CSV rows, a
table, and each breach's story as a timeline."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Iterable

from mailesc.clock import isoformat, parse_iso
from mailesc.durations import format_duration
from mailesc.model import Breach, Delivery, Thread
from mailesc.reviews import Reviews

CSV_COLUMNS = ("id", "status", "clock", "policy", "customer", "subject", "received_at", "due_at", "responded_at",
               "late_by_seconds", "levels", "acknowledged_by", "acknowledged_at", "review_state", "cause", "note",
               "reviewed_by", "reviewed_at", "review_overdue", "thread", "delivery", "mailbox")  # new columns at the end


def level_delivery(breach: Breach) -> dict[str, str]:
    """Level (as text, for JSON) -> its delivery state: sent, pending or failed."""
    return {str(e.level): str(e.delivery) for e in breach.escalations}


def delivery_text(breach: Breach) -> str:
    """"1:sent 2:failed": each level's delivery state, for CSV cells and the table."""
    return " ".join(f"{level}:{state}" for level, state in level_delivery(breach).items())


def breach_json(breach: Breach, reviews: Reviews | None = None, now: datetime | None = None,
                period: timedelta | None = None) -> dict:
    doc = {
        "id": breach.id,
        "thread": breach.thread,
        "mailbox": breach.mailbox,
        "customer": breach.customer,
        "subject": breach.subject,
        "policy": breach.policy,
        "status": str(breach.status),
        "clock": "first_response" if breach.clock == 0 else "next_response",
        "received_at": isoformat(breach.received_at),
        "due_at": isoformat(breach.due_at),
        "responded_at": isoformat(breach.responded_at),
        "acknowledged_by": breach.acknowledged_by,
        "acknowledged_at": isoformat(breach.acknowledged_at),
        "escalations": [
            {"level": e.level, "at": isoformat(e.at), "to": list(e.to), "message_id": e.message_id,
             "delivery": str(e.delivery), "sent_at": isoformat(e.sent_at), "error": e.error, "digest": e.digest,
             "attempts": e.attempts, "retry_at": isoformat(e.retry_at), "resent": list(e.resent)}
            for e in breach.escalations
        ],
        "delivery": level_delivery(breach),
    }
    if reviews is not None:
        doc["review"] = reviews.summary(breach, now, period)
    return doc


def write_csv(out: IO[str], breaches: Iterable[Breach], reviews: Reviews, now: datetime, period: timedelta) -> None:
    """One row per breach, streamed: the flat facts a spreadsheet wants (times as ISO 8601 with offset)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for b in breaches:
        current = reviews.current(b.id)
        late = int((b.responded_at - b.due_at).total_seconds()) if b.responded_at else ""
        writer.writerow((b.id, b.status, "first_response" if b.clock == 0 else "next_response", b.policy, b.customer,
                         b.subject, isoformat(b.received_at), isoformat(b.due_at), isoformat(b.responded_at) or "",
                         late, " ".join(str(e.level) for e in b.escalations), b.acknowledged_by or "",
                         isoformat(b.acknowledged_at) or "", reviews.state(b.id),
                         current.cause if current else "", (current.note or "") if current else "",
                         current.by if current else "", isoformat(current.at) if current else "",
                         "yes" if reviews.overdue(b, now, period) else "no", b.thread, delivery_text(b), b.mailbox))


TABLE_COLUMNS = ("ID", "STATUS", "DUE", "LATE BY", "LEVELS", "DELIVERY", "REVIEW", "MAILBOX", "POLICY", "CUSTOMER",
                 "SUBJECT")


def table_row(breach: Breach, reviews: Reviews, now: datetime, period: timedelta) -> tuple[str, ...]:
    late = format_duration(breach.responded_at - breach.due_at) if breach.responded_at else "(no reply)"
    current = reviews.current(breach.id)
    review = current.cause if current else ("OVERDUE" if reviews.overdue(breach, now, period)
                                            else reviews.state(breach.id))
    return (str(breach.id), str(breach.status), isoformat(breach.due_at), late,
            ",".join(str(e.level) for e in breach.escalations) or "-", delivery_text(breach) or "-", review,
            breach.mailbox, breach.policy, breach.customer,
            breach.subject[:60])


def plain_table(rows: Iterable[tuple[str, ...]],
                widths: tuple[int, ...] = (5, 14, 25, 10, 6, 16, 22, 10, 12, 28)) -> Iterable[str]:
    """Fixed-width lines, streamed (for pipes and very long lists); the last column is never padded."""
    for row in rows:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]


# -- the story of one breach ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: datetime
    event: str  # a stable name for scripts: received, warning, due, escalation, ...
    text: str

    def as_json(self) -> dict:
        return {"at": isoformat(self.at), "event": self.event, "text": self.text}


def timeline(breach: Breach, thread: Thread | None, reviews: Reviews) -> list[Event]:
    """Everything that happened to a breach, in order: from the customer's mail to its last review."""
    clock = "first" if breach.clock == 0 else "next"
    events = [Event(breach.received_at, "received", f"customer {breach.customer} wrote: {breach.subject}"),
              Event(breach.due_at, "due", f"{clock}-response deadline of policy {breach.policy} passed")]
    events += _warnings(thread) if thread is not None and breach.clock == 0 else []
    for e in breach.escalations:
        events.append(Event(e.at, "escalation", f"level {e.level} escalation to {', '.join(e.to)} recorded "
                                                f"(Message-ID {e.message_id})"))
        events += _resends(e)
        events += _delivery("escalation", f"level {e.level} escalation", e)
    if breach.acknowledged_at:
        events.append(Event(breach.acknowledged_at, "acknowledged",
                            f"acknowledged by {breach.acknowledged_by}, who answered the escalation: "
                            f"the ladder stops"))
    events += _response(breach, thread)
    for entry in reviews.history(breach.id):
        if entry.action == "review":
            text = f"{entry.by} recorded the cause {entry.cause}" + (f": {entry.note}" if entry.note else "")
        else:
            text = f"{entry.by} reopened the review" + (f": {entry.note}" if entry.note else "")
        events.append(Event(entry.at, entry.action, text))
    return sorted(events, key=lambda event: event.at)


def _resends(record) -> list[Event]:
    """`breaches resend`: when each resend was asked for, and to whom (new recipients are named with the old)."""
    events = []
    for resend in record.resent:
        moved = resend["to"] != resend["was"]
        text = (f"level {record.level} escalation put back to send to {', '.join(resend['to'])}"
                + (f" instead of {', '.join(resend['was'])}" if moved else "") + f" (it was {resend['delivery']})")
        events.append(Event(parse_iso(resend["at"]), "escalation_resent", text))
    return events


def _warnings(thread: Thread) -> list[Event]:
    events = []
    for notice in thread.notices:
        if notice.kind == "warning":
            events.append(Event(notice.at, "warning", f"warning before the deadline to {', '.join(notice.to)} "
                                                      f"recorded (Message-ID {notice.message_id})"))
            events += _delivery("warning", "warning", notice)
    return events


def _delivery(event: str, what: str, record) -> list[Event]:
    if record.delivery is Delivery.SENT:
        digest = f" in the digest {record.digest}" if getattr(record, "digest", None) else ""
        return [Event(record.sent_at, f"{event}_sent", f"{what} accepted by the mail server{digest}")]
    if record.delivery is Delivery.FAILED:
        return [Event(record.sent_at or record.at, f"{event}_failed", f"{what} refused for good: {record.error}")]
    if record.error:
        return [Event(record.at, f"{event}_waiting", f"{what} not sent yet ({record.attempts} tries): {record.error}")]
    return []


def _response(breach: Breach, thread: Thread | None) -> list[Event]:
    if not breach.responded_at:
        return []
    who = ""
    if thread is not None:
        reply = thread.first_response_after(breach.received_at)
        who = f" by {reply.sender}" if reply is not None else ""
    return [Event(breach.responded_at, "responded",
                  f"first team response{who}, {format_duration(breach.responded_at - breach.due_at)} late")]


def breach_story(breach: Breach, events: list[Event], review: dict) -> str:
    lines = [f"Breach {breach.id}: {breach.subject}", f"  mailbox   {breach.mailbox}", f"  thread    {breach.thread}",
             f"  customer  {breach.customer}", f"  policy    {breach.policy}",
             f"  status    {breach.status}", f"  review    {_review_line(review)}", ""]
    zone = breach.due_at.tzinfo  # the policy's calendar zone: one offset for the whole story
    lines += [f"  {isoformat(event.at.astimezone(zone))}  {event.text}" for event in events]
    return "\n".join(lines)


def _review_line(review: dict) -> str:
    if review["state"] == "reviewed":
        return f"{review['cause']} (by {review['by']} at {review['at']})" + (f": {review['note']}" if review["note"]
                                                                              else "")
    due = f"due by {review['due_at']}" + (" — OVERDUE" if review["overdue"] else "")
    return f"{review['state']}, {due}"
