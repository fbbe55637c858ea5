"""Fixtures that start REAL servers for mailesc integration tests.

Fixtures (names are a contract used by other test files):

* ``dovecot``   (session)  -> ``servers.DovecotServer``: private Dovecot on 127.0.0.1:<free port>
* ``mailbox``   (function) -> ``servers.Mailbox``: a fresh IMAP user per test
* ``smtp_sink`` (function) -> ``servers.SmtpSink``: a real aiosmtpd server recording messages

See ``tests/integration/servers.py`` for the full API.
"""

from __future__ import annotations

import pytest

from tests.integration.servers import (
    DovecotServer,
    Mailbox,
    SmtpSink,
    find_dovecot,
)

DOVECOT_MISSING = "dovecot-imapd is not installed: apt-get install dovecot-imapd"


@pytest.fixture(scope="session")
def dovecot():
    """A private Dovecot (plain IMAP, no TLS) for the whole test session.

    Attributes: ``.host``, ``.port``, ``.conf_path``, ``.log_path``, ``.root``;
    methods ``.stop()``, ``.start()`` (same port and data), ``.restart()``,
    ``.new_mailbox(prefix)``, ``.add_user(name, password)``, ``.log_tail()``.
    """
    if find_dovecot() is None:
        pytest.skip(DOVECOT_MISSING)
    server = DovecotServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


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
