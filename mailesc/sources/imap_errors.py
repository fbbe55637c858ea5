"""What a broken IMAP connection raises, and how it is named in a log line or an error message (the reason
only: never a user name, folder or message)."""

from __future__ import annotations

import imaplib
import socket
import ssl

from imapclient.exceptions import IMAPClientError

NETWORK_ERRORS = (OSError, IMAPClientError, imaplib.IMAP4.error, ssl.SSLError)


def reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "timed out"
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text or type(error).__name__
