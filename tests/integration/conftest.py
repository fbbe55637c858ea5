"""Fixtures that start REAL servers for mailesc integration tests.

Fixtures (names are a contract used by other test files):

* ``dovecot``   (session)  -> ``DovecotServer``: private Dovecot on 127.0.0.1:<free port>
* ``mailbox``   (function) -> ``Mailbox``: a fresh IMAP user per test
* ``smtp_sink`` (function) -> ``SmtpSink``: a real aiosmtpd server recording messages

TLS (a throwaway CA; certificates for DNS:localhost and IP:127.0.0.1):

* ``tls_ca``             (session)  -> ``TlsAuthority``: ``.ca_file``, ``.cert_file``,
  ``.key_file``, ``.issue(name, dns=..., ips=...)``, ``.server_context()``, ``.client_context()``
* ``dovecot_tls``        (session)  -> ``DovecotServer`` with ``ssl = required``:
  IMAPS on ``.imaps_port``, STARTTLS on ``.port``; ``.logins(user)`` shows TLS or not
* ``mailbox_tls``        (function) -> ``Mailbox`` on ``dovecot_tls`` (``.imaps_port`` too)
* ``smtp_sink_starttls`` (function) -> ``SmtpSink`` offering and requiring STARTTLS
* ``smtp_sink_tls``      (function) -> ``SmtpSink`` speaking implicit TLS (SMTPS)

XOAUTH2:

* ``smtp_sink_xoauth2``  (function) -> ``SmtpSink`` offering only AUTH XOAUTH2, accepting
  only ``.valid_token``; ``.xoauth2_attempts`` records each try's user and token
* ``oauth_introspection`` (session) -> ``IntrospectionServer`` (RFC 7662 endpoint, ``.url``)
* ``dovecot_oauth``      (session)  -> ``DovecotServer`` with an oauth2 passdb using it
* ``mailbox_oauth``      (function) -> ``Mailbox`` on ``dovecot_oauth`` with ``.access_token``

See ``mailesc/testing/`` (``mailesc.testing.dovecot``, ``.smtp``, ``.tls``, ``.oauth``) for the full API.
"""

from __future__ import annotations

import pytest

import secrets

from mailesc.testing import (
    DovecotServer,
    IntrospectionServer,
    Mailbox,
    SmtpSink,
    TlsAuthority,
    find_dovecot,
    find_openssl,
)

DOVECOT_MISSING = "dovecot-imapd is not installed: apt-get install dovecot-imapd"
OPENSSL_MISSING = "the openssl command is not installed: apt-get install openssl"


def _running_dovecot(**options):
    """Start a private Dovecot for the session (skip where Dovecot is not installed); clean it up after."""
    if find_dovecot() is None:
        pytest.skip(DOVECOT_MISSING)
    server = DovecotServer(**options)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def dovecot():
    """A private Dovecot (plain IMAP, no TLS) for the whole test session.

    Attributes: ``.host``, ``.port``, ``.conf_path``, ``.log_path``, ``.root``;
    methods ``.stop()``, ``.start()`` (same port and data), ``.restart()``,
    ``.new_mailbox(prefix)``, ``.add_user(name, password)``, ``.log_tail()``.
    """
    yield from _running_dovecot()


@pytest.fixture
def mailbox(dovecot) -> Mailbox:
    """A fresh IMAP account (``support-N@example.test``) so tests are isolated."""
    dovecot.start()  # no-op when running; revives it if an earlier test stopped it
    return dovecot.new_mailbox("support")


@pytest.fixture
def smtp_sink():
    """A real aiosmtpd Controller on 127.0.0.1 that accepts any AUTH and records mail."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def tls_ca():
    """A throwaway CA and a server certificate for DNS:localhost + IP:127.0.0.1 (openssl CLI).

    ``.ca_file`` is what a client trusts (mailesc's ``ca_file``); ``.cert_file`` and
    ``.key_file`` are the server's. Deleted at the end of the session."""
    if find_openssl() is None:
        pytest.skip(OPENSSL_MISSING)
    authority = TlsAuthority.create()
    try:
        yield authority
    finally:
        authority.cleanup()


@pytest.fixture(scope="session")
def dovecot_tls(tls_ca):
    """A second private Dovecot that requires TLS: IMAPS on ``.imaps_port``, STARTTLS on ``.port``.

    Same API as ``dovecot``. Dovecot still lets 127.0.0.1 log in without TLS (it counts
    same-IP connections as secured): check ``.logins(user)`` to see whether TLS was used."""
    yield from _running_dovecot(tls=tls_ca)


@pytest.fixture
def mailbox_tls(dovecot_tls) -> Mailbox:
    """A fresh IMAP account on ``dovecot_tls``; its helper client uses STARTTLS with the test CA."""
    dovecot_tls.start()
    return dovecot_tls.new_mailbox("support")


@pytest.fixture
def smtp_sink_starttls(tls_ca):
    """Like ``smtp_sink``, but offering STARTTLS with the test certificate and refusing MAIL before it."""
    sink = SmtpSink(starttls=tls_ca.server_context()).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp_sink_tls(tls_ca):
    """Like ``smtp_sink``, but implicit TLS (SMTPS) with the test certificate."""
    sink = SmtpSink(implicit_tls=tls_ca.server_context()).start()
    try:
        yield sink
    finally:
        sink.stop()


# --------------------------------------------------------------------------- XOAUTH2


@pytest.fixture
def smtp_sink_xoauth2():
    """Like ``smtp_sink``, but offering only AUTH XOAUTH2 and accepting only ``.valid_token``."""
    sink = SmtpSink(xoauth2_token="smtp-at-" + secrets.token_urlsafe(18)).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def oauth_introspection():
    """A local OAuth 2 token introspection endpoint: ``.issue(user)`` makes a token, ``.url``."""
    server = IntrospectionServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot_oauth(oauth_introspection):
    """A third private Dovecot (plain IMAP) that also offers XOAUTH2/OAUTHBEARER, with tokens
    checked by ``oauth_introspection``; PLAIN/LOGIN still use the passwd-file passwords."""
    yield from _running_dovecot(oauth2=oauth_introspection)


@pytest.fixture
def mailbox_oauth(dovecot_oauth) -> Mailbox:
    """A fresh IMAP account on ``dovecot_oauth`` with ``.access_token`` (and ``.password`` for the helpers)."""
    dovecot_oauth.start()
    return dovecot_oauth.new_mailbox("support")
