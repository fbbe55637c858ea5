"""Where escalation mails go: an SMTP server, an outbox Maildir (the embedded default and replay), or a local
program such as sendmail (the `command` kind).

KINDS holds the kinds `[smtp] kind` can name, each with its config keys and constructor (see mailesc.kinds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

from mailesc.config import SERVER_KEYS, read_server, server_credential_problems
from mailesc.kinds import Kind, Registry
from mailesc.transports import command

if TYPE_CHECKING:
    from mailesc.model import OutgoingMail


Settle = Callable[[str, "Exception | None"], None]


class Transport(Protocol):
    def send(self, mails: list[OutgoingMail], settle: Settle | None = None) -> dict[str, Exception | None]:
        """Hand over `mails`; per Message-ID None when accepted, or the TransportError that stopped it.
        `settle(message_id, error)` is called as soon as each one is known, before the next is sent."""

    def check(self) -> dict:
        """What `mailesc check` reports about it: after connecting and logging in, for a kind with a server;
        nothing is sent."""


def open_transport(smtp_config) -> Transport:
    return KINDS[smtp_config.kind].open(smtp_config)


KINDS = Registry("smtp")


def _smtp_settings(section, chosen: bool):
    return read_server(section, used=chosen, default_security="starttls", tls_port=465, other_port=587)


def _open_smtp(smtp_config) -> Transport:
    from mailesc.transports.smtp import SmtpTransport

    return SmtpTransport(smtp_config)


def _outbox_settings(section, chosen: bool):
    return section.path("path", "var/outbox") if chosen else None


def _open_outbox(smtp_config) -> Transport:
    from mailesc.transports.maildir import MaildirOutbox

    return MaildirOutbox(smtp_config.path)


# The SMTP kind is declared here, not in transports/smtp.py: reading the config must not import aiosmtplib.
KINDS.register(Kind("smtp", keys=SERVER_KEYS, settings=_smtp_settings, open=_open_smtp,
                    credentials=server_credential_problems))
KINDS.register(Kind("outbox", keys=("path",), settings=_outbox_settings, open=_open_outbox))
KINDS.register(command.KIND)
