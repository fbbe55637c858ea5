"""Where messages come from. A source knows its protocol and nothing about SLAs.

poll(sync) yields the messages that are new since the state kept in `sync` (a mapping the store
persists), lazily, and updates that state once they were all read; fetch(keys) returns whole messages again, for attaching them.

A source may also offer wait(timeout, stop) -> bool: block up to `timeout` seconds until the mailbox reports
a change (IMAP IDLE) or `stop` is set, True when there may be new mail. Sources without it are waited for by
wait_for_mail(), which simply sleeps on `stop`."""

from __future__ import annotations

import threading
from typing import Iterable, MutableMapping, Protocol

from mailesc.model import RawMessage


class Source(Protocol):
    def poll(self, sync: MutableMapping[str, dict]) -> Iterable[RawMessage]: ...

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


class Waiting(Protocol):
    def wait(self, timeout: float, stop: threading.Event) -> bool: ...


def wait_for_mail(source, timeout: float, stop: threading.Event) -> bool:
    """Until new mail may be there (True), `stop` is set or `timeout` seconds have passed (False)."""
    wait = getattr(source, "wait", None)
    if wait is None:
        stop.wait(max(timeout, 0.0))
        return False
    return bool(wait(timeout, stop))


def open_source(mailbox_config):
    """The source the config asks for (connections are made lazily, on first use)."""
    if mailbox_config.kind == "imap":
        from mailesc.sources.imap import ImapSource

        return ImapSource(mailbox_config)
    from mailesc.sources.maildir import MaildirSource

    return MaildirSource(mailbox_config.path, mailbox_config.folders, mailbox_config.sent_folder)
