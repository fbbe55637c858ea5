"""Helpers for testing mailesc and programs around it with real servers (like aiosmtpd's ``testing``).

Shipped in the package so that mailesc's tests, its benchmarks and operators' own checks start the very same
throwaway servers. Nothing here imports pytest: the fixtures that wrap these classes live in the test suite's
``conftest.py`` files, and any runner can use the classes directly. One module per job:

* ``dovecot``   -- ``DovecotServer``, a private Dovecot (IMAP) on 127.0.0.1; ``Mailbox``, a fresh account on it
* ``smtp``      -- ``SmtpSink``, a real aiosmtpd server recording what it accepts (plain, TLS, XOAUTH2)
* ``postgres``  -- ``PostgresCluster``, a private PostgreSQL cluster on 127.0.0.1
* ``tls``       -- ``TlsAuthority``, a throwaway CA and server certificates
* ``oauth``     -- ``IntrospectionServer``, an OAuth 2 token introspection endpoint for XOAUTH2 logins
* ``webhook``   -- ``WebhookServer``, a chat incoming-webhook stand-in recording posts (can answer 500/429/400)
* ``wait``      -- ``wait_until`` (poll a condition, fail with a message), ``free_port``, ``port_accepts``

The names below are re-exported here, so ``from mailesc.testing import DovecotServer, SmtpSink`` works.
Third-party needs: aiosmtpd (``pip install 'mailesc[test]'``) is imported only when an ``SmtpSink`` starts,
psycopg only by the PostgreSQL helpers that talk to the server; imapclient is a dependency of mailesc itself.
"""

from mailesc.testing.dovecot import DovecotNotInstalled, DovecotServer, Mailbox, find_dovecot
from mailesc.testing.oauth import IntrospectionServer
from mailesc.testing.postgres import PostgresCluster
from mailesc.testing.smtp import SinkMessage, SmtpSink, XOAuth2Attempt, parse_xoauth2
from mailesc.testing.tls import TlsAuthority, find_openssl
from mailesc.testing.wait import LOCALHOST, free_port, port_accepts, wait_until
from mailesc.testing.webhook import WebhookRequest, WebhookServer

__all__ = [
    "LOCALHOST",
    "DovecotNotInstalled",
    "DovecotServer",
    "IntrospectionServer",
    "Mailbox",
    "PostgresCluster",
    "SinkMessage",
    "SmtpSink",
    "TlsAuthority",
    "WebhookRequest",
    "WebhookServer",
    "XOAuth2Attempt",
    "find_dovecot",
    "find_openssl",
    "free_port",
    "parse_xoauth2",
    "port_accepts",
    "wait_until",
]
