"""The templates and the example policy that ship inside the package, and `mailesc init`.

`mailesc/data/templates` and `mailesc/data/policies` are symbolic links to the repository's top-level
`templates/` and `policies/` folders: there is one copy in the repository, and building the package copies
the files behind the links into it, so an installed mailesc carries them and the two can never drift.

They are used when `templates.path` or `policies.path` is not set or does not exist, so a config written
from the README works after a plain `pip install`; a templates folder of one's own overrides them one
template name at a time."""

from __future__ import annotations

from pathlib import Path

from mailesc.errors import UsageError

PACKAGED = Path(__file__).resolve().parent / "data"
TEMPLATES = PACKAGED / "templates"
POLICIES = PACKAGED / "policies"

STARTER_CONFIG = """\
# mailesc.toml, written by `mailesc init`. Edit the servers, the team and the policies, then run
#   mailesc -c {config} check
# Relative paths are read against this file's folder. Every key: the "Config reference" in mailesc's README.

[mailbox]
kind = "imap"                    # imap | maildir (then: path = "...")
host = "imap.example.com"
port = 993
security = "tls"                 # tls | starttls | plain (plain only to a loopback host)
username = "support@example.com"
password_env = "MAILESC_IMAP_PASSWORD"   # or password_file = "/etc/mailesc/imap-password" (mode 600)
folders = ["INBOX"]
sent_folder = "auto"             # the SPECIAL-USE \\Sent folder, a folder name, or "" for none
since = "7d"                     # older mail (back from the first start) threads but starts no clock

[smtp]
kind = "smtp"                    # smtp | outbox (then: path = "..." — a Maildir the mails are written to)
                                 # | command (then: command = ["/usr/sbin/sendmail", "-t", "-oi"])
host = "smtp.example.com"
port = 587
security = "starttls"
username = "escalations@example.com"
password_env = "MAILESC_SMTP_PASSWORD"
from = "Support Escalations <escalations@example.com>"
reply_to = "support@example.com"  # managers' replies to an escalation acknowledge it

[team]
addresses = ["support@example.com", "*@example.com"]

[store]
path = "var/mailesc.json"        # for a service: /var/lib/mailesc/mailesc.json

[policies]
path = "policies"                # who gets which deadline, and who is escalated to: edit policies/default.toml

[templates]
path = "templates"               # the mails; a template missing here is taken from the ones mailesc ships

[daemon]
poll_seconds = 30
"""


def policies_folder(configured: Path) -> Path:
    """The configured policies folder, or the shipped example policy when there is no such folder."""
    return configured if configured.exists() else POLICIES


def init(folder: Path) -> list[Path]:
    """Write a starter config, the example policy and the shipped templates into `folder` to edit.
    Never overwrites: if any of those files exists, nothing is written."""
    config = folder / "mailesc.toml"
    files = {config: STARTER_CONFIG.format(config=config)}
    for source, target in ((POLICIES, folder / "policies"), (TEMPLATES, folder / "templates")):
        for path in sorted(source.iterdir()):
            if path.is_file() and path.suffix in (".toml", ".j2"):
                files[target / path.name] = path.read_text(encoding="utf-8")
    existing = [path for path in files if path.exists() or path.is_symlink()]
    if existing:
        raise UsageError(f"{existing[0]} already exists: nothing written (init never overwrites a file)")
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as out:
                out.write(text)
    except OSError as error:
        raise UsageError(f"cannot write {error.filename}: {error.strerror}") from None
    return list(files)
