"""Load mailesc.toml into typed, frozen objects; every problem names its file and key."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import ssl
import subprocess
import tomllib
from dataclasses import dataclass
from typing import Any, Literal, overload
from urllib.parse import unquote, urlsplit
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailesc.spam import SpamRules
from mailesc.durations import parse_duration
from mailesc.errors import ConfigError, did_you_mean

DEFAULT_FILE = "mailesc.toml"
ENV_VAR = "MAILESC_CONFIG"
SECURITY = ("tls", "starttls", "plain")
STALE_AFTER_AT_LEAST = timedelta(minutes=2)
CAUSES = ("staffing", "misrouted", "waiting-on-third-party", "policy-too-tight", "tooling", "other")


@dataclass(frozen=True)
class Secret:
    """Where a password (or another secret, such as a webhook's URL) comes from. It is read only when needed and
    never printed. Problems name the config file and the key (`section.password_env`, `section.password_file`,
    or the `keys` a secret of another name is given by)."""

    env: str | None = None
    file: Path | None = None
    config_file: Path = Path("mailesc.toml")
    section: str = ""
    keys: tuple[str, str] = ("password_env", "password_file")

    @property
    def key(self) -> str:
        """The key the secret is given by (the file's when no variable is named)."""
        return f"{self.section}.{self.keys[0] if self.env else self.keys[1]}"

    @property
    def where(self) -> str:
        """Where it is read from, for a message (never the secret itself)."""
        return f"environment variable {self.env}" if self.env else str(self.file)

    def read(self) -> str | None:
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(self.config_file, self.key, f"environment variable {self.env} is not set")
            return value
        return _read_private_file(self.file, self.config_file, self.key) if self.file else None

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r}, file={self.file!r})"


@dataclass(frozen=True)
class Token:
    """Where an OAuth 2 access token comes from (XOAUTH2): a command that prints it, or a file."""

    command: str | None = None
    file: Path | None = None
    config_file: Path = Path("mailesc.toml")
    section: str = ""

    def read(self) -> str:
        if self.file:
            return _read_private_file(self.file, self.config_file, f"{self.section}.token_file")
        key = f"{self.section}.token_command"
        try:
            done = subprocess.run(shlex.split(self.command or ""), capture_output=True, text=True, timeout=60)
        except (OSError, ValueError, subprocess.TimeoutExpired) as error:
            raise ConfigError(self.config_file, key, f"the token command did not run: {error}") from None
        if done.returncode != 0 or not done.stdout.strip():
            raise ConfigError(self.config_file, key, f"the token command exited {done.returncode} without a token")
        return done.stdout.strip()

    def __repr__(self) -> str:
        return f"Token(command={'…' if self.command else None}, file={self.file!r})"


def _read_private_file(path: Path, config_file: Path, key: str) -> str:
    """A secret from a file that only its owner can read."""
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(config_file, key, f"{path} can be read by other users: chmod 600 it")
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(config_file, key, f"cannot read {path}: {error.strerror}") from None


@dataclass(frozen=True)
class ServerConfig:
    """How to reach and log in to an IMAP or SMTP server."""

    host: str
    port: int
    security: str  # tls | starttls | plain
    username: str
    password: Secret
    timeout: float
    ca_file: Path | None  # trust this CA (a private one) instead of the system's
    auth: str = "password"  # password | xoauth2
    token: Token = Token()

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        """Certificates and host names are always verified."""
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


class _KindSettings:
    """What a mailbox's or a transport's kind read, seen the two ways most callers need it."""

    settings: Any  # what the kind read from its keys (kinds.Kind.settings)

    @property
    def server(self) -> ServerConfig | None:
        """The server of a kind that logs in to one (imap, smtp); None for the others."""
        return self.settings if isinstance(self.settings, ServerConfig) else None

    @property
    def path(self) -> Path | None:
        """The folder of a kind that reads or writes one (maildir, outbox); None for the others."""
        return self.settings if isinstance(self.settings, Path) else None


@dataclass(frozen=True)
class MailboxConfig(_KindSettings):
    kind: str  # a source kind registered in mailesc.sources.KINDS: imap | maildir
    settings: Any  # what the kind read from its keys (kinds.Kind.settings): a ServerConfig (imap), a Path (maildir)
    folders: tuple[str, ...]
    sent_folder: str  # "auto" = SPECIAL-USE \Sent, a folder name, or "" for none
    since: timedelta | datetime = timedelta(days=7)  # older mail is history: threads and responses, no clock
    name: str = "default"  # names its records, leases, logs and files: MAILBOX_NAME, unique in the config
    team: tuple[str, ...] = ()  # addresses that are the team for this mailbox only, besides [team] addresses
    policies_path: Path | None = None  # its own policies folder; None: [policies] path


MAILBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # safe in a log line, a file name and SQL
STORE_SECURITY = ("tls", "plain")


@dataclass(frozen=True)
class StoreConfig:
    """Where the state lives: the embedded file at `path`, or a PostgreSQL database at `url` (then `path` is
    still where the replay store and local lock files live). The password is never part of `url`."""

    path: Path
    url: str | None = None  # postgresql://user@host:port/dbname, without a password
    password: Secret = Secret()
    security: str = "tls"  # tls (certificate and host name verified) | plain
    ca_file: Path | None = None  # trust this CA (a private one) instead of the system's

    def connect_args(self) -> dict:
        """Keyword arguments for psycopg.connect(): the URL's parts, the password (read now) and TLS settings
        that always verify the server's certificate and name (`verify-full`, against `ca_file` or the system's
        CA bundle)."""
        if self.url is None:
            raise ValueError("the store has no url: it is the embedded file store")
        parts = urlsplit(self.url)
        args = {"host": parts.hostname, "port": parts.port or 5432, "dbname": unquote(parts.path.lstrip("/")),
                "application_name": "mailesc"}
        if parts.username:
            args["user"] = unquote(parts.username)
        password = self.password.read()
        if password is not None:
            args["password"] = password
        if self.security == "plain":
            args["sslmode"] = "disable"
        else:
            args["sslmode"] = "verify-full"
            args["sslrootcert"] = str(self.ca_file) if self.ca_file else _system_ca_file()
        return args

    @property
    def where(self) -> str:
        """host:port/dbname, for messages (never the user or a password)."""
        if self.url is None:
            return str(self.path)
        parts = urlsplit(self.url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{host}:{parts.port or 5432}/{unquote(parts.path.lstrip('/'))}"


def _system_ca_file() -> str:
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.openssl_cafile


@dataclass(frozen=True)
class SmtpConfig(_KindSettings):
    kind: str  # a transport kind registered in mailesc.transports.KINDS: smtp | outbox | command
    settings: Any  # what the kind read from its keys (kinds.Kind.settings): a ServerConfig (smtp), a Path (outbox)...
    from_address: str
    reply_to: str  # where replies to mailesc's mails go: the watched mailbox, so a manager's reply acknowledges


@dataclass(frozen=True)
class ReviewConfig:
    period: timedelta  # a breach without a recorded cause for longer than this is overdue
    causes: tuple[str, ...]  # what `mailesc breaches review --cause` accepts


@dataclass(frozen=True)
class DailyDigestConfig:
    at: time | None  # local time of day; None: no daily digest
    timezone: ZoneInfo
    to: tuple[str, ...]
    template: str


@dataclass(frozen=True)
class Config:
    file: Path  # the file it came from, or "<embedded default>" in the working folder
    mailboxes: tuple[MailboxConfig, ...]  # [mailbox] or each [[mailbox]], in the order of the file
    smtp: SmtpConfig
    team_addresses: tuple[str, ...]
    store_path: Path  # = store.path
    store: StoreConfig
    policies_path: Path
    templates_path: Path
    poll_seconds: float
    stale_after: timedelta  # `status` is unhealthy when the last successful poll is older than this
    digest_after: int  # storm control: more escalations than this to the same recipients at once become a digest
    archive_after: timedelta | None  # threads closed this long ago move to the archive; None: never
    review: ReviewConfig
    daily_digest: DailyDigestConfig
    templates_timezone: ZoneInfo | None = None  # times in mails; None: each policy's calendar zone
    spam: SpamRules = SpamRules()  # [classify]: when a message the server let through is spam
    subject_window: timedelta = timedelta(days=30)  # [threads]: how far back an orphan reply may join by subject
    lease_seconds: float = 30.0  # [daemon]: a worker that stops renewing loses its mailboxes after this long
    notes: tuple[str, ...] = ()  # what works but should change (an old name): `check` prints them, `run` logs them
    webhooks: tuple[Any, ...] = ()  # [webhook.NAME] tables (notifiers.webhook.WebhookConfig), in the file's order

    @property
    def mailbox(self) -> MailboxConfig:
        """The first mailbox (the only one, in a config with a single [mailbox] table)."""
        return self.mailboxes[0]

    def find_mailbox(self, name: str) -> MailboxConfig | None:
        return next((box for box in self.mailboxes if box.name == name), None)

    def team_of(self, mailbox: MailboxConfig) -> tuple[str, ...]:
        """The team for one mailbox: [team] addresses, then the mailbox's own `team`."""
        return tuple(dict.fromkeys(self.team_addresses + mailbox.team))

    def policies_of(self, mailbox: MailboxConfig) -> Path:
        """The policies folder for one mailbox: its own `policies`, else [policies] path."""
        return mailbox.policies_path or self.policies_path

    @property
    def replay_store_path(self) -> Path:
        return self.store_path.with_name(self.store_path.stem + "-replay" + self.store_path.suffix)


def find_config_file(explicit: str | None) -> Path | None:
    """-c FILE, else $MAILESC_CONFIG, else ./mailesc.toml; None means the embedded default."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(DEFAULT_FILE) if Path(DEFAULT_FILE).exists() else None


def load_config(path: Path | None) -> Config:
    if path is None:
        return _build(Path.cwd() / "<embedded default>", {}, Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except OSError as error:
        raise ConfigError(path, "", f"cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        if _SINGLE_MAILBOX.search(text) and _MAILBOX_ARRAY.search(text):  # TOML allows only one of the two
            raise ConfigError(path, "mailbox", "give either one [mailbox] table or [[mailbox]] tables, not both "
                                               f"(TOML: {error})") from None
        raise ConfigError(path, "", f"is not valid TOML: {error}") from None
    return _build(path, data, path.resolve().parent)


_SINGLE_MAILBOX = re.compile(r"^[ \t]*\[[ \t]*mailbox[ \t]*\]", re.MULTILINE)
_MAILBOX_ARRAY = re.compile(r"^[ \t]*\[\[[ \t]*mailbox[ \t]*\]\]", re.MULTILINE)


class _Reader:
    """Reads one table of the config, remembering problems instead of stopping at the first."""

    def __init__(self, file: Path, base: Path, data: dict, problems: list):
        self.file, self.base, self.data, self.problems = file, base, data, problems

    def section(self, name: str, known: tuple[str, ...]) -> "_Section":
        table = self.data.get(name, {})
        if not isinstance(table, dict):
            self.problem(name, "must be a table")
            table = {}
        return _Section(self, name, table, known)

    def problem(self, key: str, text: str) -> None:
        if (str(self.file), key, text) not in self.problems:  # two kinds reading a shared key find it once
            self.problems.append((str(self.file), key, text))

    def unknown_sections(self, known: tuple[str, ...]) -> None:
        for name in self.data:
            if name not in known:
                self.problem(name, "unknown section" + did_you_mean(name, known))


class _Section:
    def __init__(self, reader: _Reader, name: str, table: dict, known: tuple[str, ...]):
        self.reader, self.name, self.table = reader, name, table
        for key in table:
            if key not in known:
                self.problem(key, "unknown key" + did_you_mean(key, known))

    def problem(self, key: str, text: str) -> None:
        self.reader.problem(f"{self.name}.{key}", text)

    def text(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str):
            self.problem(key, f"must be a string, not {value!r}")
            return default
        if choices and value not in choices:
            self.problem(key, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return value

    def kind(self, default: str, kinds: tuple[str, ...]) -> str:
        """`kind`: one of the names registered for this table (kinds.Registry), a misspelt one named as such."""
        value = self.text("kind", default)
        if value not in kinds:
            self.problem("kind", f"unknown kind {value!r}{did_you_mean(value, kinds)}: must be one of "
                                 f"{', '.join(kinds)}")
            return default
        return value

    def number(self, key: str, default: float, minimum: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            self.problem(key, f"must be a number of at least {minimum}, not {value!r}")
            return default
        return value

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.table.get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, f"must be a list of strings, not {value!r}")
            return default
        return tuple(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, not {value!r}")
            return default
        return value

    @overload
    def duration(self, key: str, default: str, allow_never: Literal[False] = False) -> timedelta: ...

    @overload
    def duration(self, key: str, default: str, allow_never: bool) -> timedelta | None: ...

    def duration(self, key: str, default: str, allow_never: bool = False) -> timedelta | None:
        """A duration like "30d"; with `allow_never`, "never" means None."""
        text = self.text(key, default)
        if allow_never and text == "never":
            return None
        try:
            value = parse_duration(text)
        except ValueError as error:
            self.problem(key, str(error) + (' or "never"' if allow_never else ""))
            return parse_duration(default)
        if not value:
            self.problem(key, "must be longer than 0" + (' (write "never" to switch it off)' if allow_never else ""))
            return parse_duration(default)
        return value

    def path(self, key: str, default: str) -> Path:
        return Path(os.path.normpath(self.reader.base / self.text(key, default)))

    def secret(self) -> Secret:
        env, file = self.table.get("password_env"), self.table.get("password_file")
        if env is not None and file is not None:
            self.problem("password_env", "give either password_env or password_file, not both")
        if "password" in self.table:
            self.problem("password", "passwords are not written in the config: use password_env or password_file")
        return Secret(env=self.text("password_env", "") or None, file=self.path("password_file", "") if file else None,
                      config_file=self.reader.file, section=self.name)


SERVER_KEYS = ("host", "port", "security", "username", "password_env", "password_file", "timeout_seconds",
               "allow_insecure", "ca_file", "auth", "token_command", "token_file")
_MAILBOX_KEYS = ("name", "kind", "folders", "sent_folder", "since", "team", "policies")  # + each source kind's keys
_SMTP_KEYS = ("kind", "from", "reply_to")  # + each transport kind's keys
_STORE_KEYS = ("path", "archive_after", "url", "password_env", "password_file", "security", "allow_insecure",
               "ca_file")
_DAEMON_KEYS = ("poll_seconds", "digest_after", "stale_after", "lease_seconds")


def _build(file: Path, data: dict, base: Path) -> Config:
    problems: list = []
    reader = _Reader(file, base, data, problems)
    reader.unknown_sections(("mailbox", "smtp", "team", "store", "policies", "templates", "daemon", "review",
                             "daily_digest", "digest", "classify", "threads", "webhook"))
    daily_table, notes = _daily_digest_table(reader)
    mailboxes = _mailboxes(reader)
    smtp = _smtp(reader.section("smtp", _SMTP_KEYS + _transport_kinds().keys()))
    team = reader.section("team", ("addresses",))
    store_section = reader.section("store", _STORE_KEYS)
    store = _store(store_section)
    policies = reader.section("policies", ("path",))
    templates = reader.section("templates", ("path", "timezone"))
    daemon = reader.section("daemon", _DAEMON_KEYS)
    poll_seconds = daemon.number("poll_seconds", 30, minimum=1)
    config = Config(
        file=file,
        mailboxes=mailboxes,
        smtp=smtp,
        team_addresses=tuple(a.lower() for a in team.strings("addresses", ())),
        store_path=store.path,
        store=store,
        policies_path=policies.path("path", "policies"),
        templates_path=templates.path("path", "templates"),
        poll_seconds=poll_seconds,
        stale_after=_stale_after(daemon, poll_seconds),
        digest_after=int(daemon.number("digest_after", 5, minimum=1)),
        archive_after=store_section.duration("archive_after", "90d", allow_never=True),
        review=_review(reader.section("review", ("period", "causes"))),
        daily_digest=_daily_digest(reader.section(daily_table, ("daily_at", "timezone", "to", "template"))),
        templates_timezone=_zone(templates, ""),
        spam=_spam(reader.section("classify", ("spam_score_threshold", "spam_headers"))),
        subject_window=reader.section("threads", ("subject_window",)).duration("subject_window", "30d"),
        lease_seconds=daemon.number("lease_seconds", 30, minimum=5),
        notes=tuple(notes),
        webhooks=_webhooks(reader),
    )
    if problems:
        raise ConfigError.many(problems)
    return config


def _webhooks(reader: _Reader) -> tuple:
    from mailesc.notifiers.webhook import read_webhooks  # not at the top: it reads its keys with this module

    return read_webhooks(reader)


def _stale_after(daemon: _Section, poll_seconds: float) -> timedelta:
    """How old the last successful poll may be before `status` calls the daemon dead: by default three
    polls, but at least 2 minutes (a slow poll or a short IMAP hiccup is not a dead daemon)."""
    default = max(3 * timedelta(seconds=poll_seconds), STALE_AFTER_AT_LEAST)
    if "stale_after" not in daemon.table:
        return default
    stale_after = daemon.duration("stale_after", "2m")
    if stale_after <= timedelta(seconds=poll_seconds):
        daemon.problem("stale_after", f"must be longer than poll_seconds ({poll_seconds:g}s): every poll "
                                      f"would find the daemon stale")
        return default
    return stale_after


def _review(section: _Section) -> ReviewConfig:
    causes = section.strings("causes", CAUSES)
    if not causes or any(not cause or cause != cause.strip() or "," in cause for cause in causes):
        section.problem("causes", "must be a non-empty list of names without commas or surrounding spaces")
    return ReviewConfig(period=section.duration("period", "30d"), causes=causes or CAUSES)


def _zone(section: _Section, default: str) -> ZoneInfo | None:
    """The IANA zone named by `timezone` (a problem if it is unknown); None when not given and no default."""
    zone = section.text("timezone", default)
    if not zone:
        return None
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        section.problem("timezone", f"is not a known time zone (like Europe/Berlin): {zone!r}")
        return ZoneInfo("UTC")


def _spam(section: _Section) -> SpamRules:
    threshold = section.table.get("spam_score_threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        section.problem("spam_score_threshold", f"must be a number (a spam score like 5.0), not {threshold!r}")
        threshold = None
    headers = section.table.get("spam_headers", {})
    if not isinstance(headers, dict):
        section.problem("spam_headers", 'must be a table of header name = regular expression, like '
                                        '{ "X-Barracuda-Spam-Status" = "^Yes" }')
        headers = {}
    patterns = []
    for name, pattern in headers.items():
        key = f"spam_headers.{name}"
        if not re.fullmatch(r"[!-9;-~]+", name):
            section.problem(key, "is not a header name")
        elif not isinstance(pattern, str):
            section.problem(key, f"must be a regular expression string, not {pattern!r}")
        else:
            try:
                patterns.append((name, re.compile(pattern, re.IGNORECASE)))
            except re.error as error:
                section.problem(key, f"is not a valid regular expression: {error}")
    return SpamRules(threshold=None if threshold is None else float(threshold), headers=tuple(patterns))


def _daily_digest_table(reader: _Reader) -> tuple[str, list[str]]:
    """The table of the daily digest, and a note when it has its old name. [digest] was its name until "digest"
    also came to mean the storm digest (daemon.digest_after: many escalations as one mail); [daily_digest] says
    which one it is. The old name keeps working."""
    if "digest" not in reader.data:
        return "daily_digest", []
    if "daily_digest" in reader.data:
        reader.problem("digest", "is the old name of [daily_digest], which this file also has: keep only "
                                 "[daily_digest]")
        return "daily_digest", []
    return "digest", [f"{reader.file}: [digest] is now called [daily_digest] (a \"digest\" alone is the storm "
                      f"digest of daemon.digest_after); [digest] still works: rename it when you next edit the file"]


def _daily_digest(section: _Section) -> DailyDigestConfig:
    text = section.text("daily_at", "")
    at = None
    if text:
        try:
            at = time.fromisoformat(text)
        except ValueError:
            section.problem("daily_at", f'must be a time of day like "08:00", not {text!r}')
    timezone = _zone(section, "UTC") or ZoneInfo("UTC")  # None only for a timezone = "" written out
    to = section.strings("to", ())
    if text and not to:
        section.problem("to", "a daily digest needs at least one recipient")
    return DailyDigestConfig(at=at, timezone=timezone, to=to, template=section.text("template", "daily"))


def _mailboxes(reader: _Reader) -> tuple[MailboxConfig, ...]:
    """One [mailbox] table (named "default" unless it says otherwise) or several [[mailbox]] tables, each with
    a unique `name` when there is more than one. Two of them reading the same mail is a problem: both would
    start a clock, and escalate, for every message."""
    value = reader.data.get("mailbox", {})
    if isinstance(value, dict):
        tables = [("mailbox", value)]
    elif isinstance(value, list) and value:
        tables = [(f"mailbox[{number}]", table) for number, table in enumerate(value, start=1)]
    else:
        reader.problem("mailbox", "must be one [mailbox] table or [[mailbox]] tables")
        tables = [("mailbox", {})]
    sections = []
    for label, table in tables:
        if isinstance(table, dict):
            sections.append(_Section(reader, label, table, _MAILBOX_KEYS + _source_kinds().keys()))
        else:
            reader.problem(label, "must be a table")
    boxes = [_mailbox(section, needs_name=len(tables) > 1) for section in sections]
    _distinct_mailboxes(sections, boxes)
    return tuple(boxes) or (_mailbox(_Section(reader, "mailbox", {}, ()), needs_name=False),)


def _distinct_mailboxes(sections: list[_Section], boxes: list[MailboxConfig]) -> None:
    names: dict[str, tuple[str, str]] = {}  # lower-case name: (table, name); file systems may ignore case
    reads: dict[tuple, str] = {}
    for section, box in zip(sections, boxes):
        if "name" in section.table:
            first, name = names.setdefault(box.name.lower(), (section.name, box.name))
            if first != section.name:
                case = "" if name == box.name else \
                    f" (as {name!r}: names must differ by more than upper and lower case)"
                section.problem("name", f"{box.name!r} is already the name of {first}{case}")
        read = _source_kinds()[box.kind].reads(box.settings)
        if read is None:
            continue
        key, what, said = read
        first = reads.setdefault(what, section.name)
        if first != section.name:
            section.problem(key, f"{first} already reads {said}: each message would start two clocks")


def _mailbox(section: _Section, needs_name: bool) -> MailboxConfig:
    kinds = _source_kinds()
    kind = section.kind("maildir", kinds.names())
    settings = _kind_settings(kinds, section, kind)
    policies = section.path("policies", "") if "policies" in section.table else None
    if policies is not None and not policies.is_dir():
        section.problem("policies", f"{policies} is not a folder")
    return MailboxConfig(
        kind=kind,
        settings=settings,
        folders=section.strings("folders", ("INBOX",)),
        sent_folder=section.text("sent_folder", "auto"),
        since=_since(section),
        name=_mailbox_name(section, needs_name),
        team=tuple(a.lower() for a in section.strings("team", ())),
        policies_path=policies,
    )


def _mailbox_name(section: _Section, needs_name: bool) -> str:
    if "name" not in section.table:
        if needs_name:
            section.problem("name", "is required when there is more than one mailbox (like name = \"support\")")
        return "default"
    name = section.text("name", "default")
    if not MAILBOX_NAME.fullmatch(name):
        section.problem("name", "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit "
                                f"(it names records, logs and files), not {name[:70]!r}")
        return "default"
    return name


def _since(section: _Section) -> timedelta | datetime:
    """`since`: a span back from the store's first start ("7d"), or a date (local midnight) or a time with offset
    (a TOML date/time or an ISO 8601 string). Mail that arrived before it starts no clock."""
    value = section.table.get("since", "7d")
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            try:
                value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                pass
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time()).astimezone()
    section.problem("since", f'must be a span back from the first start like "7d", a date like "2026-11-01" or a '
                             f'time with offset like "2026-11-01T09:00:00+01:00", not '
                             f'{value.isoformat() + " (no offset)" if isinstance(value, datetime) else repr(value)}')
    return timedelta(days=7)


def _smtp(section: _Section) -> SmtpConfig:
    kinds = _transport_kinds()
    kind = section.kind("outbox", kinds.names())
    return SmtpConfig(
        kind=kind,
        settings=_kind_settings(kinds, section, kind),
        from_address=section.text("from", "mailesc <mailesc@localhost>"),
        reply_to=section.text("reply_to", ""),
    )


_URL_EXAMPLE = "postgresql://mailesc@db.example.com:5432/mailesc"


def _store(section: _Section) -> StoreConfig:
    """[store]: the file at `path`, or PostgreSQL at `url` with its password and TLS settings as for the
    servers. No problem repeats the URL: it may hold a password that must not reach a log."""
    url, host = _store_url(section)
    security = section.text("security", "tls", STORE_SECURITY)
    ca_file = section.path("ca_file", "") if section.table.get("ca_file") else None
    allow_insecure = section.flag("allow_insecure", False)
    password = section.secret()
    if "url" not in section.table:
        for key in ("password_env", "password_file", "security", "allow_insecure", "ca_file"):
            if key in section.table:
                section.problem(key, "only means something with url (a PostgreSQL store)")
    elif host is not None and security == "plain" and not allow_insecure and not is_loopback(host):
        section.problem("security", f'"plain" sends the password and every record in clear text; it is only allowed '
                                    f"to a loopback host, not {host!r} (set allow_insecure = true to insist)")
    if url and ca_file and security == "tls" and not ca_file.is_file():
        section.problem("ca_file", f"{ca_file} does not exist")
    return StoreConfig(path=section.path("path", "var/mailesc.json"), url=url, password=password,
                       security=security, ca_file=ca_file)


def _store_url(section: _Section) -> tuple[str | None, str | None]:
    """The PostgreSQL URL and its host, or (None, None) when there is none or it is wrong (a problem then)."""
    if "url" not in section.table:
        return None, None
    text = section.table["url"]
    if not isinstance(text, str):
        section.problem("url", f"must be a string like {_URL_EXAMPLE!r}")
        return None, None
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError:
        section.problem("url", f"is not a URL like {_URL_EXAMPLE!r} (a port is a number up to 65535)")
        return None, None
    problems = []
    if parts.password is not None:
        problems.append("holds a password: put it in password_env or password_file")
    if parts.scheme not in ("postgresql", "postgres"):
        problems.append(f"must start with postgresql:// (like {_URL_EXAMPLE!r})")
    elif not parts.hostname:
        problems.append(f"names no host (like {_URL_EXAMPLE!r})")
    elif not unquote(parts.path.lstrip("/")) or "/" in parts.path.lstrip("/"):
        problems.append(f"names no database: end it with /DBNAME (like {_URL_EXAMPLE!r})")
    if parts.query or parts.fragment:
        problems.append("takes no ?parameters: TLS is set with security and ca_file, the password with "
                        "password_env or password_file")
    for problem in problems:
        section.problem("url", problem)
    if problems:
        return None, None
    return parts.geturl(), parts.hostname


def _source_kinds():
    from mailesc.sources import KINDS  # not at the top: the kinds' declarations read their keys with this module

    return KINDS


def _transport_kinds():
    from mailesc.transports import KINDS

    return KINDS


def _kind_settings(kinds, section: _Section, chosen: str):
    """The settings of the `chosen` kind. Every kind reads its keys (a wrong key is a problem whichever kind is
    chosen, as it always was); only the chosen one checks what matters when it is used."""
    return {kind.name: kind.settings(section, kind.name == chosen) for kind in kinds}[chosen]


def read_server(section: _Section, *, used: bool, default_security: str, tls_port: int,
                other_port: int) -> ServerConfig:
    """The server keys (SERVER_KEYS) of a kind that logs in to a server; `used`: the kind is the one chosen."""
    security = section.text("security", default_security, SECURITY)
    ca_file = section.path("ca_file", "") if section.table.get("ca_file") else None
    server = ServerConfig(
        host=section.text("host", "127.0.0.1"),
        port=int(section.number("port", tls_port if security == "tls" else other_port, minimum=1)),
        security=security,
        username=section.text("username", ""),
        password=section.secret(),
        timeout=section.number("timeout_seconds", 30, minimum=1),
        ca_file=ca_file,
        auth=section.text("auth", "password", ("password", "xoauth2")),
        token=Token(command=section.text("token_command", "") or None,
                    file=section.path("token_file", "") if section.table.get("token_file") else None,
                    config_file=section.reader.file, section=section.name),
    )
    if used and server.auth == "xoauth2" and not (server.token.command or server.token.file):
        section.problem("auth", 'xoauth2 needs token_command (prints an access token) or token_file')
    allow_insecure = section.flag("allow_insecure", False)
    if used and security == "plain" and not allow_insecure and not is_loopback(server.host):
        section.problem("security", f'"plain" sends passwords in clear text; it is only allowed to a loopback '
                                    f"host, not {server.host!r} (set allow_insecure = true to insist)")
    if used and ca_file and not ca_file.is_file():
        section.problem("ca_file", f"{ca_file} does not exist")
    return server


def credential_problems(config: Config) -> list[tuple[str, str, str]]:
    """What is wrong with the passwords and tokens the servers in use will ask for, found without contacting
    them: a variable that is not set, a file that is missing, unreadable or readable by others, a token command
    that fails (run once, as at every login). `run`, `once` and `check` refuse to start on any of these (exit 78)
    instead of failing at every poll."""
    problems = []
    sources, transports = _source_kinds(), _transport_kinds()
    for box in config.mailboxes:
        problems += sources[box.kind].credentials(config.file, box.settings)
    problems += transports[config.smtp.kind].credentials(config.file, config.smtp.settings)
    if config.store.url is not None:
        problems += _store_credential_problems(config.file, config.store.password)
    if config.webhooks:
        from mailesc.notifiers.webhook import url_problems

        problems += url_problems(config.webhooks)
    return problems


def _store_credential_problems(file: Path, password: Secret) -> list[tuple[str, str, str]]:
    """A database password that is configured must be readable and not empty. None configured is no problem:
    the server may trust the host, or libpq finds it in ~/.pgpass."""
    try:
        if password.read() == "":
            key = "store.password_env" if password.env else "store.password_file"
            return [(str(file), key, f"the password in {password.env or password.file} is empty")]
    except ConfigError as error:
        return error.problems
    return []


def server_credential_problems(file: Path, server: ServerConfig) -> list[tuple[str, str, str]]:
    section = server.password.section
    try:
        if server.auth == "xoauth2":
            if server.token.file or server.token.command:
                server.token.read()  # a command is run, as at every login: one that fails is found now
            return []
        if not server.password.env and not server.password.file:
            if section.startswith("mailbox") or server.username:
                return [(str(file), f"{section}.password_env", f"the login as {server.username or '?'} needs a "
                                                               "password: give password_env or password_file")]
            return []
        if server.password.read() == "":
            key = f"{section}.password_env" if server.password.env else f"{section}.password_file"
            return [(str(file), key, f"the password in {server.password.env or server.password.file} is empty")]
    except ConfigError as error:
        return error.problems
    return []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
