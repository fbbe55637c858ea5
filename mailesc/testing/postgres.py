"""A throwaway PostgreSQL cluster for tests and benchmarks.

Why a private cluster rather than the system one: tests must not depend on (or damage) a server someone else
runs, and each session gets a known role with a password so that the password path over TCP is what is tested.

The cluster runs on 127.0.0.1 and a free port, with fsync off (its data is thrown away). ``initdb`` refuses to
run as root, so when run as root the server programs run as the ``postgres`` user (``runuser``), on a folder
that user owns; otherwise they run as the current user.

    cluster = PostgresCluster()
    cluster.start()
    url, password = cluster.new_database("t1")   # fresh, empty, owned by the role ``mailesc``
    ...
    cluster.cleanup()                            # stops it at once and removes its files
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from mailesc.testing.wait import free_port

BIN_FOLDERS = tuple(Path(f"/usr/lib/postgresql/{version}/bin") for version in (17, 16, 15, 14, 13))
SERVER_USER = "postgres"
ROLE = "mailesc"
DATABASE = "mailesc"
HOST = "127.0.0.1"
MISSING = ("PostgreSQL server programs (initdb, pg_ctl) are not installed: apt-get install postgresql")


class ClusterError(RuntimeError):
    """The throwaway cluster could not be started or used (the message includes the server's log tail)."""


def find_bin_folder() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's versioned folder, else the PATH; None if absent."""
    for folder in BIN_FOLDERS:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresCluster:
    """A private PostgreSQL cluster: ``start()``, ``url``/``password`` of the role ``mailesc`` on the database
    ``mailesc``, ``admin_url`` (the superuser ``postgres``, over TCP with its own password),
    ``new_database(name)`` for a fresh database per test, ``stop()`` (immediate) and ``cleanup()``."""

    def __init__(self, bin_folder: Path | None = None, root: Path | None = None):
        found = bin_folder or find_bin_folder()
        if found is None:
            raise ClusterError(MISSING)
        self.bin_folder: Path = found
        self._given_root = root
        self.root: Path | None = None
        self.host = HOST
        self.port: int | None = None
        self.password = secrets.token_urlsafe(18)
        self.admin_password = secrets.token_urlsafe(18)
        self._as_server_user = os.geteuid() == 0
        self._databases = 0

    # -- where things are -------------------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        return self._made_root() / "data"

    @property
    def log_path(self) -> Path:
        return self._made_root() / "server.log"

    def _made_root(self) -> Path:
        if self.root is None:
            raise ClusterError("the cluster has no folder before its first start()")
        return self.root

    @property
    def url(self) -> str:
        """The application's URL (role ``mailesc``, database ``mailesc``); the password is NOT in it."""
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        return f"postgresql://{ROLE}@{self.host}:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        """The superuser's URL (role ``postgres``) WITH its password: for fixtures, never for the code under test."""
        return f"postgresql://{SERVER_USER}:{self.admin_password}@{self.host}:{self.port}/postgres"

    # -- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> "PostgresCluster":
        """Create the cluster on first use, then start the server (a no-op when it runs); wait until it accepts."""
        if self.root is None:
            self._create()
        if not self.running():
            self._run([self._program("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60",
                       "start"], "pg_ctl start")
        return self

    def running(self) -> bool:
        if self.root is None or not (self.data / "postmaster.pid").exists():
            return False
        result = subprocess.run(self._as_owner([self._program("pg_ctl"), "-D", str(self.data), "status"]),
                                capture_output=True, text=True)
        return result.returncode == 0

    def stop(self) -> None:
        """Stop at once (``-m immediate``), as a crash would: the server ends every session."""
        if self.running():
            self._run([self._program("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                      "pg_ctl stop")

    def cleanup(self) -> None:
        """Stop the server and remove the cluster's files (safe to call more than once)."""
        try:
            self.stop()
        finally:
            if self.root is not None and self._given_root is None:
                shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- databases --------------------------------------------------------------------------------------------
    def new_database(self, name: str | None = None) -> tuple[str, str]:
        """A fresh, empty database owned by ``mailesc``: returns (url without password, password)."""
        self._databases += 1
        name = name or f"test_{self._databases}"
        self.admin_sql(f"DROP DATABASE IF EXISTS {_quote_name(name)} WITH (FORCE)",
                       f"CREATE DATABASE {_quote_name(name)} OWNER {ROLE}")
        return self.url_for(name), self.password

    def admin_sql(self, *statements: str, database: str = "postgres") -> list[tuple]:
        """Run statements as the superuser (autocommit); returns the rows of the last one that has rows."""
        import psycopg

        rows: list[tuple] = []
        with psycopg.connect(host=self.host, port=self.port, user=SERVER_USER, password=self.admin_password,
                             dbname=database, autocommit=True, connect_timeout=10) as connection:
            for statement in statements:
                cursor = connection.execute(statement)
                if cursor.description is not None:
                    rows = cursor.fetchall()
        return rows

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- inside -----------------------------------------------------------------------------------------------
    def _create(self) -> None:
        if self._given_root is not None:
            self.root = Path(self._given_root)
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            # Not pytest's tmp_path: /tmp/pytest-of-root is mode 700 and the postgres user could not enter it.
            self.root = Path(tempfile.mkdtemp(prefix="mailesc-pg-"))
        atexit.register(self.cleanup)  # a run that dies before its own cleanup leaves no server behind
        self.root.chmod(0o755)
        if self._as_server_user:
            shutil.chown(self.root, SERVER_USER, SERVER_USER)
        self.port = free_port(HOST)
        password_file = self.root / "admin-password"
        password_file.write_text(self.admin_password + "\n")
        if self._as_server_user:
            shutil.chown(password_file, SERVER_USER, SERVER_USER)
        password_file.chmod(0o600)
        try:
            self._run([self._program("initdb"), "-D", str(self.data), "-U", SERVER_USER,
                       f"--pwfile={password_file}", "--auth-local=trust", "--auth-host=scram-sha-256",
                       "-E", "UTF8", "--locale=C", "--no-sync"], "initdb")
        finally:
            password_file.unlink(missing_ok=True)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# mailesc.testing: a throwaway cluster for tests\n"
                       f"listen_addresses = '{HOST}'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\n"
                       # fsync off: only an OS crash loses data. synchronous_commit stays on, so that what was
                       # committed survives stop() (a crash of the server), as tests of outages need.
                       "fsync = off\nfull_page_writes = off\n"
                       "max_connections = 200\n")
        self.start()
        self.admin_sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD {_quote_literal(self.password)}",
                       f"CREATE DATABASE {DATABASE} OWNER {ROLE}")

    def _program(self, name: str) -> str:
        return str(self.bin_folder / name)

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--", *command] if self._as_server_user else command

    def _run(self, command: list[str], what: str) -> None:
        result = subprocess.run(self._as_owner(command), capture_output=True, text=True, cwd=self.root)
        if result.returncode != 0:
            raise ClusterError(f"{what} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
                               f"\n{self.log_tail()}")
