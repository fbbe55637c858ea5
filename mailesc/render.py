"""Escalation mails: Jinja2 templates rendered in a sandbox, the thread attached as message/rfc822 parts."""

from __future__ import annotations

import re
from io import BytesIO
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email import message_from_bytes
from email.generator import BytesGenerator
from email.policy import SMTP, compat32
from email.utils import format_datetime, getaddresses
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from mailesc.errors import ConfigError
from mailesc.parse import clean

ATTACHMENT_BUDGET = 20 * 1024 * 1024  # bytes of thread messages attached to one escalation at most
_LINE_ENDINGS = re.compile(rb"\r\n|\r(?!\n)")
_ORIGINAL = compat32.clone(linesep="\r\n")  # attached originals: parsed leniently, written back as they were


@dataclass(frozen=True)
class Attachment:
    name: str  # e.g. "01-customer.eml"
    data: bytes


@dataclass(frozen=True)
class OutgoingMail:
    message_id: str
    sender: str  # envelope sender address
    recipients: tuple[str, ...]
    data: bytes


class Templates:
    """The templates folder: NAME.txt.j2 is required for every template used, NAME.html.j2 is optional."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(self.folder)),
            undefined=jinja2.StrictUndefined,
            autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, name: str, context: dict) -> tuple[str, str, str | None]:
        """(subject, text, html or None). The text template sets the subject: `{% set mail_subject = ... %}`."""
        text_module = self._template(f"{name}.txt.j2").make_module(context)
        subject = clean(str(getattr(text_module, "mail_subject", "")) or f"Escalation: {context.get('subject', '')}")
        html = None
        if (self.folder / f"{name}.html.j2").exists():
            html = str(self._template(f"{name}.html.j2").make_module(context))
        return subject, str(text_module), html

    def check(self, names, sample: dict) -> None:
        """Load and render each template with `sample`, raising ConfigError naming the first problem."""
        if not self.folder.is_dir():
            raise ConfigError(self.folder, "", "the templates folder does not exist")
        for name in sorted(names):
            try:
                self.render(name, sample)
            except jinja2.TemplateNotFound as error:
                raise ConfigError(self.folder / str(error), "", "template not found") from None
            except jinja2.TemplateSyntaxError as error:
                raise ConfigError(error.filename or self.folder, f"line {error.lineno}", error.message) from None
            except (jinja2.TemplateError, TypeError, ValueError) as error:
                raise ConfigError(self.folder / f"{name}.txt.j2", "", f"cannot be rendered: {error}") from None

    def _template(self, filename: str) -> jinja2.Template:
        return self.env.get_template(filename)


def build_mail(*, sender: str, to: list[str], subject: str, text: str, html: str | None, message_id: str,
               references: list[str], date: datetime, headers: dict[str, str],
               attachments: list[Attachment], envelope_sender: str | None = None) -> OutgoingMail:
    """A MIME message ready for the transport. Every value put in a header is cleaned of control characters.
    The envelope sender is the From address unless given ("" is the null sender of RFC 3834 auto-replies)."""
    mail = EmailMessage(policy=SMTP)
    mail["From"] = clean(sender)
    mail["To"] = ", ".join(clean(address) for address in to)
    mail["Subject"] = clean(subject)
    mail["Date"] = format_datetime(date)
    mail["Message-ID"] = message_id
    if references:
        mail["In-Reply-To"] = references[-1]
        mail["References"] = " ".join(references)
    for name, value in headers.items():
        mail[name] = clean(value)
    mail.set_content(text)
    if html is not None:
        mail.add_alternative(html, subtype="html")
    if attachments:
        mail.make_mixed()
        for attachment in attachments:
            mail.attach(_rfc822_part(attachment))
    if envelope_sender is None:
        envelope_sender = getaddresses([clean(sender)])[0][1]
    return OutgoingMail(message_id=message_id, sender=envelope_sender, recipients=tuple(to), data=_flatten(mail))


def _flatten(mail) -> bytes:
    """Serialise with each part's own policy, so attached originals are written as they were parsed
    (the SMTP policy would re-fold their headers and choke on the odd encodings found in real mail)."""
    buffer = BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=None).flatten(mail)
    return buffer.getvalue()


def _rfc822_part(attachment: Attachment) -> MIMEPart:
    """The original message as a message/rfc822 attachment, parsed leniently so 8-bit bytes survive.

    A message too broken to be written back (say, a multipart without a usable boundary holding
    8-bit text) is attached as it is, base64-encoded, instead: the manager still gets it."""
    data = _LINE_ENDINGS.sub(b"\n", attachment.data)
    original = message_from_bytes(data, policy=_ORIGINAL)
    part = MIMEPart(policy=SMTP)
    try:
        _flatten(original)
    except (UnicodeError, LookupError, ValueError, TypeError):
        part.set_content(attachment.data, maintype="application", subtype="octet-stream",
                         disposition="attachment", filename=attachment.name)
        return part
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = f'attachment; filename="{attachment.name}"'
    if not data.isascii():
        part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload([original])
    return part
