"""The story of one breach (`breaches show`): everything that happened to it, in order, as events and as text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailesc.clock import isoformat, parse_iso
from mailesc.durations import format_duration
from mailesc.model import Breach, Delivery, MailKind, Thread
from mailesc.reviews import Reviews


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
    for n in breach.notifications:
        name = ", ".join(target.partition(":")[2] for target in n.to)
        events.append(Event(n.at, "webhook", f"level {n.level} webhook {name} post recorded"))
        events += _resends(n)
        events += _delivery("webhook", f"level {n.level} webhook {name} post", n, by="the webhook")
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
        what = "webhook post" if record.kind == MailKind.WEBHOOK else "escalation"
        text = (f"level {record.level} {what} put back to send to {', '.join(resend['to'])}"
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


def _delivery(event: str, what: str, record, by: str = "the mail server") -> list[Event]:
    if record.delivery is Delivery.SENT:
        digest = f" in the digest {record.digest}" if getattr(record, "digest", None) else ""
        return [Event(record.sent_at, f"{event}_sent", f"{what} accepted by {by}{digest}")]
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
