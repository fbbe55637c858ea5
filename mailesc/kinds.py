"""Kinds of mailbox sources and mail transports, registered with their config schema and constructor.

A kind is what `[mailbox] kind` or `[smtp] kind` names. It declares the keys it reads in that table, how it
reads them (its settings: a ServerConfig for a kind that logs in to a server, a path, a command...), how it is
built, and what the start-up checks need to know of it. config.py, `check` and `open_source`/`open_transport`
only ask the registry, so a new kind is one new module with its declaration plus its tests, and one line that
registers it (the registries are in mailesc/sources/__init__.py and mailesc/transports/__init__.py).

Reading the config must not import a protocol library (imapclient, aiosmtplib): `open` imports the kind's
implementation only when a source or transport is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

Problems = list  # of (file, key, text), as in ConfigError


def _no_problems(file: Path, settings) -> Problems:
    return []


def _reads_nothing(settings) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    name: str
    keys: tuple[str, ...]  # the keys it reads in its table, besides the keys every kind of the table has
    # (section, chosen) -> its settings. Every registered kind of a table reads its keys whichever is chosen, so
    # a misspelt or mistyped key is found before the kind is switched; only the chosen one (chosen=True) checks
    # what matters when it is used (a required key, a file that must exist, plain text to a remote host).
    settings: Callable[[Any, bool], Any]
    open: Callable[[Any], Any]  # (MailboxConfig or SmtpConfig) -> the source or transport; imports it only now
    # (config file, settings) -> problems with the passwords or tokens it will need, found before starting
    credentials: Callable[[Path, Any], Problems] = _no_problems
    # sources: (settings) -> (key, identity, "the IMAP account u@h") of what it reads, or None: two mailboxes
    # reading the same mail would start two clocks for each message
    reads: Callable[[Any], "tuple[str, tuple, str] | None"] = _reads_nothing


class Registry:
    """The kinds one config table can name (`mailbox` or `smtp`), in the order of registration."""

    def __init__(self, table: str):
        self.table = table
        self._kinds: dict[str, Kind] = {}

    def register(self, kind: Kind) -> Kind:
        if kind.name in self._kinds:
            raise ValueError(f"{self.table} kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind
        return kind

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def __contains__(self, name: str) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def keys(self) -> tuple[str, ...]:
        """Every key any kind reads, each once, in the order of registration."""
        return tuple(dict.fromkeys(key for kind in self for key in kind.keys))
