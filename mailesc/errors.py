"""The errors mailesc raises on purpose, each mapped to what the operator must do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailesc.policies import Policies

EX_CONFIG = 78  # sysexits.h EX_CONFIG
EX_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE
EX_DATAERR = 65  # sysexits.h EX_DATAERR
EX_TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'host'?)` after a problem with a misspelt name (a key, a section, a kind, a template), when
    one of the `known` names is close to `word` (whatever their case: `kind = "IMAP"`); "" when none is."""
    lowered = {name.lower(): name for name in known}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


class MailescError(Exception):
    """Base class: a message meant for the operator, never a traceback."""

    exit_code = 1


class UsageError(MailescError):
    """The command line is wrong."""

    exit_code = 64  # sysexits.h EX_USAGE


class ConfigError(MailescError):
    """The configuration, a policy or a template is wrong: fix the file."""

    exit_code = EX_CONFIG
    partial: Policies | None = None  # from load_policies: the rules without problems (their templates are checked)

    def __init__(self, file, key, problem):
        self.problems = [(str(file), key, problem)]
        super().__init__(self._describe(*self.problems[0]))

    @classmethod
    def many(cls, problems: list[tuple[str, str, str]]) -> "ConfigError":
        """One error that names every problem found, one per line."""
        error = cls(*problems[0])
        error.problems = list(problems)
        error.args = ("\n".join(cls._describe(*p) for p in problems),)
        return error

    @staticmethod
    def _describe(file, key, problem):
        return f"{file}: {key}: {problem}" if key else f"{file}: {problem}"


class SourceError(MailescError):
    """The mailbox could not be read (server down, login refused, folder missing)."""

    exit_code = EX_UNAVAILABLE


class TransportError(MailescError):
    """An escalation could not be handed to the mail server."""

    exit_code = EX_UNAVAILABLE


class TemporaryTransportError(TransportError):
    """Worth retrying later: connection refused, 4xx replies, timeouts."""


class PermanentTransportError(TransportError):
    """Retrying will not help: 5xx replies, every recipient refused."""


class PartiallyRefused(TransportError):
    """The mail went out, but the server refused some of its recipients."""


class StoreError(MailescError):
    """The store (or its reviews or archive) cannot be read or written: damaged, empty, unreadable."""

    exit_code = EX_DATAERR


class StoreBusy(StoreError):
    """Another mailesc process holds the store's lock: nothing is wrong with the data, try again later."""

    exit_code = EX_TEMPFAIL


class StoreUnavailable(StoreError):
    """The store's database cannot be reached now (down, restarting, the network): nothing is wrong with the
    data, and nothing was written; trying again later is the cure."""

    exit_code = EX_TEMPFAIL


class StoreLoginRefused(StoreError):
    """The database refused mailesc's login (a wrong password or user in the config, or TLS settings that do not
    match the server's): a configuration problem, not damaged data; the daemon stops, and is not restarted until
    someone fixes the config."""

    exit_code = EX_CONFIG


class LeaseLost(MailescError):
    """This worker no longer holds a mailbox's lease (another worker took it, or it expired while the database
    was out of reach): nothing of that mailbox was written. Not a StoreError: nothing is wrong with the store; the
    worker drops that mailbox and goes on with the others."""

    exit_code = EX_TEMPFAIL


class ParseError(MailescError):
    """A message could not be understood; it goes to quarantine."""


class MessageFileError(MailescError):
    """A message file given on the command line cannot be read as a message (`policies explain`)."""

    exit_code = EX_DATAERR


def connection_problem(kind: str, where: str, error: BaseException, reason: str) -> str:
    """One line on why a server could not be used; a rejected certificate is said as such."""
    certificate = _find_certificate_error(error)
    if certificate is not None:
        return (f"the TLS certificate of the {kind} server {where} could not be verified: "
                f"{certificate.verify_message or certificate.reason} (a private CA? name it with ca_file)")
    return f"cannot reach the {kind} server {where}: {reason}"


def _find_certificate_error(error: BaseException | None, depth: int = 0):
    import ssl

    while error is not None and depth < 5:
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        nested = [arg for arg in getattr(error, "args", ()) if isinstance(arg, BaseException)]
        error = error.__cause__ or error.__context__ or (nested[0] if nested else None)
        depth += 1
    return None
