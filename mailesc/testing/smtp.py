"""An SMTP sink: a real aiosmtpd server on 127.0.0.1 that records every message it accepts.

``SmtpSink().start()`` accepts any AUTH PLAIN/LOGIN; ``starttls=``/``implicit_tls=`` (an ``ssl.SSLContext``, e.g.
from ``TlsAuthority.server_context()``) serve SMTP over TLS; ``xoauth2_token=`` offers only AUTH XOAUTH2 and accepts
only that token. ``fail_next``/``refuse_rcpt`` program the server's refusals; ``wait_for(count)`` blocks until mail
arrived. aiosmtpd (the ``test`` extra: ``pip install 'mailesc[test]'``) is imported only when a sink starts, so this
module imports without it.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import TYPE_CHECKING

from mailesc.testing.wait import LOCALHOST, free_port

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller  # imported for real only when a sink starts

__all__ = ["SinkMessage", "SmtpSink", "XOAuth2Attempt", "parse_xoauth2"]


@dataclass
class SinkMessage:
    """One message the sink accepted: the envelope, the raw content and the parsed message, when and how."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    message: EmailMessage
    received_at: datetime
    auth_login: str | None = None
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    tls: bool = False  # the DATA arrived over TLS (STARTTLS or implicit TLS)
    tls_version: str | None = None  # e.g. "TLSv1.3"
    starttls: bool = False  # the TLS came from STARTTLS (aiosmtpd's session.ssl is set)
    auth_mechanism: str | None = None  # "XOAUTH2" on an xoauth2 sink (None for the accept-all PLAIN/LOGIN)


def _tls_state(server, session) -> tuple[bool, str | None, bool]:
    """(tls active, TLS version, via STARTTLS) for an aiosmtpd SMTP protocol instance."""
    transport = getattr(server, "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    version = ssl_object.version() if ssl_object is not None else None
    return ssl_object is not None, version, getattr(session, "ssl", None) is not None


class _AcceptAllAuthenticator:
    """aiosmtpd authenticator that accepts any AUTH PLAIN/LOGIN credentials."""

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=True, handled=False, auth_data=auth_data)


@dataclass(frozen=True)
class XOAuth2Attempt:
    """One AUTH XOAUTH2 an xoauth2 sink saw: the user and bearer token sent, and whether it was accepted."""

    user: str
    token: str
    accepted: bool


@dataclass(frozen=True)
class _XOAuth2Login:
    login: str
    token: str
    mechanism: str = "XOAUTH2"


def parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    """(user, token) of a decoded XOAUTH2 initial response ``user=U^Aauth=Bearer T^A^A``, or None."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    fields = dict(part.split("=", 1) for part in text[:-2].split("\x01") if "=" in part)
    auth = fields.get("auth", "")
    if "user" not in fields or not auth.lower().startswith("bearer "):
        return None
    return fields["user"], auth[7:]


class _SinkHandler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # aiosmtpd's own behaviour, plus a note of whether the transaction started under TLS.
        self.sink._note_mail(address, _tls_state(server, session)[0])
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.sink._refused_code(address)
        if code is not None:
            return f"{code} 5.1.1 <{address}>: Recipient address rejected (smtp_sink.refuse_rcpt)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        failure = self.sink._take_failure()
        if failure is not None:
            return failure
        self.sink._record(session, envelope, server)
        return "250 OK: queued by smtp_sink"


class _XOAuth2SinkHandler(_SinkHandler):
    """The sink's handler plus ``AUTH XOAUTH2`` (aiosmtpd finds ``auth_*`` methods on the handler)."""

    async def auth_XOAUTH2(self, server, args):
        from base64 import b64decode

        from aiosmtpd.smtp import AuthResult

        if len(args) == 2:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except Exception:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        parsed = parse_xoauth2(blob)
        if parsed is None:
            await server.push("501 5.5.2 Malformed XOAUTH2 initial response")
            return AuthResult(success=False, handled=True)
        user, token = parsed
        accepted = token == self.sink.valid_token
        self.sink._note_xoauth2(XOAuth2Attempt(user, token, accepted))
        if accepted:
            return AuthResult(success=True, handled=False, auth_data=_XOAuth2Login(user, token))
        # Like Gmail: a base64 JSON error as a 334 challenge, the client answers an empty line, then 535.
        await server.challenge_auth('{"status":"401","schemes":"Bearer","scope":"https://mail.example.test/"}')
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


class SmtpSink:
    """A real aiosmtpd server on 127.0.0.1 that records every accepted message.

    ``starttls=`` a server ``ssl.SSLContext``: STARTTLS is offered and required
    before MAIL (aiosmtpd's ``require_starttls``). ``implicit_tls=`` a context:
    SMTPS, TLS from the first byte. ``.tls`` says which ("starttls", "tls" or None).
    Every ``SinkMessage`` records ``tls``/``tls_version``/``starttls``; ``mail_commands``
    lists every MAIL FROM that reached the handler as ``(address, tls_active)`` (with
    ``require_starttls`` aiosmtpd refuses a MAIL before STARTTLS without calling it).

    ``xoauth2_token=`` a token: the sink offers only ``AUTH XOAUTH2`` and accepts only that
    token (``.valid_token``); ``.xoauth2_attempts`` records every try's user and token, and an
    accepted message's ``auth_login``/``auth_mechanism`` are the user and ``"XOAUTH2"``.
    """

    def __init__(
        self,
        host: str = LOCALHOST,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        xoauth2_token: str | None = None,
    ):
        if starttls is not None and implicit_tls is not None:
            raise ValueError("SmtpSink: give starttls or implicit_tls, not both")
        self.host = host
        self.port: int | None = None
        self.starttls_context = starttls
        self.implicit_tls_context = implicit_tls
        self.tls = "starttls" if starttls is not None else "tls" if implicit_tls is not None else None
        self._mail_commands: list[tuple[str, bool]] = []
        self._messages: list[SinkMessage] = []
        self._cond = threading.Condition()
        self._failures: list[str] = []
        self._refused: dict[str, int] = {}
        self.valid_token = xoauth2_token
        self._xoauth2: list[XOAuth2Attempt] = []
        self.controller: Controller | None = None

    def start(self) -> "SmtpSink":
        """Start on a free port; a sink that ran before comes back on its old port (a server restart)."""
        from aiosmtpd.controller import Controller

        last_error: Exception | None = None
        for _ in range(3):
            port = self.port or free_port(self.host)
            tls_kwargs: dict = {}
            if self.starttls_context is not None:
                tls_kwargs = {"tls_context": self.starttls_context, "require_starttls": True}
            elif self.implicit_tls_context is not None:
                tls_kwargs = {"ssl_context": self.implicit_tls_context}
            if self.valid_token is not None:  # offer only XOAUTH2, accepting only valid_token
                handler: _SinkHandler = _XOAuth2SinkHandler(self)
                tls_kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
            else:
                handler = _SinkHandler(self)
            controller = Controller(
                handler,
                hostname=self.host,
                port=port,
                auth_require_tls=False,
                authenticator=_AcceptAllAuthenticator(),
                ready_timeout=10.0,
                **tls_kwargs,
            )
            try:
                controller.start()
            except Exception as exc:  # port race, retry with another one
                last_error = exc
                continue
            self.controller, self.port = controller, port
            return self
        raise RuntimeError(f"could not start aiosmtpd Controller: {last_error!r}")

    def stop(self) -> None:
        """Stop the server (its port is free again); ``start()`` brings it back on the same port."""
        if self.controller is not None:
            controller, self.controller = self.controller, None
            controller.stop()

    # ---- programming faults

    def fail_next(self, code: int, text: str = "Requested action aborted", times: int = 1) -> None:
        """Answer the next ``times`` DATA commands with ``code text`` instead of 250."""
        with self._cond:
            self._failures.extend([f"{code} {text}"] * times)

    def refuse_rcpt(self, address: str, code: int = 550) -> None:
        """Refuse RCPT TO for ``address`` (case-insensitive) with ``code``."""
        with self._cond:
            self._refused[address.strip("<>").lower()] = code

    def _take_failure(self) -> str | None:
        with self._cond:
            return self._failures.pop(0) if self._failures else None

    def _refused_code(self, address: str) -> int | None:
        with self._cond:
            return self._refused.get(address.strip("<>").lower())

    # ---- recording

    def _note_xoauth2(self, attempt: "XOAuth2Attempt") -> None:
        with self._cond:
            self._xoauth2.append(attempt)

    @property
    def xoauth2_attempts(self) -> list["XOAuth2Attempt"]:
        """Every AUTH XOAUTH2 seen (user, token, accepted), oldest first (xoauth2 sinks only)."""
        with self._cond:
            return list(self._xoauth2)

    def _note_mail(self, address: str, tls: bool) -> None:
        with self._cond:
            self._mail_commands.append((address, tls))

    @property
    def mail_commands(self) -> list[tuple[str, bool]]:
        """Every MAIL FROM that reached the handler, as ``(address, tls_active)``, oldest first."""
        with self._cond:
            return list(self._mail_commands)

    def _record(self, session, envelope, server=None) -> None:
        tls, tls_version, via_starttls = _tls_state(server, session)
        content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        auth = getattr(session, "auth_data", None)
        login = getattr(auth, "login", None)
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        record = SinkMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=content,
            message=email.message_from_bytes(content, policy=email.policy.default),
            received_at=datetime.now(timezone.utc),
            auth_login=login,
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
            tls=tls,
            tls_version=tls_version,
            starttls=via_starttls,
            auth_mechanism=getattr(auth, "mechanism", None),
        )
        with self._cond:
            self._messages.append(record)
            self._cond.notify_all()

    @property
    def messages(self) -> list[SinkMessage]:
        """Every accepted message, oldest first (a copy of the list)."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[SinkMessage]:
        """Block until at least ``count`` messages arrived; return them all."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._messages) >= count, timeout=timeout)
            if not ok:
                got = [
                    f"{m.mail_from} -> {m.rcpt_tos}: {m.message.get('Subject')!r}"
                    for m in self._messages
                ]
                raise AssertionError(
                    f"smtp_sink on {self.host}:{self.port}: expected at least {count} message(s) "
                    f"within {timeout}s, got {len(self._messages)}: {got}"
                )
            return list(self._messages)

    def clear(self) -> None:
        """Forget the recorded messages and MAIL commands (programmed failures/refusals stay)."""
        with self._cond:
            self._messages.clear()
            self._mail_commands.clear()

    def reset(self) -> None:
        """Forget messages, pending ``fail_next`` failures and ``refuse_rcpt`` refusals."""
        with self._cond:
            self._messages.clear()
            self._mail_commands.clear()
            self._failures.clear()
            self._refused.clear()
            self._xoauth2.clear()

    def __repr__(self) -> str:
        tls = f" {self.tls}" if self.tls else ""
        return f"<SmtpSink {self.host}:{self.port}{tls} messages={len(self._messages)}>"
