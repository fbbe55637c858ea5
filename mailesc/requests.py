"""Admin writes while workers run: `breaches resend` and `quarantine retry` on a PostgreSQL store.

Why this shape:
- Only the worker holding a mailbox's lease may write that mailbox's records (it keeps them in memory and its
  flushes are fenced). So an admin command does not write them: it inserts a row into `requests` (kind, payload,
  requested_by) and the holder applies it at the start of its next cycle with `apply_requests(box, now)`, in one
  transaction with the records it changes (a request is applied once: marked done in the very transaction that
  writes its effect). The command waits for the result and prints it.
- When nobody holds the mailbox (no worker runs, or its lease has expired), the command takes the lease row
  itself for the length of one transaction (locked, so no worker takes or fences it meanwhile), applies the
  waiting requests to the mailbox's records loaded afresh, and leaves the lease free: the next worker to take it
  loads the records again. A worker whose lease had expired loses it that way, as it would to another worker.
- The record changes are the same functions the file store's commands use (`resend_records`, `mark_for_retry`):
  one place decides what a resend or a retry changes, whichever store it lands in.
"""

from __future__ import annotations

import copy
import getpass
import json
import logging
import os
import socket
import time
from datetime import datetime

from mailesc.clock import isoformat
from mailesc.errors import EX_TEMPFAIL, MailescError, UsageError
from mailesc.model import Breach, Delivery, QueuedMail

log = logging.getLogger("mailesc.requests")
RESEND, QUARANTINE_RETRY = "resend", "quarantine_retry"


class RequestPending(MailescError):
    """The request is recorded, but no worker applied it in the time waited: one will at its next cycle."""

    exit_code = EX_TEMPFAIL


# -- the record changes, for both stores ---------------------------------------------------------------------


def resend_records(breach: Breach, level: int | None, addresses: list[str], now: datetime) -> list[QueuedMail]:
    """Put a breach's escalations and webhook posts that failed for good (or, with `addresses` and `level`, the
    mail at `level`, whatever became of it) back to be sent, to `addresses` instead when given; each resend is kept in the
    escalation's history. Returns the records changed; raises UsageError (changing nothing) when there is none."""
    again = [r for r in breach.escalations if r.delivery is Delivery.FAILED and level in (None, r.level)]
    if not addresses:  # a failed webhook post is posted again too (to the same webhook: --to names mail recipients)
        again += [r for r in breach.notifications if r.delivery is Delivery.FAILED and level in (None, r.level)]
    if not again and addresses and level is not None:
        again = [r for r in breach.escalations if r.level == level]
    if not again:
        raise UsageError(f"breach {breach.id} has no failed escalation" + (f" at level {level}" if level else "")
                         + ("" if addresses else " (give --level N --to ADDR to send one elsewhere)"))
    for record in again:
        record.resent.append({"at": isoformat(now), "to": list(addresses) or list(record.to), "was": list(record.to),
                              "delivery": str(record.delivery)})
        if addresses:
            record.to, record.digest = list(addresses), None  # new recipients: a mail of its own
        record.delivery, record.error, record.attempts, record.retry_at = Delivery.PENDING, None, 0, None
    return again


def check_quarantined(keys: list[str] | None, known: set[str]) -> None:
    unknown = [key for key in keys or [] if key not in known]
    if unknown:
        raise UsageError(f"not in quarantine: {', '.join(unknown)} (mailesc quarantine lists the ids)")


def mark_for_retry(box, keys: list[str] | None) -> list[str]:
    """Mark a mailbox's quarantined messages (these keys, or all with None) to be read again at its next cycle.
    Returns the keys marked."""
    marked = []
    for item in list(box.quarantine.values()):
        if keys is None or item.key in keys:
            item.retry = True
            box.put_quarantined(item)
            marked.append(item.key)
    return marked


# -- the worker's side ---------------------------------------------------------------------------------------


def apply_requests(box, now: datetime) -> list[str]:
    """Apply the waiting requests of `box`'s mailbox (a PostgresBox held by this worker), oldest first, in one
    transaction with the records they change; each is marked done with its result. Returns one line per request
    for the log (no customer data). A file store's box has no requests, a dry run applies none: []."""
    store = box.store
    if not store.shared or store.dry_run:  # a file store has no requests; a dry run writes nothing
        return []
    lines = []
    with store._errors(f"applying the requests of mailbox {box.name!r}"):
        connection = store.connection()
        with connection.transaction():
            rows = connection.execute("SELECT id, kind, payload FROM requests WHERE mailbox = %s AND done_at IS NULL "
                                      "ORDER BY id FOR UPDATE SKIP LOCKED", (box.name,)).fetchall()
            results = []
            for request, kind, payload in rows:
                try:
                    result = _APPLY[kind](box, payload, now) if kind in _APPLY else {"error": f"unknown request "
                                                                                              f"kind {kind!r}"}
                except UsageError as error:
                    result = {"error": str(error)}
                results.append((json.dumps(result), request))
                lines.append(f"request {request} ({kind}) of mailbox {box.name!r}: "
                             + (f"refused: {result['error']}" if "error" in result else "applied"))
            box.flush()  # fenced: a worker that lost the lease writes nothing, and the requests stay waiting
            if results:
                connection.cursor().executemany("UPDATE requests SET done_at = now(), result = %s WHERE id = %s",
                                                results)
    for line in lines:
        log.info("%s", line)
    return lines


def _apply_resend(box, payload: dict, now: datetime) -> dict:
    breach = box.breaches.get(payload["breach"])
    if breach is None:
        raise UsageError(f"no breach with id {payload['breach']}")
    again = resend_records(breach, payload.get("level"), payload.get("to") or [], now)
    box.put_breach(breach)
    return {"message_ids": [record.message_id for record in again]}


def _apply_quarantine_retry(box, payload: dict, now: datetime) -> dict:
    keys = payload.get("keys")
    check_quarantined(keys, set(box.quarantine))
    return {"keys": mark_for_retry(box, keys)}


_APPLY = {RESEND: _apply_resend, QUARANTINE_RETRY: _apply_quarantine_retry}


# -- the admin command's side ----------------------------------------------------------------------------------


def resend(config, breach_id: int, level: int | None, addresses: list[str], now: datetime,
           wait: float | None = None) -> list[str]:
    """`breaches resend` on PostgreSQL: checked against the breach as recorded, then a request to its mailbox's
    worker. Returns the Message-IDs put back."""
    from mailesc.stores.postgres import PostgresStore

    with PostgresStore.from_config(config.store) as store:
        with store._errors("reading a breach"):
            row = store.connection().execute("SELECT mailbox, doc FROM breaches WHERE id = %s AND NOT archived",
                                             (breach_id,)).fetchone()
        if row is None:
            raise UsageError(f"no breach with id {breach_id}")
        from mailesc.store import _breach_from

        resend_records(copy.deepcopy(_breach_from(row[1])), level, addresses, now)  # refused here if it would be
        result = _submit(store, config, row[0], RESEND, {"breach": breach_id, "level": level, "to": addresses},
                         now, wait)
    return result["message_ids"]


def quarantine_retry(config, keys: list[str] | None, wait: float | None = None) -> list[str]:
    """`quarantine retry` on PostgreSQL: one request per mailbox holding the keys (all: every mailbox with
    quarantined messages). Returns the keys marked."""
    from mailesc.stores.postgres import PostgresStore

    with PostgresStore.from_config(config.store) as store:
        with store._errors("reading the quarantine"):
            held = store.connection().execute("SELECT mailbox, key FROM quarantine ORDER BY mailbox, key").fetchall()
        check_quarantined(keys, {key for _, key in held})
        by_mailbox: dict[str, list[str]] = {}
        for mailbox, key in held:
            if keys is None or key in keys:
                by_mailbox.setdefault(mailbox, []).append(key)
        marked: list[str] = []
        now = datetime.now().astimezone()
        for mailbox, wanted in by_mailbox.items():
            marked += _submit(store, config, mailbox, QUARANTINE_RETRY, {"keys": wanted}, now, wait)["keys"]
    return sorted(marked) if keys is None else list(dict.fromkeys(keys))


def requested_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _submit(store, config, mailbox: str, kind: str, payload: dict, now: datetime, wait: float | None) -> dict:
    """Record a request and wait for its result: applied by the worker holding `mailbox`, or by this process
    when nobody holds it. Raises UsageError when it was refused, RequestPending when nobody applied it in time."""
    wait = default_wait(config) if wait is None else wait
    with store._errors("recording a request"):
        connection = store.connection()
        request = connection.execute("INSERT INTO requests (mailbox, kind, payload, requested_by) "
                                     "VALUES (%s, %s, %s::jsonb, %s) RETURNING id",
                                     (mailbox, kind, json.dumps(payload), requested_by())).fetchone()[0]
        give_up = time.monotonic() + wait
        while True:
            done, result = connection.execute("SELECT done_at IS NOT NULL, result FROM requests WHERE id = %s",
                                              (request,)).fetchone()
            if done:
                outcome = json.loads(result)
                if "error" in outcome:
                    raise UsageError(outcome["error"])
                return outcome
            if apply_if_unheld(store, mailbox, now, config.lease_seconds):
                continue
            if time.monotonic() >= give_up:
                raise RequestPending(f"request {request} is recorded, but the worker holding mailbox {mailbox!r} "
                                     f"has not applied it within {wait:.0f} s; it will at its next cycle (see "
                                     f"mailesc status)")
            time.sleep(min(0.25, max(0.0, give_up - time.monotonic())))


def default_wait(config) -> float:
    """A few lease lengths, and at least one poll interval more (a worker applies requests when it cycles)."""
    return max(3 * config.lease_seconds, config.poll_seconds + config.lease_seconds)


def apply_if_unheld(store, mailbox: str, now: datetime, lease_seconds: float) -> bool:
    """When no worker holds `mailbox` (no lease row, no owner, or an expired lease): take its lease row for one
    transaction, apply its waiting requests to its records loaded afresh, and leave the lease free. True when it
    did; False when a worker holds the mailbox (or is taking it right now)."""
    from mailesc.stores.postgres import PostgresBox

    owner = f"admin:{socket.gethostname()}:{os.getpid()}"
    connection = store.connection()
    with connection.transaction():
        connection.execute("INSERT INTO leases (mailbox) VALUES (%s) ON CONFLICT DO NOTHING", (mailbox,))
        row = connection.execute("SELECT owner IS NULL OR expires_at IS NULL OR expires_at <= now() FROM leases "
                                 "WHERE mailbox = %s FOR UPDATE SKIP LOCKED", (mailbox,)).fetchone()
        if row is None or not row[0]:
            return False
        # ours for this transaction: a worker that held it before (expired) finds it no longer its own
        connection.execute("UPDATE leases SET owner = %s, acquired_at = now(), renewed_at = now(), "
                           "expires_at = now() + make_interval(secs => %s) WHERE mailbox = %s",
                           (owner, lease_seconds, mailbox))
        apply_requests(PostgresBox(store, mailbox), now)
        connection.execute("UPDATE leases SET owner = NULL, renewed_at = NULL, expires_at = NULL WHERE mailbox = %s",
                           (mailbox,))
    return True
