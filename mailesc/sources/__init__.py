"""Where messages come from. A source knows its protocol and nothing about SLAs.

poll(sync) returns the messages that are new since the state kept in `sync` (a mapping the store
persists) and updates that state; fetch(keys) returns whole messages again, for attaching them."""

from __future__ import annotations

from typing import Iterable, MutableMapping, Protocol

from mailesc.model import RawMessage


class Source(Protocol):
    def poll(self, sync: MutableMapping[str, dict]) -> list[RawMessage]: ...

    def fetch(self, keys: Iterable[str]) -> dict[str, bytes]: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


def open_source(mailbox_config):
    """The source the config asks for (connections are made lazily, on first use)."""
    if mailbox_config.kind == "imap":
        from mailesc.sources.imap import ImapSource

        return ImapSource(mailbox_config)
    from mailesc.sources.maildir import MaildirSource

    return MaildirSource(mailbox_config.path, mailbox_config.folders, mailbox_config.sent_folder)
