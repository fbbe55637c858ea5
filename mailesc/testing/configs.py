"""A complete mailesc.toml for a test in a folder of its own, pointed at test servers, and a few ready rule sets.

``write_config(folder, mailbox=imap_section(box), smtp=smtp_section(sink), rules=ONE_HOUR_RULE)`` writes the config
with its own ``policies/`` (the rules given) and ``var/``, using the templates mailesc ships; ``MAILDIR``/``OUTBOX``
are the no-server sections (a local Maildir in, an outbox Maildir out). The IMAP password is read from
``$MAILESC_IMAP_PASSWORD``, so a test sets that for the processes it starts.
"""

from __future__ import annotations

from pathlib import Path

from mailesc.defaults import TEMPLATES as PACKAGED_TEMPLATES

__all__ = ["FIVE_SECOND_RULE", "MAILDIR", "ONE_HOUR_RULE", "OUTBOX", "imap_section", "smtp_section", "write_config"]

MAILDIR = '[mailbox]\nkind = "maildir"\npath = "Maildir"'
OUTBOX = '[smtp]\nkind = "outbox"\npath = "outbox"\nfrom = "Escalations <escalations@example.test>"'

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


def write_config(folder: Path, *, mailbox: str, smtp: str, rules: str, team=("*@example.test",),
                 extra: str = "", store: str = 'path = "var/mailesc.json"', templates: Path | None = None) -> Path:
    """A mailesc.toml in `folder` with its own policies/ and var/; `store` is the body of its [store] table (a
    test on both backends passes ``backend.store_section``); `templates` defaults to the ones mailesc ships (the
    repository's templates/ folder in a checkout: the packaged folder is a link to it)."""
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
path = "{templates or PACKAGED_TEMPLATES.resolve()}"
{extra}
""")
    return path


def imap_section(mailbox, name: str | None = None) -> str:
    """The [mailbox] table for a ``Mailbox`` on a plain test Dovecot (password from $MAILESC_IMAP_PASSWORD); with
    `name`, a ``[[mailbox]]`` table of that name (one of several)."""
    head = "[mailbox]" if name is None else f'[[mailbox]]\nname = "{name}"'
    return f"""{head}
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
    """The [smtp] table for an ``SmtpSink`` without TLS."""
    return f"""[smtp]
kind = "smtp"
host = "{sink.host}"
port = {sink.port}
security = "plain"
from = "Support Escalations <escalations@example.test>"
timeout_seconds = 10"""
