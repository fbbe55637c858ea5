"""A private Dovecot (IMAP) for tests, and ``Mailbox``, a fresh account on it with helpers to fill and read it.

Nothing here is a mock: ``DovecotServer`` runs ``dovecot -F`` with a complete private config (127.0.0.1, its own
free port, its own base_dir/state_dir/log, passwd-file users with Maildir homes), as root or as a normal user, and
leaves no process behind when stopped. The comments in the config template say why each setting is there.

    server = DovecotServer().start()
    box = server.new_mailbox("support")          # support-1@example.test, random password
    box.append("INBOX", raw_bytes, when)         # INTERNALDATE = when (timezone-aware)
    ...
    server.cleanup()                             # stops it and deletes its files

TLS: ``DovecotServer(tls=TlsAuthority.create())`` serves IMAPS and STARTTLS with ``ssl = required``.
XOAUTH2: ``DovecotServer(oauth2=IntrospectionServer().start())`` adds an oauth2 passdb (XOAUTH2/OAUTHBEARER checked
against that local introspection endpoint) beside the passwd-file one, so ``Mailbox`` helpers still log in with
PLAIN. imapclient (a dependency of mailesc) is imported only by the ``Mailbox`` helpers.
"""

from __future__ import annotations

import atexit
import grp
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from mailesc.testing.wait import LOCALHOST, free_port, port_accepts, wait_until

if TYPE_CHECKING:
    from mailesc.testing.oauth import IntrospectionServer
    from mailesc.testing.tls import TlsAuthority

__all__ = ["DovecotNotInstalled", "DovecotServer", "Mailbox", "find_dovecot"]


def _tail(path: Path | str, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class DovecotNotInstalled(RuntimeError):
    """No dovecot binary on this machine (``apt-get install dovecot-imapd``)."""


def find_dovecot() -> str | None:
    """Path of the dovecot binary, or None (PATH of non-root users often lacks /usr/sbin)."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


_CONFIG_TEMPLATE = """\
# Private Dovecot for mailesc integration tests (generated; complete config on purpose).
protocols = imap
listen = {host}
base_dir = {base_dir}
state_dir = {state_dir}
log_path = {log_path}
info_log_path = {log_path}
debug_log_path = {log_path}
instance_name = mailesc-test-{port}

default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
last_valid_uid = 0
first_valid_gid = 1
last_valid_gid = 0
mail_privileged_group =
mail_access_groups =

{ssl_settings}
auth_mechanisms = {auth_mechanisms}
auth_failure_delay = 0
auth_cache_size = 0
auth_verbose = yes

mail_location = maildir:~/Maildir
mail_fsync = never
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 30 secs
mail_max_userip_connections = 100

# One passwd-file per user (path contains %u): Dovecot stats a passwd-file at most once
# per second, so a user appended to a shared file right after another lookup is
# "unknown" for up to 1 s. A new per-user path has never been looked up: no staleness.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users_dir}/%u
{passwd_file_mechanisms}}}
{oauth2_passdb}userdb {{
  driver = passwd-file
  args = username_format=%u {users_dir}/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}

protocol imap {{
  mail_max_userip_connections = 100
}}

# No auth penalty: otherwise one wrong password from 127.0.0.1 delays every later
# login from 127.0.0.1 by 4, 8, 15 s (login_trusted_networks did NOT avoid it in 2.3.19).
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

# chroot needs root; a rootless Dovecot (pytest run as a normal user) fails with
# "chroot(...) failed: Operation not permitted" unless it is switched off.
service ipc {{
  chroot =
}}
service old-stats {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
{imaps_listener}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service imap-urlauth-login {{
  chroot =
  unix_listener imap-urlauth {{
    mode = 0
  }}
}}
"""


_PLAIN_SETTINGS = """\
ssl = no
disable_plaintext_auth = no"""

# ssl = required / disable_plaintext_auth = yes: no login before TLS (imaps, or
# STARTTLS on the imap port) -- EXCEPT that Dovecot 2.3 counts a connection whose
# remote IP equals its local IP (127.0.0.1 -> 127.0.0.1) as "secured" and lets it log
# in without TLS. So whether a client really used TLS is read from the log:
# ``DovecotServer.logins(user)`` lines say "TLS" (or "secured" for clear text).
_TLS_SETTINGS = """\
ssl = required
ssl_cert = <{cert_file}
ssl_key = <{key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes"""


class DovecotServer:
    """One private Dovecot master process (``dovecot -F -c CONF``).

    ``start()``/``stop()`` may be called repeatedly; the port, config and all
    mail data survive a restart. ``cleanup()`` stops it and deletes the temp dir.

    With ``tls=`` a ``TlsAuthority``, the server presents ``tls.cert_file``: an
    ``imaps`` listener on ``.imaps_port`` and STARTTLS on ``.port``, with
    ``ssl = required`` (no login in clear text). Without it ``.imaps_port`` is None.
    """

    def __init__(self, host: str = LOCALHOST, binary: str | None = None, tls: "TlsAuthority | None" = None,
                 oauth2: "IntrospectionServer | None" = None):
        found = binary or find_dovecot()
        if not found:
            raise DovecotNotInstalled("dovecot binary not found")
        self.binary: str = found
        self.host = host
        self.port: int | None = None
        self.tls = tls
        self.oauth2 = oauth2
        self.imaps_port: int | None = None
        self.is_root = os.geteuid() == 0
        if self.is_root:
            # Dovecot refuses to run mail processes as root: use unprivileged users.
            self.login_user = "dovenull" if _user_exists("dovenull") else "nobody"
            self.internal_user = "dovecot" if _user_exists("dovecot") else "nobody"
            self.internal_group = grp.getgrgid(pwd.getpwnam(self.internal_user).pw_gid).gr_name
            mail_user = "nobody" if _user_exists("nobody") else self.login_user
            pw = pwd.getpwnam(mail_user)
            self.mail_uid, self.mail_gid = pw.pw_uid, pw.pw_gid
        else:
            # Rootless: every Dovecot process runs as the current user and group
            # (the default internal group "dovecot" would make chown() of sockets fail).
            me = pwd.getpwuid(os.getuid()).pw_name
            self.login_user = self.internal_user = me
            self.internal_group = grp.getgrgid(os.getgid()).gr_name
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
        # Short path under /tmp: unix sockets in base_dir must stay < 108 bytes, and the
        # unprivileged mail user must be able to traverse every parent (hence 0755).
        self.root = Path(tempfile.mkdtemp(prefix="mesc-dc-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.base_dir = self.root / "run"
        self.state_dir = self.root / "state"
        self.home_root = self.root / "home"
        self.conf_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.stderr_path = self.root / "dovecot.stderr"
        self.users_dir = self.root / "users"  # one passwd-file per user
        self.oauth2_conf_path = self.root / "dovecot-oauth2.conf.ext"
        for d in (self.base_dir, self.state_dir, self.home_root, self.users_dir):
            d.mkdir(mode=0o755)

        if self.is_root:
            os.chown(self.home_root, self.mail_uid, self.mail_gid)

        self._proc: subprocess.Popen | None = None
        self._users: dict[str, str] = {}
        self._user_lock = threading.Lock()
        self._counter = itertools.count(1)
        self._cleaned = False
        atexit.register(self.cleanup)

    # ---- lifecycle

    def _write_config(self) -> None:
        if self.tls is not None:
            ssl_settings = _TLS_SETTINGS.format(cert_file=self.tls.cert_file, key_file=self.tls.key_file)
            imaps_listener = f"    address = {self.host}\n    port = {self.imaps_port}"
        else:
            ssl_settings, imaps_listener = _PLAIN_SETTINGS, "    port = 0"
        self.conf_path.write_text(
            _CONFIG_TEMPLATE.format(
                host=self.host,
                port=self.port,
                ssl_settings=ssl_settings,
                imaps_listener=imaps_listener,
                base_dir=self.base_dir,
                state_dir=self.state_dir,
                log_path=self.log_path,
                users_dir=self.users_dir,
                login_user=self.login_user,
                internal_user=self.internal_user,
                internal_group=self.internal_group,
                **self._oauth2_settings(),
            )
        )

    def _oauth2_settings(self) -> dict:
        """Template values for the auth mechanisms and the optional oauth2 passdb."""
        if self.oauth2 is None:
            return {"auth_mechanisms": "plain login", "passwd_file_mechanisms": "", "oauth2_passdb": ""}
        self.oauth2_conf_path.write_text(
            "# oauth2 passdb: every token is checked with the test's introspection server\n"
            f"introspection_url = {self.oauth2.url}\n"
            "introspection_mode = post\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        return {
            "auth_mechanisms": "plain login xoauth2 oauthbearer",
            # PLAIN/LOGIN (the Mailbox helper's logins) stay with the passwd-file;
            # XOAUTH2/OAUTHBEARER tokens go only to the introspection server.
            "passwd_file_mechanisms": "  mechanisms = plain login\n",
            "oauth2_passdb": (
                "passdb {\n"
                "  driver = oauth2\n"
                "  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self.oauth2_conf_path}\n"
                "}\n"
            ),
        }

    @property
    def running(self) -> bool:
        """The master process is alive (it may still be starting)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The master's pid while it runs, else None."""
        return self._proc.pid if self._proc is not None and self.running else None

    def start(self, timeout: float = 10.0) -> "DovecotServer":
        """Start the master (no-op if running). First start picks a free port; later
        starts reuse it."""
        if self.running:
            return self
        if self.port is not None:
            self._start_once(timeout)
            return self
        last_error: Exception | None = None
        for _ in range(3):  # the free port may be grabbed between probe and bind
            self.port = free_port(self.host)
            if self.tls is not None:
                while (imaps := free_port(self.host)) == self.port:
                    pass
                self.imaps_port = imaps
            self._write_config()
            try:
                self._start_once(timeout)
                return self
            except RuntimeError as exc:
                last_error = exc
                if "Address already in use" not in str(exc):
                    break
        self.port = self.imaps_port = None
        raise last_error  # type: ignore[misc]

    def _start_once(self, timeout: float) -> None:
        try:  # only look at log lines written by this start
            self._log_offset = self.log_path.stat().st_size
        except OSError:
            self._log_offset = 0
        with open(self.stderr_path, "ab") as err:
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                close_fds=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(self._failure(f"dovecot exited with status {code} during start-up"))
            if self._greets() and (self.imaps_port is None or port_accepts(self.host, self.imaps_port)):
                return
            if self._log_has_fatal():
                self._kill()
                raise RuntimeError(self._failure("dovecot logged a Fatal error during start-up"))
            if time.monotonic() >= deadline:
                self._kill()
                raise RuntimeError(self._failure(f"dovecot did not greet on {self.host}:{self.port} within {timeout}s"))
            time.sleep(0.02)

    def _log_has_fatal(self) -> bool:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                return b": Fatal: " in fh.read()
        except OSError:
            return False

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                if not sock.recv(256).startswith(b"* OK"):
                    return False
                sock.sendall(b"r LOGOUT\r\n")  # polite goodbye: no "reset by peer" log noise
                return True
        except OSError:
            return False

    def _failure(self, headline: str) -> str:
        return (
            f"{headline}\nconfig: {self.conf_path}\n"
            f"--- stderr ({self.stderr_path}) ---\n{_tail(self.stderr_path)}\n"
            f"--- log ({self.log_path}) ---\n{_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master and wait until it and the listening port are gone."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._kill_leftovers()
        for port in (self.port, self.imaps_port):
            if port is not None:
                wait_until(
                    lambda: not port_accepts(self.host, port),
                    timeout=timeout,
                    message=f"port {port} still accepts connections after dovecot stopped",
                )

    def processes(self) -> list[int]:
        """The pids of this server's processes still alive: the master and every child (imap, auth, log, ...).

        Found by the process title Dovecot gives its children (``dovecot-<instance_name>/...``, the instance name
        holds this server's port), so several servers on one machine, or another test run's, are told apart."""
        title = f"dovecot-mailesc-test-{self.port}/".encode()
        found = [] if (pid := self.pid) is None else [pid]
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if cmdline.read_bytes().startswith(title):
                    found.append(int(cmdline.parent.name))
            except (OSError, ValueError):
                continue
        return found

    def _kill_leftovers(self) -> None:
        """Dovecot's master leaves its imap, log and stats children running when it stops; a stopped
        server must drop its clients' connections as a real outage would, and leave no processes behind."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
        deadline = time.monotonic() + 5.0  # a killed process stays in /proc until it has exited and been reaped:
        while self.processes() and time.monotonic() < deadline:  # stop() returns once they are gone
            time.sleep(0.02)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def restart(self) -> None:
        """``stop()`` then ``start()``: the same port, config and mail (an outage and its end)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its folder (config, log, every mailbox); safe to call twice, also run at exit."""
        if self._cleaned:
            return
        self._cleaned = True
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the Dovecot log, for a failing test's message."""
        return _tail(self.log_path, lines)

    def logins(self, username: str) -> list[str]:
        """The log's ``imap-login: Info: Login: user=<username>, ...`` lines, oldest first.

        Each ends with the connection's state: ``..., TLS, session=<...>`` when the
        login happened over TLS (IMAPS or after STARTTLS), ``..., secured, ...`` when
        in clear text on loopback."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        marker = f"Login: user=<{username}>,"
        return [line for line in text.splitlines() if "imap-login:" in line and marker in line]

    # ---- users

    def add_user(self, username: str, password: str) -> None:
        """Add a user (own passwd-file ``users/<name>``, own Maildir home).

        Takes effect immediately, no reload: the passdb path contains %u, so Dovecot
        opens the new user's file on the first lookup. Do not use it to change the
        password of a user that already logged in (Dovecot re-stats a passwd-file at
        most once per second, so the change could be seen up to 1 s late)."""
        if (
            not username
            or username != username.lower()
            or any(ch in username for ch in ":/\n\t ")
            or username.startswith(".")
            or any(ch in password for ch in ":\n")
        ):
            raise ValueError(f"unusable username/password for the test passwd-file: {username!r}")
        home = self.home_root / username
        home.mkdir(mode=0o700, exist_ok=True)
        if self.is_root:
            os.chown(home, self.mail_uid, self.mail_gid)
        with self._user_lock:
            self._users[username] = password
            line = f"{username}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}::\n"
            target = self.users_dir / username
            tmp = self.users_dir / f".{username}.{os.getpid()}.tmp"
            tmp.write_text(line)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)  # atomic: auth never reads a half-written line

    def new_mailbox(self, prefix: str = "support", domain: str = "example.test") -> "Mailbox":
        """Create a fresh user ``{prefix}-{n}@{domain}`` with a random password.

        On an ``oauth2=`` server the introspection server also issues the user an
        access token: ``Mailbox.access_token`` (XOAUTH2/OAUTHBEARER logins)."""
        username = f"{prefix}-{next(self._counter)}@{domain}"
        password = "pw-" + secrets.token_hex(8)
        self.add_user(username, password)
        token = self.oauth2.issue(username) if self.oauth2 is not None else None
        if self.port is None:
            raise RuntimeError("the server has no port before its first start(): start it, then make mailboxes")
        if self.tls is not None:
            return Mailbox(self.host, self.port, username, password,
                           imaps_port=self.imaps_port, tls_context=self.tls.client_context(), access_token=token)
        return Mailbox(self.host, self.port, username, password, access_token=token)

    def __repr__(self) -> str:
        tls = f" imaps={self.imaps_port}" if self.tls is not None else ""
        return f"<DovecotServer {self.host}:{self.port}{tls} pid={self.pid} root={self.root}>"


_APPENDUID = re.compile(rb"APPENDUID\s+(\d+)\s+(\d+)", re.IGNORECASE)


class Mailbox:
    """A fresh IMAP account on the private Dovecot.

    On a TLS Dovecot, ``imaps_port`` is its IMAPS port and ``tls_context`` a client
    context trusting the test CA; ``port`` then offers STARTTLS (login only after it)."""

    sent_folder = "Sent"
    inbox = "INBOX"

    def __init__(self, host: str, port: int, username: str, password: str,
                 imaps_port: int | None = None, tls_context: ssl.SSLContext | None = None,
                 access_token: str | None = None):
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.imaps_port = imaps_port
        self.tls_context = tls_context
        self.access_token = access_token  # set on an XOAUTH2 Dovecot (``new_mailbox`` there)

    def client(self, **attrs):
        """A logged-in ``imapclient.IMAPClient``. The caller logs out.

        Plain on a plain Dovecot; STARTTLS (verified against the test CA) on a TLS one.
        Keyword arguments are set as attributes, e.g. ``client(normalise_times=False)``."""
        import imapclient

        c = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        for name, value in attrs.items():
            setattr(c, name, value)
        try:
            if self.tls_context is not None:
                c.starttls(self.tls_context)
            c.login(self.username, self.password)
        except Exception:
            c.shutdown()
            raise
        return c

    def _session(self):
        c = self.client()

        class _Ctx:
            def __enter__(self_inner):
                return c

            def __exit__(self_inner, *exc):
                try:
                    c.logout()
                except Exception:
                    c.shutdown()

        return _Ctx()

    def append(
        self,
        folder: str,
        raw: bytes | str,
        when: datetime | None = None,
        flags: Iterable[bytes | str] = (),
    ) -> int:
        """APPEND ``raw`` to ``folder`` with INTERNALDATE ``when`` (tz-aware); return its UID."""
        if when is not None and (when.tzinfo is None or when.utcoffset() is None):
            raise ValueError("append(): 'when' must be a timezone-aware datetime")
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        with self._session() as c:
            resp = c.append(folder, raw, flags=tuple(flags), msg_time=when)
            if isinstance(resp, str):
                resp = resp.encode()
            match = _APPENDUID.search(resp or b"")
            if match:
                return int(match.group(2))
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            if not uids:
                raise AssertionError(f"append to {folder!r} returned {resp!r} and folder is empty")
            return max(uids)

    def uids(self, folder: str = "INBOX") -> list[int]:
        """The UIDs in ``folder``, ascending (read via EXAMINE, so nothing changes)."""
        with self._session() as c:
            c.select_folder(folder, readonly=True)
            return sorted(c.search(["ALL"]))

    def flags(self, folder: str = "INBOX") -> dict[int, tuple]:
        """uid -> flags tuple (bytes, e.g. ``(b"\\\\Seen",)``), read via EXAMINE so nothing changes.

        ``\\Recent`` is left out: it is per-session (whichever session sees a message
        first gets it) and so meaningless for assertions."""
        with self._session() as c:
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            if not uids:
                return {}
            return {
                uid: tuple(f for f in flags if f.lower() != b"\\recent")
                for uid, flags in c.get_flags(uids).items()
            }

    def fetch_raw(self, folder: str, uid: int) -> bytes:
        """The full message (BODY.PEEK[], does not set \\Seen)."""
        with self._session() as c:
            c.select_folder(folder, readonly=True)
            data = c.fetch([uid], ["BODY.PEEK[]"])
            if uid not in data:
                raise KeyError(f"no UID {uid} in {folder!r}")
            return data[uid][b"BODY[]"]

    def __repr__(self) -> str:
        tls = f" imaps={self.imaps_port}" if self.imaps_port is not None else ""
        return f"<Mailbox {self.username} @ {self.host}:{self.port}{tls}>"


