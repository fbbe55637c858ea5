"""`mailesc store copy --to postgresql://...`: an embedded store moved up into a PostgreSQL database.

Why this shape:
- The file store is only read, never locked or changed, so it can be copied while its daemon runs (its writes
  are atomic renames). The live file is read before the archive: a thread the daemon archives in between is
  then in both copies, never in neither (the live copy wins, as for `breaches list`; the next run corrects it).
  The daemon should be stopped for the last run before switching; a run after that copies what came meanwhile.
- Everything is written in ONE transaction, by upserts on each record's key, so that a run twice copies
  nothing twice and a later run copies what the file gained. Reviews have no key: an entry is the same when its
  breach, time, reviewer, action, cause and note are, and is added only as often as the file has it more than
  the database. Records are the very JSON documents the file store writes (store.py's serialisers), as the
  PostgreSQL store keeps them. Breach ids are kept, and the database's sequence moved past the highest.
- Before committing, the copied keys are counted back from the database; a mismatch rolls everything back
  (exit 70, naming the table). A database that belongs to another installation (another signing secret and
  records of its own, or a breach id that is another breach there) is refused untouched (exit 65): merging two
  installations would mix their breach ids and their signatures. A database that workers are using is refused
  (exit 75): the copy would overwrite what they wrote.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mailesc.config import Config, Secret, StoreConfig, is_loopback
from mailesc.errors import MailescError, StoreBusy, StoreError, StoreLoginRefused, UsageError
from mailesc.model import Breach, Quarantined, QueuedMail, Thread
from mailesc.reviews import ReviewEntry, Reviews
from mailesc.signing import installation_secret, secret_path
from mailesc.store import INSTALLATION, Store, _quarantined_doc, read_archive

COPY_LOCK = int.from_bytes(b"mailcp", "big")  # two copies into one database queue instead of interleaving
EX_SOFTWARE = 70
_NAMED_TABLES = {"sync": "bookmarks", "health": "health", "meta": "meta"}  # file store table -> database table


class CopyMismatch(MailescError):
    """The database does not hold what was just copied into it (rolled back): a bug, or something else wrote."""

    exit_code = EX_SOFTWARE


class ForeignDatabase(StoreError):
    """The database holds another installation's records: refused, untouched (exit 65, as damaged data: it is
    not a problem of the command line or the config, and trying again will not help)."""


@dataclass
class FileContents:
    """Everything an embedded store holds, as read once (live records win over archived copies)."""

    threads: dict[tuple[str, str], tuple[Thread, bool]] = field(default_factory=dict)  # key -> (thread, archived)
    breaches: dict[int, tuple[Breach, bool]] = field(default_factory=dict)  # id -> (breach, archived)
    quarantine: list[Quarantined] = field(default_factory=list)
    named: dict[str, list[tuple[str, str, dict]]] = field(default_factory=dict)  # table -> (mailbox, name, state)
    outgoing: list[tuple[str, QueuedMail]] = field(default_factory=list)  # (mailbox, mail): digests
    reviews: list[ReviewEntry] = field(default_factory=list)
    secret: bytes | None = None
    last_breach_id: int = 0

    def mailboxes(self) -> list[str]:
        names = {mailbox for mailbox, _ in self.threads} | {b.mailbox for b, _ in self.breaches.values()}
        names |= {q.mailbox for q in self.quarantine}
        names |= {mailbox for rows in self.named.values() for mailbox, _, _ in rows}
        return sorted(names - {INSTALLATION})


@dataclass
class CopyResult:
    """What a copy did, for the command to print (counts only: no record's content)."""

    source: str
    target: str
    mailboxes: list[str]
    threads_live: int
    threads_archived: int
    breaches_live: int
    breaches_archived: int
    quarantined: int
    reviews: int
    new_threads: int
    new_breaches: int
    new_reviews: int
    secret: str  # "copied", "already there", "replaced (the database was empty)", "none in the store"
    breach_ids_from: int  # the next breach id the database hands out is above this

    def lines(self) -> list[str]:
        return [f"copied {self.source} into {self.target}:",
                f"  mailboxes     {len(self.mailboxes)}" + (f" ({', '.join(self.mailboxes)})" if self.mailboxes else ""),
                f"  threads       {self.threads_live} live, {self.threads_archived} archived ({self.new_threads} new)",
                f"  breaches      {self.breaches_live} live, {self.breaches_archived} archived "
                f"({self.new_breaches} new)",
                f"  quarantined   {self.quarantined}",
                f"  reviews       {self.reviews} ({self.new_reviews} new)",
                f"  secret        {self.secret}",
                f"  breach ids    the next is above {self.breach_ids_from}",
                "checked: the database holds every record copied"]


# -- reading the file store -----------------------------------------------------------------------------------


def read_file_store(path: Path) -> FileContents:
    """The store at `path` with its archive, reviews and secret, read without its lock and never written. A
    damaged file is refused (StoreError, exit 65) before anything is written anywhere."""
    if not path.is_file():
        raise UsageError(f"there is no store at {path} to copy (is -c the config of the store to move?)")
    contents = FileContents()
    with Store(path, readonly=True) as store:  # first: see the module's docstring
        for box in store.boxes.values():
            for thread in box.threads.values():
                contents.threads[(thread.mailbox, thread.id)] = thread, False
            for breach in box.breaches.values():
                contents.breaches[breach.id] = breach, False
            contents.quarantine.extend(box.quarantine.values())
            contents.outgoing.extend((box.name, mail) for mail in box.outgoing.values())
            for kind, table in _NAMED_TABLES.items():
                contents.named.setdefault(table, []).extend(
                    (box.name, name, state) for name, state in getattr(box, kind).items())
        counter = store.installation.meta.get("breach_ids")
        counter = counter.get("last") if isinstance(counter, dict) else None
    for thread, breaches in read_archive(path):
        if thread is not None:  # always, as threads are read (None only with threads=False)
            contents.threads.setdefault((thread.mailbox, thread.id), (thread, True))
        for breach in breaches:
            contents.breaches.setdefault(breach.id, (breach, True))
    contents.reviews = Reviews.load(path).entries()
    if secret_path(path).exists():
        contents.secret = installation_secret(path)  # only read: it exists
    contents.last_breach_id = max([counter if isinstance(counter, int) else 0, *contents.breaches])
    return contents


# -- where to copy to -----------------------------------------------------------------------------------------


def target_config(config: Config, url: str, *, password_env: str | None = None, password_file: str | None = None,
                  security: str | None = None, ca_file: str | None = None) -> StoreConfig:
    """The database to copy into: `url` (checked like `[store] url`, never repeated in a message: it might hold
    a password), the password and TLS settings from the flags, else from the config's [store] (when it has a
    url), else none and `tls` (`plain` to a loopback host)."""
    host = _checked_url(url)
    if password_env and password_file:
        raise UsageError("give either --password-env or --password-file, not both")
    configured = config.store if config.store.url is not None else None
    if password_env:
        if os.environ.get(password_env) is None:
            raise UsageError(f"--password-env: the environment variable {password_env} is not set")
        password = Secret(env=password_env, config_file=Path("--password-env"), section="store")
    elif password_file:
        password = Secret(file=_private_file(Path(password_file)), config_file=Path("--password-file"),
                          section="store")
    else:
        password = configured.password if configured else Secret()
    if security is None:
        security = configured.security if configured else ("plain" if is_loopback(host) else "tls")
    if security == "plain" and not is_loopback(host):
        raise UsageError(f'--security plain sends the password and every record in clear text; it is only allowed '
                         f"to a loopback host, not {host!r}: use tls (with --ca-file for a private CA)")
    chosen_ca = Path(ca_file) if ca_file else (configured.ca_file if configured else None)
    if chosen_ca is not None and security == "tls" and not chosen_ca.is_file():
        raise UsageError(f"--ca-file: {chosen_ca} does not exist")
    return StoreConfig(path=config.store_path, url=url.strip(), password=password, security=security,
                       ca_file=chosen_ca)


def _checked_url(url: str) -> str:
    """The host of a postgresql:// URL fit for the store; a usage error (exit 64) otherwise."""
    example = "postgresql://mailesc@db.example.com:5432/mailesc"
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number up to 65535)
    except ValueError:
        raise UsageError(f"--to is not a URL like {example} (a port is a number up to 65535)") from None
    if parts.password is not None:
        raise UsageError("--to holds a password: give it with --password-env or --password-file instead")
    if parts.scheme not in ("postgresql", "postgres"):
        raise UsageError(f"--to must start with postgresql:// (like {example})")
    if not parts.hostname:
        raise UsageError(f"--to names no host (like {example})")
    if not unquote(parts.path.lstrip("/")) or "/" in parts.path.lstrip("/"):
        raise UsageError(f"--to names no database: end it with /DBNAME (like {example})")
    if parts.query or parts.fragment:
        raise UsageError("--to takes no ?parameters: TLS is set with --security and --ca-file, the password with "
                         "--password-env or --password-file")
    return parts.hostname


def _private_file(path: Path) -> Path:
    try:
        if path.stat().st_mode & 0o077:
            raise UsageError(f"--password-file: {path} can be read by other users: chmod 600 it")
    except OSError as error:
        raise UsageError(f"--password-file: cannot read {path}: {error.strerror}") from None
    return path


# -- copying --------------------------------------------------------------------------------------------------


def copy_store(source: Path, target: StoreConfig) -> CopyResult:
    """Copy the embedded store at `source` into the database of `target`, in one transaction, and check it."""
    from mailesc.stores.postgres import PostgresStore  # psycopg only where it is used

    contents = read_file_store(source)  # a damaged store stops here, before the database is touched
    try:
        database = PostgresStore(config=target)
    except StoreLoginRefused as error:
        raise StoreLoginRefused(f"{error}; for store copy: the user in --to, the password from --password-env or "
                                f"--password-file, else from [store]") from None
    with database:
        with database._errors("copying the store"):
            connection = database.connection()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (COPY_LOCK,))
                _refuse_live_workers(cursor, target.where)
                _refuse_other_breaches(cursor, contents, target.where)
                secret = _copy_secret(cursor, contents.secret, target.where)
                new_threads = _count(cursor, "threads", ("mailbox", "id"), ("text", "text"), list(contents.threads))
                new_breaches = _count(cursor, "breaches", ("id",), ("bigint",), [(i,) for i in contents.breaches])
                _write(cursor, contents)
                new_reviews = _write_reviews(cursor, contents.reviews)
                breach_ids_from = _move_sequence(cursor, contents.last_breach_id)
                _check(cursor, contents, target.where)
    live_threads = sum(1 for _, archived in contents.threads.values() if not archived)
    live_breaches = sum(1 for _, archived in contents.breaches.values() if not archived)
    return CopyResult(source=str(source), target=target.where, mailboxes=contents.mailboxes(),
                      threads_live=live_threads, threads_archived=len(contents.threads) - live_threads,
                      breaches_live=live_breaches, breaches_archived=len(contents.breaches) - live_breaches,
                      quarantined=len(contents.quarantine), reviews=len(contents.reviews),
                      new_threads=len(contents.threads) - new_threads,
                      new_breaches=len(contents.breaches) - new_breaches, new_reviews=new_reviews,
                      secret=secret, breach_ids_from=breach_ids_from)


def _refuse_live_workers(cursor, where: str) -> None:
    live = cursor.execute("SELECT count(*) FROM workers WHERE expires_at > now()").fetchone()[0]
    if live:
        raise StoreBusy(f"the PostgreSQL database {where} is in use by {live} mailesc worker(s): a copy would "
                        f"overwrite what they wrote; nothing was copied. Copy before switching the workers over")


def _refuse_other_breaches(cursor, contents: FileContents, where: str) -> None:
    """A breach id that is another breach in the database (or a breach there under another id): the database
    holds another installation's breaches."""
    rows = [(b.id, b.mailbox, b.thread, b.clock) for b, _ in contents.breaches.values()]
    if not rows:
        return
    keys = "unnest(%s::bigint[], %s::text[], %s::text[], %s::integer[]) AS k(id, mailbox, thread, clock)"
    for join in ("b.id = k.id", "(b.mailbox, b.thread, b.clock) = (k.mailbox, k.thread, k.clock)"):
        clash = cursor.execute(f"SELECT k.id FROM breaches b JOIN {keys} ON {join} "
                               f"WHERE (b.id, b.mailbox, b.thread, b.clock) IS DISTINCT FROM "
                               f"(k.id, k.mailbox, k.thread, k.clock) ORDER BY k.id LIMIT 1",
                               [list(column) for column in zip(*rows)]).fetchone()
        if clash:
            raise ForeignDatabase(f"the PostgreSQL database {where} holds another breach than the store's breach "
                                  f"{clash[0]} under its id or for its thread: it holds another installation's "
                                  f"records; nothing was copied. Copy into an empty database (or the one this "
                                  f"store was copied into before)")


def _copy_secret(cursor, secret: bytes | None, where: str) -> str:
    """The store's signing secret into meta ('', 'secret'), so marks signed before the move are recognised."""
    if secret is None:
        return "none in the store"
    row = cursor.execute("SELECT state FROM meta WHERE mailbox = %s AND name = 'secret'", (INSTALLATION,)).fetchone()
    known = row[0].get("hex") if row and isinstance(row[0], dict) else None
    if known == secret.hex():
        return "already there"
    if row is not None:
        records = cursor.execute("SELECT (SELECT count(*) FROM threads) + (SELECT count(*) FROM breaches) "
                                 "+ (SELECT count(*) FROM reviews) + (SELECT count(*) FROM quarantine)").fetchone()[0]
        if records:
            raise ForeignDatabase(f"the PostgreSQL database {where} already has another installation's secret and "
                                  f"records signed with it: it is not this store's copy, and merging two "
                                  f"installations would break one's signatures; nothing was copied. Copy into an "
                                  f"empty database (or the one this store was copied into before)")
    _upsert(cursor, "meta", ("mailbox", "name", "state"), 2, [(INSTALLATION, "secret", _json({"hex": secret.hex()}))])
    return "copied" if row is None else "replaced (the database held no records)"


def _write(cursor, contents: FileContents) -> None:
    from mailesc.stores.postgres import write_breaches, write_outgoing, write_threads

    write_threads(cursor, list(contents.threads.values()))
    write_breaches(cursor, sorted(contents.breaches.values(), key=lambda pair: pair[0].id))
    _upsert(cursor, "quarantine", ("mailbox", "key", "doc"), 2,
            [(q.mailbox, q.key, _json(_quarantined_doc(q))) for q in contents.quarantine])
    # out of quarantine in the file since an earlier copy (read again): out of it in the database too
    mailboxes = contents.mailboxes()
    keys = [(q.mailbox, q.key) for q in contents.quarantine]
    cursor.execute("DELETE FROM quarantine q WHERE q.mailbox = ANY(%s::text[]) AND NOT EXISTS (SELECT 1 FROM "
                   "unnest(%s::text[], %s::text[]) AS k(mailbox, key) WHERE (k.mailbox, k.key) = (q.mailbox, q.key))",
                   (mailboxes, [m for m, _ in keys], [k for _, k in keys]))
    for table, rows in contents.named.items():
        _upsert(cursor, table, ("mailbox", "name", "state"), 2,
                [(mailbox, name, _json(state)) for mailbox, name, state in rows])
    for mailbox in {mailbox for mailbox, _ in contents.outgoing}:
        write_outgoing(cursor, mailbox, [mail for where, mail in contents.outgoing if where == mailbox])


def _write_reviews(cursor, entries: list[ReviewEntry]) -> int:
    """Add each review entry the database lacks (as often as the file has it more), in the file's order; the
    number added."""
    if not entries:
        return 0
    _stage_reviews(cursor, entries)
    cursor.execute("INSERT INTO reviews (breach, at, by, action, cause, note) "
                   "SELECT s.breach, s.at, s.by, s.action, s.cause, s.note FROM staged_reviews s "
                   f"WHERE s.nth > ({_SAME_REVIEWS}) ORDER BY s.position")
    return cursor.rowcount


_SAME_REVIEWS = ("SELECT count(*) FROM reviews r WHERE r.breach = s.breach AND r.at = s.at AND r.by = s.by "
                 "AND r.action = s.action AND r.cause IS NOT DISTINCT FROM s.cause "
                 "AND r.note IS NOT DISTINCT FROM s.note")


def _stage_reviews(cursor, entries: list[ReviewEntry]) -> None:
    cursor.execute("CREATE TEMPORARY TABLE staged_reviews (position integer, nth integer, breach bigint, "
                   "at timestamptz, by text, action text, cause text, note text) ON COMMIT DROP")
    seen: Counter = Counter()
    with cursor.copy("COPY staged_reviews FROM STDIN") as copy:
        for position, entry in enumerate(entries):
            same = (entry.breach, entry.at, entry.by, entry.action, entry.cause, entry.note)
            seen[same] += 1
            copy.write_row((position, seen[same], *same))


def _move_sequence(cursor, last_copied: int) -> int:
    """The breach_ids sequence past the highest id copied (never back). The id it last handed out."""
    last, called = cursor.execute("SELECT last_value, is_called FROM breach_ids").fetchone()
    current = last if called else last - 1
    if last_copied > current:
        cursor.execute("SELECT setval('breach_ids', %s, true)", (last_copied,))
        return last_copied
    return current


def _count(cursor, table: str, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple]) -> int:
    """How many of `rows` (values of `columns`) the table holds."""
    if not rows:
        return 0
    keys = ", ".join(f"%s::{kind}[]" for kind in types)
    return cursor.execute(f"SELECT count(*) FROM {table} JOIN unnest({keys}) AS k({', '.join(columns)}) "
                          f"USING ({', '.join(columns)})", [list(column) for column in zip(*rows)]).fetchone()[0]


def _check(cursor, contents: FileContents, where: str) -> None:
    """Count the copied keys back (with their archived flags, escalations' Message-IDs): all or nothing."""
    breaches = [pair[0] for pair in contents.breaches.values()]
    expected: dict[str, tuple[tuple[str, ...], tuple[str, ...], list[tuple]]] = {
        "threads": (("mailbox", "id", "archived"), ("text", "text", "boolean"),
                    [(m, i, archived) for (m, i), (_, archived) in contents.threads.items()]),
        "breaches": (("id", "mailbox", "archived"), ("bigint", "text", "boolean"),
                     [(b.id, b.mailbox, archived) for b, archived in contents.breaches.values()]),
        "escalations": (("mailbox", "thread", "clock", "level", "breach", "message_id"),
                        ("text", "text", "integer", "integer", "bigint", "text"),
                        [(b.mailbox, b.thread, b.clock, e.level, b.id, e.message_id) for b in breaches
                         for e in b.escalations]),
        "outgoing": (("mailbox", "message_id"), ("text", "text"),
                     [(mailbox, mail.message_id) for mailbox, mail in contents.outgoing]
                     + [(b.mailbox, n.message_id) for b in breaches for n in b.notifications]),
        "quarantine": (("mailbox", "key"), ("text", "text"), [(q.mailbox, q.key) for q in contents.quarantine]),
        **{table: (("mailbox", "name"), ("text", "text"), [(mailbox, name) for mailbox, name, _ in rows])
           for table, rows in contents.named.items()},
    }
    for table, (columns, types, rows) in expected.items():
        found = _count(cursor, table, columns, types, rows)
        if found != len(rows):
            _mismatch(table, found, len(rows), where)
    if contents.reviews:
        found = cursor.execute(f"SELECT count(*) FROM staged_reviews s WHERE s.nth <= ({_SAME_REVIEWS})").fetchone()[0]
        if found != len(contents.reviews):
            _mismatch("reviews", found, len(contents.reviews), where)
    if contents.secret is not None:
        state = cursor.execute("SELECT state FROM meta WHERE mailbox = %s AND name = 'secret'",
                               (INSTALLATION,)).fetchone()
        if state is None or state[0].get("hex") != contents.secret.hex():
            _mismatch("meta", 0, 1, where)


def _mismatch(table: str, found: int, expected: int, where: str) -> None:
    raise CopyMismatch(f"after copying, table {table} of the PostgreSQL database {where} holds {found} of the "
                       f"{expected} records copied into it; nothing was copied (rolled back). Run with -vv and "
                       f"report it")


def _upsert(cursor, table, columns, key_columns, rows) -> None:
    from mailesc.stores.postgres import _upsert as upsert

    upsert(cursor, table, columns, key_columns, rows)


def _json(value):
    from psycopg.types.json import Jsonb

    return Jsonb(value)
