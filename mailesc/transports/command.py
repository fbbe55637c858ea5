"""Send by piping each mail to a local program, such as `sendmail -t -oi` on a host with a local MTA.

`[smtp] kind = "command"` with `command = ["/usr/sbin/sendmail", "-t", "-oi"]`: the program and its arguments
as a list, run without a shell (nothing in the config is ever parsed as a command line). The mail (headers and
body, as an SMTP server would get it) goes to its standard input; its To header holds every recipient, so
sendmail's `-t` reads them from there. The envelope sender follows the arguments as `-f ADDRESS` (`-f <>`, the
null sender, for acknowledgements to customers, RFC 3834), unless `envelope_option = ""` says the program takes
none. The program gets only the environment variables a mail program may need (ENVIRONMENT, and the LC_*
locale ones): not the ones that hold mailesc's passwords.

Exit status 0 is accepted. EX_TEMPFAIL (75), a program that runs past `timeout_seconds`, is stopped by a signal
or cannot be started is a temporary failure: the mail is retried with backoff like an SMTP 4xx. Any other status
is permanent, like an SMTP 5xx. The error says the status and the first line of what the program wrote to
standard error, with addresses and quoted text left out: mail programs echo recipients and subjects there, and
an error reaches the logs and `status`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailesc.errors import EX_TEMPFAIL, PermanentTransportError, TemporaryTransportError
from mailesc.kinds import Kind

if TYPE_CHECKING:
    from mailesc.config import SmtpConfig
    from mailesc.model import OutgoingMail

EXAMPLE = '["/usr/sbin/sendmail", "-t", "-oi"]'
# sysexits.h, for the error: what a mail program means by the statuses it documents
EXIT_NAMES = {64: "EX_USAGE", 65: "EX_DATAERR", 66: "EX_NOINPUT", 67: "EX_NOUSER", 68: "EX_NOHOST",
              69: "EX_UNAVAILABLE", 70: "EX_SOFTWARE", 71: "EX_OSERR", 72: "EX_OSFILE", 73: "EX_CANTCREAT",
              74: "EX_IOERR", 75: "EX_TEMPFAIL", 76: "EX_PROTOCOL", 77: "EX_NOPERM", 78: "EX_CONFIG"}
SUMMARY_LIMIT = 160
ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "MAIL_CONFIG")  # MAIL_CONFIG: Postfix's


@dataclass(frozen=True)
class CommandConfig:
    argv: tuple[str, ...]  # the program and its arguments
    timeout: float  # seconds the program may run for one mail
    envelope_option: str = "-f"  # followed by the envelope sender; "" passes none

    @property
    def program(self) -> str:
        return self.argv[0] if self.argv else "?"


class CommandTransport:
    def __init__(self, config: SmtpConfig) -> None:
        self.config: CommandConfig = config.settings

    def send(self, mails: list[OutgoingMail], settle=None) -> dict[str, Exception | None]:
        results: dict[str, Exception | None] = {}
        for mail in mails:
            results[mail.message_id] = self._run(mail)
            if settle:
                settle(mail.message_id, results[mail.message_id])
        return results

    def check(self) -> dict:
        """What `mailesc check` reports: the command line (the program was found when the config was read);
        nothing is run, so nothing is sent."""
        config = self.config
        return {"kind": "command", "command": shlex.join(config.argv), "timeout": f"{config.timeout:g}s",
                "envelope sender": f"{config.envelope_option} ADDRESS" if config.envelope_option else "not passed"}

    def arguments(self, mail: OutgoingMail) -> list[str]:
        if not self.config.envelope_option:
            return list(self.config.argv)
        return [*self.config.argv, self.config.envelope_option, mail.sender or "<>"]

    def _run(self, mail: OutgoingMail) -> Exception | None:
        program, timeout = self.config.program, self.config.timeout
        try:
            process = subprocess.Popen(self.arguments(mail), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, env=environment(), start_new_session=True)
        except OSError as error:  # found when the config was read; gone or broken since: the mails wait
            return TemporaryTransportError(f"the mail command {program} could not be started: "
                                           f"{error.strerror or error}")
        try:
            _, stderr = process.communicate(mail.data, timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            return TemporaryTransportError(f"the mail command {program} did not finish within {timeout:g}s "
                                           f"(timeout_seconds) and was stopped")
        status = process.returncode
        if status == 0:
            return None
        said = summary(stderr)
        said = f": {said}" if said else ""
        if status < 0:
            return TemporaryTransportError(f"the mail command {program} was stopped by signal {-status}{said}")
        name = f" ({EXIT_NAMES[status]})" if status in EXIT_NAMES else ""
        kind = TemporaryTransportError if status == EX_TEMPFAIL else PermanentTransportError
        return kind(f"the mail command {program} exited {status}{name}{said}")


def environment() -> dict[str, str]:
    """What the program inherits of mailesc's environment: ENVIRONMENT and the locale, never a password."""
    return {name: value for name, value in os.environ.items() if name in ENVIRONMENT or name.startswith("LC_")}


def _stop(process: subprocess.Popen) -> None:
    """Kill the program and whatever it started (it runs in its own session), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stderr):
        if stream:
            stream.close()


_ADDRESS = re.compile(r"<[^>]*>|\S*@\S*")
_QUOTED = re.compile(r"\"[^\"]*\"?|'[^']*'?|`[^`]*`?")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def summary(stderr: bytes) -> str:
    """The first line the program wrote to standard error, without what may be customer data: addresses
    (and anything in angle brackets) and quoted text are replaced by "…", and it is cut short."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return ""
    text = " ".join(_UNPRINTABLE.sub(" ", lines[0]).split())
    text = _QUOTED.sub("…", _ADDRESS.sub("…", text))
    if len(text) > SUMMARY_LIMIT:
        text = text[:SUMMARY_LIMIT - 1] + "…"
    more = len(lines) - 1
    return text + (f" (and {more} more line{'s' if more > 1 else ''})" if more else "")


# -- the kind: `[smtp] kind = "command"` ------------------------------------------------------------------------


def read_settings(section, chosen: bool) -> CommandConfig | None:
    """`command` (required when chosen), `timeout_seconds` (shared with the server kinds) and `envelope_option`.
    Only the chosen kind needs its program to exist: a config may name one for a host it does not run on."""
    timeout = section.number("timeout_seconds", 30, minimum=1)
    option = section.text("envelope_option", "-f")
    if option and not re.fullmatch(r"-[A-Za-z0-9-]+", option):
        section.problem("envelope_option", f'must be an option like "-f", or "" for a program that takes no '
                                           f"envelope sender, not {option!r}")
        option = "-f"
    if "command" not in section.table:
        if chosen:
            section.problem("command", f"is required with kind = \"command\": the program and its arguments, "
                                       f"like {EXAMPLE}")
        return None
    value = section.table["command"]
    if isinstance(value, str):
        section.problem("command", f"must be a list like {EXAMPLE}: the program and its arguments, never a shell "
                                   f"command line")
        return None
    if not isinstance(value, list) or not value or not all(isinstance(word, str) and word for word in value):
        section.problem("command", f"must be a non-empty list of strings like {EXAMPLE}")
        return None
    if chosen:
        problem = program_problem(value[0])
        if problem:
            section.problem("command", problem)
    return CommandConfig(argv=tuple(value), timeout=float(timeout), envelope_option=option)


def program_problem(program: str) -> str | None:
    """Why `program` cannot be run, or None: a path must be absolute and executable, a bare name on PATH."""
    if "/" not in program:
        return None if shutil.which(program) else f"no program {program!r} on PATH (give its absolute path)"
    path = Path(program)
    if not path.is_absolute():
        return f"{program} is not an absolute path (like /usr/sbin/sendmail)"
    if not path.is_file() or not os.access(path, os.X_OK):
        return f"{program} is not an executable file"
    return None


def _open(smtp_config) -> CommandTransport:
    return CommandTransport(smtp_config)


KIND = Kind("command", keys=("command", "timeout_seconds", "envelope_option"), settings=read_settings, open=_open)
