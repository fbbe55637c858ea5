"""Where messages come from. A source knows its protocol and nothing about SLAs.

poll(bookmarks) yields the messages that are new since the source's bookmarks (per folder, kept by the store),
lazily, and never writes the bookmarks itself: once every message was handed over, the generator returns the
bookmarks that moved, and the intake stage records them (`Poll` keeps that return value; a poll that fails
returns nothing, so nothing is marked as read that was not taken). fetch(keys) returns whole messages again,
for attaching them.

A source may also offer wait(timeout, stop) -> bool: block up to `timeout` seconds until the mailbox reports
a change (IMAP IDLE) or `stop` is set, True when there may be new mail. Sources without it are waited for by
wait_for_mail(), which simply sleeps on `stop`.

KINDS holds the kinds `[mailbox] kind` can name, each with its config keys and constructor (see mailesc.kinds)."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, MutableMapping, Protocol

from mailesc.config import SERVER_KEYS, read_server, server_credential_problems
from mailesc.kinds import Kind, Registry

if TYPE_CHECKING:
    from mailesc.model import RawMessage


class Source(Protocol):
    def poll(self, bookmarks: Mapping[str, dict]) -> Iterable[RawMessage]:
        """The new messages; a generator returns the bookmarks that moved (see the module's docstring)."""


    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


class Poll:
    """One poll of a source: iterate over it for the new messages; once they were all taken, `bookmarks` holds
    the bookmarks that moved, for the caller to record (empty while iterating, after a failure, and for a
    source that keeps none)."""

    def __init__(self, source: Source, bookmarks: Mapping[str, dict]):
        self._messages = source.poll(bookmarks)
        self.bookmarks: dict[str, dict] = {}

    def __iter__(self) -> Iterator[RawMessage]:
        if isinstance(self._messages, Generator):
            self.bookmarks = (yield from self._messages) or {}
        else:  # a list: a source that keeps no bookmarks
            yield from self._messages


def poll_into(source: Source, bookmarks: MutableMapping[str, dict]) -> list[RawMessage]:
    """Every new message of `source` at once, its moved bookmarks recorded in `bookmarks` (for tools and tests;
    the intake stage takes them a chunk at a time through `Poll`)."""
    poll = Poll(source, bookmarks)
    messages = list(poll)
    bookmarks.update(poll.bookmarks)
    return messages


class Waiting(Protocol):
    def wait(self, timeout: float, stop: threading.Event) -> bool: ...


def wait_for_mail(source, timeout: float, stop: threading.Event) -> bool:
    """Until new mail may be there (True), `stop` is set or `timeout` seconds have passed (False)."""
    wait = getattr(source, "wait", None)
    if wait is None:
        stop.wait(max(timeout, 0.0))
        return False
    return bool(wait(timeout, stop))


def own_keys(kind: str, keys: Iterable[str]) -> list[str]:
    """The keys, of those the engine and the outbox hand back to fetch(), that a source of `kind` gave out.

    A key is "KIND:..." and only the source that made it knows the rest (imap:UIDVALIDITY:UID:FOLDER,
    maildir:FOLDER:NAME). The store keeps keys across restarts: after a mailbox's kind was changed, its threads
    still hold keys of the old kind, which name nothing the new source can fetch (they are left out, as a
    message that is gone is)."""
    prefix = kind + ":"
    return [key for key in keys if key.startswith(prefix)]


def open_source(mailbox_config) -> Source:
    """The source the config asks for (connections are made lazily, on first use)."""
    return KINDS[mailbox_config.kind].open(mailbox_config)


KINDS = Registry("mailbox")


def _imap_settings(section, chosen: bool):
    server = read_server(section, used=chosen, default_security="tls", tls_port=993, other_port=143)
    if chosen and not server.username:
        section.problem("username", "is required for an IMAP mailbox")
    return server


def _open_imap(mailbox_config) -> Source:
    from mailesc.sources.imap import ImapSource

    return ImapSource(mailbox_config)


def _imap_reads(server):
    if not server.username:
        return None
    return ("username", ("imap", server.username.lower(), server.host.lower()),
            f"the IMAP account {server.username}@{server.host}")


def _maildir_settings(section, chosen: bool):
    return section.path("path", "Maildir") if chosen else None


def _open_maildir(mailbox_config) -> Source:
    from mailesc.sources.maildir import MaildirSource

    return MaildirSource(mailbox_config.path, mailbox_config.folders, mailbox_config.sent_folder)


def _maildir_reads(path):
    return ("path", ("maildir", path.resolve()), f"the Maildir {path}")


# The IMAP kind is declared here, not in sources/imap.py: reading the config must not import imapclient.
KINDS.register(Kind("imap", keys=SERVER_KEYS, settings=_imap_settings, open=_open_imap,
                    credentials=server_credential_problems, reads=_imap_reads))
KINDS.register(Kind("maildir", keys=("path",), settings=_maildir_settings, open=_open_maildir,
                    reads=_maildir_reads))
