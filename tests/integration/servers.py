"""Real servers for integration tests: a private Dovecot (IMAP) and an aiosmtpd sink.

Used by ``tests/integration/conftest.py``; importable directly as
``from tests.integration.servers import wait_until``.

Nothing here is a mock: ``DovecotServer`` runs ``/usr/sbin/dovecot -F`` with a
complete private config (127.0.0.1, own free port, own base_dir/state_dir/log,
passwd-file users with Maildir homes) and ``SmtpSink`` runs a real
``aiosmtpd.controller.Controller``.

TLS: ``TlsAuthority.create()`` makes a throwaway CA and a server certificate for
``localhost`` / ``127.0.0.1`` with the ``openssl`` command line;
``DovecotServer(tls=authority)`` then serves IMAPS and STARTTLS, and
``SmtpSink(starttls=ctx)`` / ``SmtpSink(implicit_tls=ctx)`` serve SMTP over TLS.

XOAUTH2: ``SmtpSink(xoauth2_token=TOKEN)`` offers only AUTH XOAUTH2 and accepts only
TOKEN; ``DovecotServer(oauth2=IntrospectionServer().start())`` adds an oauth2 passdb
(XOAUTH2/OAUTHBEARER checked against that local introspection endpoint) beside the
passwd-file one, so ``Mailbox`` helpers still log in with PLAIN.
"""

from __future__ import annotations

import atexit
import email
import email.policy
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Callable, Iterable

__all__ = [
    "DovecotNotInstalled",
    "DovecotServer",
    "IntrospectionServer",
    "Mailbox",
    "SmtpSink",
    "SinkMessage",
    "TlsAuthority",
    "find_dovecot",
    "find_openssl",
    "free_port",
    "wait_until",
]

LOCALHOST = "127.0.0.1"


# --------------------------------------------------------------------------- helpers


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition was not met",
):
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Raises ``AssertionError`` (with ``message`` and the elapsed time) when
    ``timeout`` seconds pass first. Exceptions raised by the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"wait_until timed out after {time.monotonic() - start:.2f}s: {message}"
            )
        time.sleep(interval)


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that is free right now on ``host`` (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path | str, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


# --------------------------------------------------------------------------- TLS


def find_openssl() -> str | None:
    return shutil.which("openssl")


class TlsAuthority:
    """A throwaway CA (``ca_file``) and a server certificate signed by it.

    The default server certificate (``cert_file``/``key_file``) is for
    ``DNS:localhost`` and ``IP:127.0.0.1``; ``issue()`` makes more (other names,
    expired ones). Everything lives in a 0755 temp dir under /tmp: the CA and
    certificates are world-readable (0644); keys are 0600 and owned by the
    current user (root reads them at Dovecot start-up, login processes get the
    key from Dovecot's config process, never from the file).
    """

    def __init__(self, root: Path, openssl: str):
        self.root = root
        self.openssl = openssl
        self.ca_file = root / "ca.pem"
        self.ca_key = root / "ca.key"
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        self._serial = itertools.count(2)
        self._cleaned = False
        atexit.register(self.cleanup)

    @classmethod
    def create(cls, openssl: str | None = None) -> "TlsAuthority":
        openssl = openssl or find_openssl()
        if not openssl:
            raise RuntimeError("the openssl command is not installed")
        root = Path(tempfile.mkdtemp(prefix="mesc-tls-", dir="/tmp"))
        os.chmod(root, 0o755)
        authority = cls(root, openssl)
        try:
            authority._make_ca()
            authority.cert_file, authority.key_file = authority.issue(
                "server", dns=("localhost",), ips=(LOCALHOST,)
            )
        except BaseException:
            authority.cleanup()
            raise
        return authority

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [self.openssl, *args], cwd=self.root, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"openssl {' '.join(args)} failed with status {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _make_ca(self) -> None:
        self._run(
            "req", "-x509", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(self.ca_key), "-out", str(self.ca_file),
            "-days", "7", "-subj", "/O=mailesc tests/CN=mailesc throwaway test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )
        os.chmod(self.ca_key, 0o600)
        os.chmod(self.ca_file, 0o644)

    def issue(
        self,
        name: str,
        dns: Iterable[str] = ("localhost",),
        ips: Iterable[str] = (LOCALHOST,),
        days: int = 7,
    ) -> tuple[Path, Path]:
        """A server certificate signed by this CA: ``(cert_file, key_file)``.

        ``dns``/``ips`` become the subjectAltName (and the first one the CN)."""
        dns, ips = tuple(dns), tuple(ips)
        if not dns and not ips:
            raise ValueError("a certificate needs at least one name")
        cert, key, csr = (self.root / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
        ext_file = self.root / f"{name}.ext"
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        ext_file.write_text(
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\n"
            f"subjectAltName = {', '.join(sans)}\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid:always\n"
        )
        self._run(
            "req", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(csr),
            "-subj", f"/O=mailesc tests/CN={(dns or ips)[0]}",
        )
        self._run(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(self.ca_key),
            "-set_serial", str(next(self._serial)), "-days", str(days), "-sha256",
            "-extfile", str(ext_file), "-out", str(cert),
        )
        os.chmod(key, 0o600)
        os.chmod(cert, 0o644)
        return cert, key

    def server_context(self, cert_file: Path | None = None, key_file: Path | None = None) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` for a server presenting ``cert_file`` (default: the localhost one)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file or self.cert_file), str(key_file or self.key_file))
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA (what mailesc builds from ca_file)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        shutil.rmtree(self.root, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<TlsAuthority {self.root}>"


# --------------------------------------------------------------------------- OAuth 2


class IntrospectionServer:
    """A tiny OAuth 2 token introspection endpoint (RFC 7662) on 127.0.0.1 (http.server in a thread).

    ``issue(username)`` makes a random access token for ``username``; POST (form ``token=...``)
    or GET (``?token=...``, or ``Authorization: Bearer ...``) to ``.url`` answers
    ``{"active": true, "username": USER}`` for an issued token and ``{"active": false}``
    otherwise. ``.requests`` lists every token it was asked about, oldest first.
    A ``DovecotServer(oauth2=...)`` uses it for its oauth2 passdb.
    """

    def __init__(self, host: str = LOCALHOST):
        self.host = host
        self.port: int | None = None
        self._tokens: dict[str, str] = {}
        self._requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/introspect"

    def start(self) -> "IntrospectionServer":
        import http.server
        import json
        import urllib.parse

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, token: str | None) -> None:
                with owner._lock:
                    owner._requests.append(token or "")
                    user = owner._tokens.get(token or "")
                body = json.dumps({"active": True, "username": user} if user else {"active": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _bearer(self) -> str | None:
                auth = self.headers.get("Authorization", "")
                return auth[7:].strip() if auth.lower().startswith("bearer ") else None

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                self._answer((form.get("token") or [None])[0] or self._bearer())

            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                self._answer((query.get("token") or query.get("access_token") or [None])[0] or self._bearer())

            def log_message(self, *args):  # quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="introspection", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            httpd, self._httpd = self._httpd, None
            httpd.shutdown()
            httpd.server_close()

    def issue(self, username: str) -> str:
        """A new access token that introspects as active for ``username``."""
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = username
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    @property
    def requests(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    def __repr__(self) -> str:
        return f"<IntrospectionServer {self.url} tokens={len(self._tokens)}>"


# --------------------------------------------------------------------------- Dovecot


class DovecotNotInstalled(RuntimeError):
    pass


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
        self.binary = binary or find_dovecot()
        if not self.binary:
            raise DovecotNotInstalled("dovecot binary not found")
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
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

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
            if self._greets() and (self.imaps_port is None or _port_accepts(self.host, self.imaps_port)):
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
                    lambda: not _port_accepts(self.host, port),
                    timeout=timeout,
                    message=f"port {port} still accepts connections after dovecot stopped",
                )

    def _kill_leftovers(self) -> None:
        """Dovecot's master leaves its imap, log and stats children running when it stops; a stopped
        server must drop its clients' connections as a real outage would, and leave no processes behind."""
        title = f"dovecot-mailesc-test-{self.port}/".encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if cmdline.read_bytes().startswith(title):
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
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


# --------------------------------------------------------------------------- SMTP sink


@dataclass
class SinkMessage:
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
        self.controller = None

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
