"""Helpers shared by the test suites: building messages and writing configs."""

from __future__ import annotations

import email
import email.policy
import itertools
import mailbox
import os
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "templates"
CORPORA = REPO.parent / "shared" / "corpora"
_ids = itertools.count(1)


def make_mail(*, sender: str, to: str = "support@example.test", subject: str = "Help", body: str = "Hello,\nplease help.",
              date: datetime | None = None, message_id: str | None = None, in_reply_to: str | None = None,
              references: list[str] | None = None, cc: str | None = None, headers: dict | None = None) -> tuple[bytes, str]:
    """(raw bytes, Message-ID) of a plain-text message."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = format_datetime(date or datetime.now(timezone.utc))
    message_id = message_id or f"<test-{next(_ids)}-{id(mail)}@{sender.rpartition('@')[2].strip('>')}>"
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail.as_bytes(), message_id


def write_config(folder: Path, *, mailbox: str, smtp: str, rules: str, team=("*@example.test",),
                 extra: str = "", store: str = 'path = "var/mailesc.json"') -> Path:
    """A mailesc.toml in `folder` with its own policies/ and var/, using the repository's templates; `store` is
    the body of its [store] table (a test on both backends passes ``backend.store_section``)."""
    (folder / "policies").mkdir(parents=True, exist_ok=True)
    (folder / "policies" / "rules.toml").write_text(rules)
    team_list = ", ".join(f'"{address}"' for address in team)
    path = folder / "mailesc.toml"
    path.write_text(f"""{mailbox}
{smtp}
[team]
addresses = [{team_list}]
[store]
{store}
[policies]
path = "policies"
[templates]
path = "{TEMPLATES}"
{extra}
""")
    return path


def imap_section(mailbox) -> str:
    return f"""[mailbox]
kind = "imap"
host = "{mailbox.host}"
port = {mailbox.port}
security = "plain"
username = "{mailbox.username}"
password_env = "MAILESC_IMAP_PASSWORD"
folders = ["INBOX"]
sent_folder = "auto"
timeout_seconds = 10"""


def smtp_section(sink) -> str:
    return f"""[smtp]
kind = "smtp"
host = "{sink.host}"
port = {sink.port}
security = "plain"
from = "Support Escalations <escalations@example.test>"
timeout_seconds = 10"""


ONE_HOUR_RULE = """
[[rule]]
name = "standard"
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
[[rule.escalate]]
after = "2h"
to = ["director@example.test"]
"""


FIVE_SECOND_RULE = """
[[rule]]
name = "fast"
first_response = "5s"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


MAILDIR = '[mailbox]\nkind = "maildir"\npath = "Maildir"'
OUTBOX = '[smtp]\nkind = "outbox"\npath = "outbox"\nfrom = "Escalations <escalations@example.test>"'


def deliver(box: mailbox.Maildir, raw: bytes, arrived: datetime) -> None:
    """Deliver like a local MTA: the file's mtime is the arrival time."""
    key = box.add(raw)
    path = os.path.join(box._path, box._lookup(key))
    os.utime(path, (arrived.timestamp(), arrived.timestamp()))


def outbox_mails(outbox: Path) -> list[email.message.EmailMessage]:
    """The mails mailesc wrote into an outbox Maildir, parsed."""
    folder = outbox / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir())] if folder.is_dir() else []


class Backend:
    """Where a test's store lives, for the tests that run on BOTH backends (the ``backend`` fixture in
    tests/conftest.py gives one of each): ``"file"``, the embedded store at ``<folder>/var/mailesc.json``, or
    ``"postgresql"``, a fresh database of the test cluster (its password in ``$MAILESC_DB_PASSWORD``, which the
    fixture sets, so daemons started as subprocesses read it too).

    A test changes two lines to run on both: it asks for ``backend`` and passes ``store=backend.store_section``
    to ``write_config``; the admin commands read either store, and assertions about what was recorded can open
    the store with ``backend.open(folder)`` or read ``backend.history(folder)``.
    """

    PASSWORD_ENV = "MAILESC_DB_PASSWORD"

    def __init__(self, name: str, database=None):
        self.name, self.database = name, database

    def __repr__(self) -> str:
        return f"Backend({self.name})"

    @staticmethod
    def of(request) -> "Backend":
        """For a fixture shared by tests on one and on both backends: the ``backend`` the test asked for, else
        the file store."""
        return request.getfixturevalue("backend") if "backend" in request.fixturenames else Backend("file")

    @property
    def store_section(self) -> str:
        """The body of a config's [store] table."""
        if self.name == "file":
            return 'path = "var/mailesc.json"'
        return (f'url = "{self.database.url}"\npassword_env = "{self.PASSWORD_ENV}"\nsecurity = "plain"\n'
                f'path = "var/mailesc.json"')

    def open(self, folder: Path):
        """The store a config written by write_config in `folder` names (closing it is the caller's job):
        mailesc.store.Store for the file, PostgresStore for PostgreSQL."""
        if self.name == "file":
            from mailesc.store import Store

            return Store(Path(folder) / "var" / "mailesc.json")
        from mailesc.stores.postgres import PostgresStore

        return PostgresStore(self.database.url, self.database.password, security="plain")

    def history(self, folder: Path):
        """Everything on record (live and archived, with the reviews), as `breaches list` and `report` see it."""
        if self.name == "file":
            from mailesc.history import load_history

            return load_history(Path(folder) / "var" / "mailesc.json")
        with self.open(folder) as store:
            return store.history()
