"""The errors mailesc raises on purpose, each mapped to what the operator must do."""

EX_CONFIG = 78  # sysexits.h EX_CONFIG
EX_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE
EX_DATAERR = 65  # sysexits.h EX_DATAERR


class MailescError(Exception):
    """Base class: a message meant for the operator, never a traceback."""

    exit_code = 1


class UsageError(MailescError):
    """The command line is wrong."""

    exit_code = 64  # sysexits.h EX_USAGE


class ConfigError(MailescError):
    """The configuration, a policy or a template is wrong: fix the file."""

    exit_code = EX_CONFIG

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
    """The store file cannot be read, written or locked."""

    exit_code = EX_DATAERR


class ParseError(MailescError):
    """A message could not be understood; it goes to quarantine."""
