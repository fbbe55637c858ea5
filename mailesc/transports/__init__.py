"""Where escalation mails go: an SMTP server, or an outbox Maildir (the embedded default and replay)."""

from __future__ import annotations

from typing import Callable, Protocol

from mailesc.render import OutgoingMail


Settle = Callable[[str, "Exception | None"], None]


class Transport(Protocol):
    def send(self, mails: list[OutgoingMail], settle: Settle | None = None) -> dict[str, Exception | None]:
        """Hand over `mails`; per Message-ID None when accepted, or the TransportError that stopped it.
        `settle(message_id, error)` is called as soon as each one is known, before the next is sent."""


def open_transport(smtp_config) -> Transport:
    if smtp_config.kind == "smtp":
        from mailesc.transports.smtp import SmtpTransport

        return SmtpTransport(smtp_config)
    from mailesc.transports.maildir import MaildirOutbox

    return MaildirOutbox(smtp_config.path)
