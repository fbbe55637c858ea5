"""Send through an SMTP server with aiosmtplib: one connection per batch, TLS required when configured."""

from __future__ import annotations

import asyncio
import logging

import aiosmtplib

from mailesc.errors import ConfigError
from mailesc.errors import PartiallyRefused, connection_problem, PermanentTransportError, TemporaryTransportError, TransportError
from mailesc.model import OutgoingMail

trace = logging.getLogger("mailesc.trace.smtp")  # the protocol, for --trace only (see mailesc.logs)


class SmtpTransport:
    def __init__(self, config):
        self.server = config.server

    def send(self, mails: list[OutgoingMail], settle=None) -> dict[str, Exception | None]:
        if not mails:
            return {}
        results: dict[str, Exception | None] = {}
        try:
            asyncio.run(self._send_all(mails, results, settle))
        except TransportError as error:  # the connection failed: every mail not yet sent waits
            for mail in mails:
                if mail.message_id not in results:
                    results[mail.message_id] = error
                    if settle:
                        settle(mail.message_id, error)
        return results

    def check(self) -> dict:
        """Connect and log in without sending: what `mailesc check` reports."""
        return asyncio.run(self._check())

    async def _check(self) -> dict:
        async with self._client() as client:
            await self._login(client)
            return {"kind": "smtp", "server": f"{self.server.where} ({self.server.security})",
                    "extensions": sorted(client.esmtp_extensions)}

    def _client(self) -> _Connection:
        server = self.server
        return _Connection(_TracedSMTP(
            hostname=server.host, port=server.port, timeout=server.timeout,
            use_tls=server.security == "tls",
            start_tls=server.security == "starttls",  # True means required: never a silent downgrade
            tls_context=server.tls_context(),
        ), server.where)

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        if not self.server.username:
            return
        try:
            secret = self.server.token.read() if self.server.auth == "xoauth2" else self.server.password.read()
        except ConfigError as error:  # checked at start; gone since (a password file removed): the mails wait
            raise TemporaryTransportError(str(error)) from None  # and are retried with backoff, seen in status
        try:
            if self.server.auth == "xoauth2":
                await client.auth_xoauth2(self.server.username, secret)
            else:
                await client.login(self.server.username, secret or "")
        except aiosmtplib.SMTPAuthenticationError as error:  # fixing the credentials must let the mail go out
            what = "access token" if self.server.auth == "xoauth2" else "password"
            raise TemporaryTransportError(f"SMTP login refused for {self.server.username}: {error.code} "
                                          f"{error.message}; check the user name and {what}") from None

    async def _send_all(self, mails: list[OutgoingMail], results: dict, settle) -> None:
        async with self._client() as client:
            await self._login(client)
            for mail in mails:
                results[mail.message_id] = await _send_one(client, mail)
                if settle:
                    settle(mail.message_id, results[mail.message_id])


async def _send_one(client: aiosmtplib.SMTP, mail: OutgoingMail) -> Exception | None:
    try:
        refused, _ = await client.sendmail(mail.sender, list(mail.recipients), mail.data)
    except aiosmtplib.SMTPRecipientsRefused as error:
        # A 4xx at RCPT (greylisting, a full mailbox, a policy server that is down) says "try again later":
        # the mail waits for its retry like any temporary failure; only 5xx for every recipient is final.
        temporary = any(400 <= r.code < 500 for r in error.recipients)
        kind = TemporaryTransportError if temporary else PermanentTransportError
        return kind("every recipient was refused: " + "; ".join(
            f"{r.recipient}: {r.code} {r.message}" for r in error.recipients))
    except aiosmtplib.SMTPResponseException as error:
        kind = TemporaryTransportError if 400 <= error.code < 500 else PermanentTransportError
        return kind(f"the SMTP server answered {error.code} {error.message}")
    except (aiosmtplib.SMTPException, OSError) as error:
        return TemporaryTransportError(f"sending failed: {error}")
    if refused:
        return PartiallyRefused("some recipients were refused: " + "; ".join(
            f"{address}: {response.code} {response.message}" for address, response in refused.items()))
    return None


class _Connection:
    """`async with` around an aiosmtplib client that turns connection failures into TransportErrors."""

    def __init__(self, client: aiosmtplib.SMTP, where: str):
        self.client, self.where = client, where

    async def __aenter__(self) -> aiosmtplib.SMTP:
        try:
            await self.client.connect()
        except (aiosmtplib.SMTPException, OSError) as error:
            reason = getattr(error, "message", None) or str(error)
            raise TemporaryTransportError(connection_problem("SMTP", self.where, error, reason)) from None
        return self.client

    async def __aexit__(self, *exc) -> None:
        try:
            await self.client.quit()
        except (aiosmtplib.SMTPException, OSError):
            self.client.close()


class _TracedSMTP(aiosmtplib.SMTP):
    """The aiosmtplib client, logging each command and reply to the trace logger (only with --trace).
    Credentials never: what follows AUTH, and every answer to the server's 334 challenges, is hidden."""

    _authenticating = False

    async def connect(self, **kwargs) -> aiosmtplib.SMTPResponse:
        trace.debug("connecting to %s:%s", self.hostname, self.port)
        response = await super().connect(**kwargs)
        trace.debug("< %s", _reply(response))
        return response

    async def execute_command(self, *args: bytes, **kwargs) -> aiosmtplib.SMTPResponse:
        if trace.isEnabledFor(logging.DEBUG):
            words = b" ".join(args).decode("ascii", "replace").split(" ")
            if words[0].upper() == "AUTH":
                self._authenticating = True
                words = words[:2] + (["****"] if len(words) > 2 else [])
            elif self._authenticating:
                words = ["****"]
            trace.debug("> %s", " ".join(words))
        response = await super().execute_command(*args, **kwargs)
        self._authenticating = self._authenticating and response.code == 334
        trace.debug("< %s", _reply(response))
        return response

    async def data(self, message, /, **kwargs) -> aiosmtplib.SMTPResponse:
        response = await super().data(message, **kwargs)
        trace.debug("> DATA and the message (%d bytes) < %s", len(message), _reply(response))
        return response


def _reply(response: aiosmtplib.SMTPResponse) -> str:
    return f"{response.code} " + " | ".join(response.message.splitlines())
