"""Breach records as people and scripts read them: JSON objects with the documented keys, and text."""

from __future__ import annotations

from mailesc.clock import isoformat
from mailesc.durations import format_duration
from mailesc.model import Breach


def breach_json(breach: Breach) -> dict:
    return {
        "id": breach.id,
        "thread": breach.thread,
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
             "attempts": e.attempts, "retry_at": isoformat(e.retry_at)}
            for e in breach.escalations
        ],
    }


def breach_table(breaches: list[Breach]) -> str:
    if not breaches:
        return "No breaches recorded."
    rows = [("ID", "STATUS", "DUE", "LATE BY", "LEVELS", "POLICY", "CUSTOMER", "SUBJECT")]
    for b in breaches:
        late = format_duration(b.responded_at - b.due_at) if b.responded_at else "(no reply)"
        rows.append((str(b.id), str(b.status), isoformat(b.due_at), late,
                     ",".join(str(e.level) for e in b.escalations) or "-", b.policy, b.customer, b.subject[:50]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def breach_story(breach: Breach) -> str:
    """One breach as a short timeline."""
    events = [(breach.received_at, f"customer {breach.customer} wrote"),
              (breach.due_at, f"{'first' if breach.clock == 0 else 'next'}-response deadline ({breach.policy})")]
    for e in breach.escalations:
        events.append((e.at, f"level {e.level} escalation to {', '.join(e.to)} recorded ({e.message_id})"))
        if e.sent_at:
            events.append((e.sent_at, f"level {e.level} escalation accepted by the mail server"
                                      + (f" in the digest {e.digest}" if e.digest else "")
                                      + (f" ({e.error})" if e.error else "")))
        elif e.error:
            events.append((e.at, f"level {e.level} escalation {e.delivery}: {e.error}"))
    if breach.acknowledged_at:
        events.append((breach.acknowledged_at, f"acknowledged by {breach.acknowledged_by}: the ladder stops"))
    if breach.responded_at:
        events.append((breach.responded_at, "first team response "
                                            f"({format_duration(breach.responded_at - breach.due_at)} late)"))
    lines = [f"Breach {breach.id}: {breach.subject}", f"  thread   {breach.thread}",
             f"  status   {breach.status}", ""]
    lines += [f"  {isoformat(when)}  {what}" for when, what in sorted(events, key=lambda e: e[0])]
    return "\n".join(lines)
