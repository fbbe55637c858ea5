"""Escalation mails: Jinja2 templates rendered in a sandbox, what customers wrote made safe for headers, and
the thread attached byte for byte as message/rfc822 parts."""

from __future__ import annotations

import re
import unicodedata
from io import BytesIO
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email.generator import BytesGenerator
from email.headerregistry import HeaderRegistry
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailesc.errors import ConfigError
from mailesc.model import Attachment, OutgoingMail
from mailesc.parse import clean

if TYPE_CHECKING:  # jinja2 itself loads when a template is first needed
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

ATTACHMENT_BUDGET = 20 * 1024 * 1024  # bytes of thread messages attached to one escalation at most
_LINE_ENDINGS = re.compile(rb"\r\n|\r(?!\n)|\n")
HEADER_TEXT_LIMIT = 200  # characters of customer text (a subject, a name) in one header at most
MSG_ID_LIMIT = 250  # a longer Message-ID is not referenced (RFC 5322 lines end at 998)
REFERENCES_LIMIT = 20  # Message-IDs in References at most
_MSG_ID = re.compile(r"<[!-;=?-~]+>")  # printable ASCII, no spaces, no brackets inside
_ADDRESS = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+@(?:[A-Za-z0-9.\-]+|\[[A-Za-z0-9.:\-]+\])")  # plain, nothing to quote
_ID_HEADERS = frozenset({"message-id", "in-reply-to", "references"})
# Never in a header: controls, line and paragraph separators, lone surrogates, private use, bidi overrides.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class ComposeError(Exception):
    """A mail cannot be composed at all. The message names the problem and never quotes customer data."""


class _OutgoingPolicy(EmailPolicy):
    """The SMTP policy, except that Message-ID, In-Reply-To and References are written as build_mail folds them.

    The standard folder turns a long Message-ID into RFC 2047 words (which breaks threading in every mail
    client) and fails outright on odd ones (thousands of "<"); build_mail only lets well-formed ids through."""

    def header_store_parse(self, name, value):
        if name.lower() in _ID_HEADERS:
            return name, value
        if type(value) is not str:
            return super().header_store_parse(name, value)
        drawn = _DRAWN_BOUNDARY.fullmatch(value) if name.lower() == "content-type" else None
        if drawn:
            return name, self._with_boundary(name, *drawn.groups())
        return self._kept(name, value)

    def _kept(self, name: str, value: str):
        key = (name, value)
        stored = _STORED.get(key)
        if stored is None:
            stored = super().header_store_parse(name, value)  # a value it refuses raises, and is not kept
            _remember(_STORED, key, stored)
        return stored

    def _with_boundary(self, name: str, head: str, digits: str, tail: str):
        """The Content-Type header of a multipart part with the boundary the generator drew for it (set anew for
        every multipart part of every mail, so never kept): the kept header of the same text with zeros for
        the boundary's digits, the digits changed. Parsing and folding it anew was a tenth of composing a
        mail; tests/unit/test_render_kept_headers.py holds it to the stdlib's header, fold for fold."""
        zeros = "0" * len(digits)
        model = self._kept(name, head + zeros + tail)[1]
        header: Any = str.__new__(_boundary_class(type(model)), head + digits + tail)
        header.init(model.name, parse_tree=model._parse_tree, defects=list(model.defects),
                    params={key: value.replace(zeros, digits) if key == "boundary" else value
                            for key, value in model.params.items()})
        header._model, header._zeros, header._digits = model, zeros, digits
        return header

    def fold_binary(self, name, value):
        if hasattr(value, "_model"):  # a drawn boundary's Content-Type: its model's folded bytes, boundary changed
            return self.fold_binary(name, value._model).replace(value._zeros.encode(), value._digits.encode())
        if not hasattr(value, "name"):  # Message-ID and its kin, as build_mail folded them
            return super().fold_binary(name, value)
        key = (name, id(value))
        kept = _FOLDED.get(key)
        if kept is None or kept[0] is not value:
            kept = (value, super().fold_binary(name, value))  # the header kept with it: its id stays its own
            _remember(_FOLDED, key, kept)
        return kept[1]


# What the generator writes when it draws a multipart boundary: the stdlib's shape ("=" * 15, digits, "==")
# without the ".N" it adds when a text holds the boundary (that rare one takes the stdlib's own road).
_DRAWN_BOUNDARY = re.compile(r'(multipart/[a-z]+; boundary="={15})([0-9]{1,30})(=="\Z)')
_BOUNDARY_CLASSES: dict[type, type] = {}


def _boundary_class(kind: type) -> type:
    """The header class of `kind` whose fold (as str(mail) would ask) is its model's with the boundary changed."""
    if kind not in _BOUNDARY_CLASSES:
        def fold(self, *, policy):
            return self._model.fold(policy=policy).replace(self._zeros, self._digits)
        _BOUNDARY_CLASSES[kind] = type(kind.__name__, (kind,), {"fold": fold})
    return _BOUNDARY_CLASSES[kind]


# Most headers of escalation mails repeat from mail to mail (From, To, Auto-Submitted, the content and the
# attachment headers): the parsed header and its folded bytes are kept per (name, text), as parsing and folding
# them with the stdlib's header parser was half of composing a mail. Both are pure (the same text always gives
# the same header and bytes, and a header is never changed after it is made); a bounded number is kept.
_STORED: dict = {}
_FOLDED: dict = {}
_KEPT_AT_MOST = 4096


def _remember(cache: dict, key, value) -> None:
    if len(cache) >= _KEPT_AT_MOST:
        cache.clear()
    cache[key] = value


class _ClassKeepingRegistry(HeaderRegistry):
    """The stdlib's header registry, except that it makes the class for a kind of header once: the stdlib
    builds a new class (`type(...)`) for every header it sets, a tenth of composing a mail. The classes are
    the same either way (the kind's class and the base class, nothing else), so the headers are too."""

    def __init__(self):
        super().__init__()
        self._classes: dict[type, type] = {}

    def __getitem__(self, name):
        kind = self.registry.get(name.lower(), self.default_class)
        if kind not in self._classes:
            self._classes[kind] = super().__getitem__(name)
        return self._classes[kind]


_OUTGOING = _OutgoingPolicy(linesep="\r\n", refold_source="none", header_factory=_ClassKeepingRegistry())


class Templates:
    """The templates folder: NAME.txt.j2 is required for every template used, NAME.html.j2 is optional.

    With a `fallback` folder (the templates shipped in the package), a name the folder does not have is taken
    from there: the folder overrides the shipped templates one name at a time, and NAME.html.j2 always comes
    from the same folder as NAME.txt.j2, so a custom text never goes out beside a stock HTML part."""

    def __init__(self, folder: Path, fallback: Path | None = None):
        self.folder = Path(folder)
        self.fallback = Path(fallback) if fallback else None
        self._envs: dict[Path, SandboxedEnvironment] = {}

    def home(self, name: str) -> Path | None:
        """The folder NAME comes from, or None when no folder has it."""
        for folder in filter(None, (self.folder, self.fallback)):
            if (folder / f"{name}.txt.j2").is_file():
                return folder
        return None

    def names(self) -> set[str]:
        """Every template name on offer (for did-you-mean)."""
        return {path.name[:-len(".txt.j2")] for folder in filter(None, (self.folder, self.fallback))
                if folder.is_dir() for path in folder.glob("*.txt.j2")}

    def render(self, name: str, context: dict) -> tuple[str, str, str | None]:
        """(subject, text, html or None). The text template sets the subject: `{% set mail_subject = ... %}`."""
        home = self.home(name) or self.folder
        text_module = self._template(home, f"{name}.txt.j2").make_module(context)
        subject = clean(str(getattr(text_module, "mail_subject", "")) or f"Escalation: {context.get('subject', '')}")
        html = None
        if (home / f"{name}.html.j2").exists():
            html = str(self._template(home, f"{name}.html.j2").make_module(context))
        return subject, str(text_module), html

    def check(self, names, sample: dict) -> None:
        """Load and render each template with `sample`, raising one ConfigError naming every problem."""
        problems = self.problems(names, sample)
        if problems:
            raise ConfigError.many(problems)

    def problems(self, names, sample: dict) -> list[tuple[str, str, str]]:
        """(file, key, problem) for each template in `names` that is missing or does not render with `sample`."""
        if not self.folder.is_dir() and self.fallback is None:
            return [(str(self.folder), "", "the templates folder does not exist")]
        import jinja2  # loaded where templates are (see _template)

        problems = []
        for name in sorted(names):
            home = self.home(name) or self.folder
            try:
                self.render(name, sample)
            except jinja2.TemplateNotFound as error:
                problems.append((str(home / str(error)), "", "template not found"))
            except jinja2.TemplateSyntaxError as error:
                problems.append((str(error.filename or home), f"line {error.lineno}", error.message or "syntax error"))
            except (jinja2.TemplateError, TypeError, ValueError) as error:
                problems.append((str(home / f"{name}.txt.j2"), "", f"cannot be rendered: {error}"))
        return problems

    def _template(self, folder: Path, filename: str) -> jinja2.Template:
        import jinja2  # loads slowly: only a command that renders a mail pays for it
        from jinja2.sandbox import SandboxedEnvironment

        if folder not in self._envs:
            self._envs[folder] = SandboxedEnvironment(
                loader=jinja2.FileSystemLoader(str(folder)),
                undefined=jinja2.StrictUndefined,
                autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
            )
        return self._envs[folder].get_template(filename)


def build_mail(*, sender: str, to: list[str], subject: str, text: str, html: str | None, message_id: str,
               references: list[str], date: datetime, headers: dict[str, str],
               attachments: list[Attachment], envelope_sender: str | None = None) -> OutgoingMail:
    """A MIME message ready for the transport. Whatever a customer could have written is made safe first:
    header values lose control characters and line breaks and are shortened, recipients that are not plain
    addresses and Message-IDs that are not well formed are left out. Raises ComposeError only when the mail
    cannot exist at all (no sender, no recipient, a broken Message-ID of our own).
    The envelope sender is the From address unless given ("" is the null sender of RFC 3834 auto-replies)."""
    if not _MSG_ID.fullmatch(message_id or "") or len(message_id) > MSG_ID_LIMIT:
        raise ComposeError("the mail's own Message-ID is not well formed")
    recipients = [address for address in map(plain_address, to) if address]
    if not recipients:
        raise ComposeError("no recipient is a usable mail address")
    mail = EmailMessage(policy=_OUTGOING)
    try:
        mail["From"] = header_safe(sender, 400)
    except Exception as error:  # the header parser raises many kinds on odd input
        raise ComposeError(f"the sender address cannot be written ({type(error).__name__})") from None
    mail["To"] = ", ".join(recipients)
    mail["Subject"] = header_safe(subject)
    mail["Date"] = format_datetime(date)
    mail["Message-ID"] = message_id
    ids = usable_message_ids(references)
    if ids:
        mail["In-Reply-To"] = ids[-1]
        mail["References"] = fold_ids(ids)
    for name, value in headers.items():
        try:
            mail[name] = header_safe(value, 900)
        except Exception:  # the header parser raises many kinds on odd input
            continue  # an optional header that cannot be written is left out, not the mail
    mail.set_content(body_safe(text))
    if html is not None:
        mail.add_alternative(body_safe(html), subtype="html")
    if attachments:
        mail.make_mixed()
        for attachment in attachments:
            # typeshed asks for the container's class; a MIMEPart is a part (an EmailMessage would add MIME-Version)
            mail.attach(_rfc822_part(attachment))  # type: ignore[arg-type]
    if envelope_sender is None:
        envelope_sender = getaddresses([header_safe(sender, 400)])[0][1]
    return OutgoingMail(message_id=message_id, sender=envelope_sender, recipients=tuple(recipients),
                        data=_flatten(mail))


def plain_address(entry: str) -> str | None:
    """The address of `addr` or `Name <addr>` when it is a plain one (nothing to quote or fold), else None."""
    entry = header_safe(entry, 400)
    if _ADDRESS.fullmatch(entry):
        return entry
    name, angled, rest = entry.rpartition("<")
    address = rest[:-1].strip() if rest.endswith(">") and angled else ""
    return address if _ADDRESS.fullmatch(address) and "<" not in name and ">" not in name else None


def header_safe(text, limit: int = HEADER_TEXT_LIMIT) -> str:
    """`text` as one line that is safe in any header: control characters, line and paragraph separators,
    lone surrogates and bidi overrides become spaces (runs of spaces one), and at most `limit` characters."""
    text = str(text)
    if not (text.isprintable() and text.isascii()):
        text = "".join(" " if unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch in _BIDI_CONTROLS else ch
                       for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "\u2026"


def body_safe(text: str) -> str:
    """A body text that can be encoded: lone surrogates replaced, NULs removed."""
    return str(text).encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def usable_message_ids(ids) -> list[str]:
    """The well-formed, not absurdly long Message-IDs of `ids`, without repeats, the newest REFERENCES_LIMIT."""
    usable = [i for i in dict.fromkeys(str(i).strip() for i in ids) if len(i) <= MSG_ID_LIMIT and _MSG_ID.fullmatch(i)]
    return usable[:1] + usable[1:][-(REFERENCES_LIMIT - 1):] if len(usable) > REFERENCES_LIMIT else usable


def fold_ids(ids: list[str]) -> str:
    """Message-IDs separated by folding white space, lines kept under 78 characters where the ids allow."""
    lines, line = [], "References:"
    for message_id in ids:
        if len(line) + 1 + len(message_id) > 76 and line != "References:":
            lines.append(line)
            line = ""
        line += " " + message_id
    lines.append(line)
    return "\r\n".join(lines)[len("References: "):]


class _OwnPolicyGenerator(BytesGenerator):
    """Writes every part with its own policy: the standard generator hands its policy down to attached
    messages, and the SMTP policy would re-fold their headers (and choke on what real mail holds)."""

    def clone(self, fp):
        return self.__class__(fp, self._mangle_from_, None, policy=None)

    def _encode(self, s):
        return s.encode("ascii", "surrogateescape")  # an attached original's 8-bit bytes, as they were

    @classmethod
    def _make_boundary(cls, text=None):
        """The stdlib's boundary (the same random draw and shape), checked against the text with a substring
        search first: the stdlib compiles a new regular expression for each boundary to look for it (a twentieth
        of a replay). Only a text that holds the boundary at all goes through the stdlib's line-exact check."""
        boundary = super()._make_boundary()
        if text is None or ("--" + boundary).encode("ascii") not in text:
            return boundary
        candidate, counter = boundary, 0
        while re.search(b"^--" + re.escape(candidate.encode("ascii")) + b"(--)?$", text, re.MULTILINE):
            candidate, counter = f"{boundary}.{counter}", counter + 1
        return candidate


def _flatten(mail) -> bytes:
    buffer = BytesIO()
    _OwnPolicyGenerator(buffer, mangle_from_=False, policy=None).flatten(mail, linesep="\r\n")
    return buffer.getvalue()


def _rfc822_part(attachment: Attachment) -> MIMEPart:
    """The original message as a message/rfc822 attachment, its bytes as they were (line endings made CRLF):
    nothing in it is parsed or re-folded, so no header in it can break the escalation.

    A message that cannot travel as message/rfc822 (NUL bytes, lines over 998 bytes) is attached as
    application/octet-stream, base64-encoded, instead: the manager still gets it."""
    data = _LINE_ENDINGS.sub(b"\r\n", attachment.data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    part = MIMEPart(policy=_OUTGOING)
    if b"\x00" in data or any(len(line) > 998 for line in data.split(b"\r\n")):
        part.set_content(attachment.data, maintype="application", subtype="octet-stream",
                         disposition="attachment", filename=attachment.name)
        return part
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = f'attachment; filename="{attachment.name}"'
    if not data.isascii():
        part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload(data.decode("ascii", "surrogateescape"))
    return part
