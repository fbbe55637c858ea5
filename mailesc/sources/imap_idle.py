"""Waiting for new mail with IMAP IDLE (RFC 2177) on the first watched folder, between two polls.

The daemon calls this (through ImapSource.wait) instead of sleeping, so new mail is noticed within about a
second instead of at the next poll. The connection is ImapSource's: this module only borrows it, always ends
IDLE before returning (poll() and fetch() need the connection free), and asks ImapSource to drop it when it
breaks (the next poll reconnects)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping

import imapclient

from mailesc.errors import SourceError
from mailesc.sources.imap_errors import NETWORK_ERRORS, reason

IDLE_RENEW = 540.0  # seconds: end and restart IDLE before the 10 minutes after which NAT boxes and firewalls
                   # forget a quiet connection (RFC 2177 asks for at most 29 minutes; many middleboxes allow 10)
STOP_CHECK = 1.0  # seconds: how often a wait looks at its stop event
log = logging.getLogger("mailesc.imap")


def wait_idling(client: imapclient.IMAPClient | None, timeout: float, stop: threading.Event, *,
                  watch: Callable[[], str], status: Callable[[str], Mapping[bytes, Any]],
                  uidnext_seen: Mapping[str, int], drop: Callable[[], None], where: str) -> bool:
    """Block up to `timeout` seconds until the server reports new mail in the watched folder, or `stop` is set
    (looked at every second). True when there may be new mail: the caller polls at once. Without IDLE, or
    without a connection (the next poll makes one), it just waits on `stop`.

    `watch()` selects the watched folder and names it; `status(folder)` answers STATUS UIDNEXT; `uidnext_seen`
    holds each folder's UIDNEXT at the last poll; `drop()` forgets a broken connection. A connection that dies
    meanwhile is dropped and True is returned, so the reconnecting poll happens now."""
    deadline = time.monotonic() + max(timeout, 0.0)
    if client is None or stop.is_set() or not can_idle(client):
        stop.wait(max(timeout, 0.0))
        return False
    try:
        folder = watch()
        client.noop()  # brings the selected folder's view up to date: STATUS of it answers from that view
        if int(status(folder).get(b"UIDNEXT", 0)) > uidnext_seen.get(folder, 1 << 62):
            return True  # arrived between the last poll and now: no notification will come for it
        while time.monotonic() < deadline and not stop.is_set():
            if idle_once(client, min(deadline, time.monotonic() + IDLE_RENEW), stop):
                return True
    except SourceError as error:  # the folder cannot be opened: poll() will say so
        log.debug("no IDLE: %s", error)
        stop.wait(max(deadline - time.monotonic(), 0.0))
    except NETWORK_ERRORS as error:
        log.info("the IMAP connection to %s broke while idle (%s); reconnecting", where, reason(error))
        drop()
        return not stop.is_set()
    return False


def can_idle(client: imapclient.IMAPClient) -> bool:
    try:
        return client.has_capability("IDLE")
    except NETWORK_ERRORS:
        return False


def idle_once(client: imapclient.IMAPClient, until: float, stop: threading.Event) -> bool:
    """One IDLE command, ended by DONE at `until` (monotonic), at `stop` or at the first new message.
    True on new mail."""
    client.idle()
    news = False
    try:
        while not news and not stop.is_set() and (left := until - time.monotonic()) > 0:
            started = time.monotonic()
            responses = client.idle_check(timeout=min(STOP_CHECK, left))
            news = any(is_new_mail(response) for response in responses)
            if not responses and time.monotonic() - started < min(STOP_CHECK, left) / 2:
                break  # readable but no line: the server closed the connection; DONE below tells
    finally:
        _, responses = client.idle_done()  # raises on a dead connection
    return news or any(is_new_mail(response) for response in responses)


def is_new_mail(response) -> bool:
    """An untagged `* n EXISTS` (the folder grew); EXPUNGE, FETCH flag changes and keep-alives are not."""
    return isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS"
