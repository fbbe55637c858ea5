"""What makes mailesc's own mail unforgeable: a secret per installation, kept beside the store, and HMACs of it
in the Message-IDs of its mails and in their X-Mailesc marker.

Without it, the Message-ID of an escalation was a hash of the customer's own Message-ID (anyone could compute
it, and a reply "to" it stopped the ladder), and any customer could write an X-Mailesc header to be ignored.
The secret is made once (mode 600) and never logged or printed; a replay store has its own secret file, so a
backtest never signs with the daemon's. Records keep the Message-IDs they were given: replacing the secret
changes only the mails recorded after."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from mailesc.errors import StoreError

SECRET_BYTES = 32
TAG_CHARS = 24  # hex characters of an HMAC in a Message-ID or marker: 96 bits, not guessable
_SIGNATURE = "; sig="


def secret_path(store_path: Path) -> Path:
    """`mailesc.json` -> `mailesc-secret` (and `mailesc-replay.json` -> `mailesc-replay-secret`)."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.stem + "-secret")


def installation_secret(store_path: Path) -> bytes:
    """The secret beside the store, created (mode 600, written atomically) the first time."""
    path = secret_path(store_path)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secret.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, path)  # never replaces a secret another process made meanwhile
    except FileExistsError:
        return _read(path)
    except OSError as error:
        raise StoreError(f"cannot write the secret file {path}: {error.strerror}") from None
    finally:
        temp.unlink(missing_ok=True)
    return secret


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise StoreError(f"cannot read the secret file {path}: {error.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise StoreError(f"the secret file {path} can be read by other users: chmod 600 it")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise StoreError(f"the secret file {path} is damaged; move it aside and mailesc makes a new one "
                         f"(mails already recorded keep their Message-IDs)")
    return secret


def tag(secret: bytes, *parts: str) -> str:
    data = "\x00".join(parts).encode("utf-8", "surrogateescape")
    return hmac.new(secret, data, hashlib.sha256).hexdigest()[:TAG_CHARS]


def mail_message_id(secret: bytes, thread_id: str, what: str, own_address: str) -> str:
    """Stable for a thread and mail ("L1", "W", "A"), so a resend is recognisable, and only computable with
    the secret, so nobody can reply "to" an escalation they never received."""
    domain = own_address.rpartition("@")[2] or "mailesc.invalid"
    return f"<mailesc.{tag(secret, 'message-id', thread_id, what)}.{what}@{domain}>"


def signed_marker(secret: bytes, value: str, message_id: str) -> str:
    """The X-Mailesc value for a mail: what it is, and an HMAC binding it to the mail's Message-ID."""
    return f"{value}{_SIGNATURE}{tag(secret, 'marker', ' '.join(value.split()), message_id)}"


def marker_is_ours(secret: bytes, header: str, message_id: str) -> bool:
    """True only for a marker signed with this installation's secret for this Message-ID."""
    value, found, signature = header.rpartition(_SIGNATURE)
    if not secret or not found:
        return False
    expected = tag(secret, "marker", " ".join(value.split()), message_id)
    return hmac.compare_digest(expected, " ".join(signature.split()).lower())
