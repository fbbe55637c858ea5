"""The registries of source and transport kinds: a kind registered is read from the config, checked and opened
with nothing else changed; message keys name their kind; the README names every registered kind."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailesc import sources, transports
from mailesc.config import load_config
from mailesc.errors import ConfigError
from mailesc.kinds import Kind, Registry
from mailesc.sources import open_source, own_keys
from mailesc.transports import open_transport
from tests.support import REPO, make_mail


def write(folder: Path, text: str) -> Path:
    path = folder / "mailesc.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_registry_keeps_the_order_of_registration_and_each_key_once():
    registry = Registry("smtp")
    first = registry.register(Kind("a", keys=("path", "timeout_seconds"), settings=lambda s, c: None,
                                   open=lambda c: None))
    registry.register(Kind("b", keys=("timeout_seconds", "url"), settings=lambda s, c: None, open=lambda c: None))
    assert registry.names() == ("a", "b") and registry["a"] is first and "b" in registry and "c" not in registry
    assert registry.keys() == ("path", "timeout_seconds", "url")
    with pytest.raises(ValueError, match="'a' is registered twice"):
        registry.register(Kind("a", keys=(), settings=lambda s, c: None, open=lambda c: None))


def test_the_built_in_kinds():
    assert sources.KINDS.names() == ("imap", "maildir")
    assert transports.KINDS.names() == ("smtp", "outbox", "command")


# -- a new kind: one declaration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolSettings:
    folder: Path
    suffix: str


class SpoolTransport:
    """A transport for this test only: each mail becomes FOLDER/NUMBER.SUFFIX."""

    def __init__(self, config):
        self.settings = config.settings

    def send(self, mails, settle=None):
        for number, mail in enumerate(mails, start=1):
            (self.settings.folder / f"{number}{self.settings.suffix}").write_bytes(mail.data)
        return {mail.message_id: None for mail in mails}

    def check(self) -> dict:
        return {"kind": "spool", "folder": str(self.settings.folder)}


def _spool_settings(section, chosen: bool):
    suffix = section.text("suffix", ".eml")
    if chosen and "spool" not in section.table:
        section.problem("spool", "is required with kind = \"spool\"")
    return SpoolSettings(section.path("spool", "spool"), suffix) if chosen else None


@pytest.fixture
def spool_kind(monkeypatch):
    monkeypatch.setitem(transports.KINDS._kinds, "spool", Kind("spool", keys=("spool", "suffix"),
                                                              settings=_spool_settings, open=SpoolTransport))


def test_a_registered_kind_is_read_from_the_config_and_opened(tmp_path, spool_kind):
    (tmp_path / "out").mkdir()
    config = load_config(write(tmp_path, '[smtp]\nkind = "spool"\nspool = "out"\nsuffix = ".mail"\n'))
    assert config.smtp.settings == SpoolSettings(tmp_path.resolve() / "out", ".mail")
    transport = open_transport(config.smtp)
    assert transport.check() == {"kind": "spool", "folder": str(tmp_path.resolve() / "out")}
    from mailesc.render import OutgoingMail

    assert transport.send([OutgoingMail("<a@b>", "x@y.example", ("m@y.example",), b"Subject: hi\r\n\r\nhi\r\n")])
    assert (tmp_path / "out" / "1.mail").read_bytes() == b"Subject: hi\r\n\r\nhi\r\n"


@pytest.mark.parametrize("text, key, problem", [
    ('[smtp]\nkind = "spool"\n', "smtp.spool", 'is required with kind = "spool"'),
    ('[smtp]\nkind = "spool"\nspool = "out"\nsufix = ".x"\n', "smtp.sufix", "unknown key (did you mean 'suffix'?)"),
    ('[smtp]\nkind = "outbox"\nsuffix = 3\n', "smtp.suffix", "must be a string, not 3"),  # read for every kind
    ('[smtp]\nkind = "spoool"\n', "smtp.kind", "unknown kind 'spoool' (did you mean 'spool'?): must be one of smtp, outbox, command, spool"),
], ids=["required", "misspelt", "wrong-type-while-another-kind-is-chosen", "unknown-kind"])
def test_a_registered_kind_s_problems_name_the_file_and_key(tmp_path, spool_kind, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [(str(path), key, problem)]


# A kind is chosen by name from a registry: a misspelt one is named as such, with the closest registered name
# (as an unknown key is), and the names there are; one close to none gets the list alone.
MISSPELT_KINDS = [
    ("imapp", "[mailbox]\nkind = \"imapp\"\n", "mailbox.kind",
     "unknown kind 'imapp' (did you mean 'imap'?): must be one of imap, maildir"),
    ("maildr", "[mailbox]\nkind = \"maildr\"\n", "mailbox.kind",
     "unknown kind 'maildr' (did you mean 'maildir'?): must be one of imap, maildir"),
    ("pop3", "[mailbox]\nkind = \"pop3\"\n", "mailbox.kind", "unknown kind 'pop3': must be one of imap, maildir"),
    ("in-a-mailbox-array", "[[mailbox]]\nname = \"a\"\nkind = \"IMAP\"\n", "mailbox[1].kind",
     "unknown kind 'IMAP' (did you mean 'imap'?): must be one of imap, maildir"),
    ("smpt", "[smtp]\nkind = \"smpt\"\n", "smtp.kind",
     "unknown kind 'smpt' (did you mean 'smtp'?): must be one of smtp, outbox, command"),
    ("outbx", "[smtp]\nkind = \"outbx\"\n", "smtp.kind",
     "unknown kind 'outbx' (did you mean 'outbox'?): must be one of smtp, outbox, command"),
    ("sendmail", "[smtp]\nkind = \"sendmail\"\n", "smtp.kind",
     "unknown kind 'sendmail': must be one of smtp, outbox, command"),
]


@pytest.mark.parametrize("text, key, problem", [case[1:] for case in MISSPELT_KINDS],
                         ids=[case[0] for case in MISSPELT_KINDS])
def test_an_unknown_kind_is_named_with_the_closest_registered_one(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [(str(path), key, problem)] and caught.value.exit_code == 78


# -- message keys name their kind ----------------------------------------------------------------------------------


def test_own_keys_are_those_of_the_kind():
    keys = ["imap:7:12:INBOX", "maildir:INBOX:1.M2P3.host:2,S", "imapx:1", "eml:a.eml"]
    assert own_keys("imap", keys) == ["imap:7:12:INBOX"]
    assert own_keys("maildir", keys) == ["maildir:INBOX:1.M2P3.host:2,S"]


def test_a_source_fetches_its_own_keys_and_ignores_those_of_another_kind(tmp_path):
    """A mailbox switched from maildir to imap (or back) keeps its threads, with keys of the old kind."""
    inbox = mailbox.Maildir(tmp_path / "Maildir", create=True)
    raw, _ = make_mail(sender="pat@customer.example")
    name = inbox.add(raw)
    maildir = open_source(load_config(write(tmp_path, '[mailbox]\nkind = "maildir"\n')).mailbox)
    own = f"maildir:INBOX:{name}"
    assert maildir.fetch([own, "imap:7:12:INBOX"]) == {own: raw}

    imap = open_source(load_config(write(tmp_path, '[mailbox]\nkind = "imap"\nhost = "192.0.2.1"\n'
                                                   'username = "u"\n')).mailbox)
    assert imap.fetch([own]) == {}  # before: a ValueError from reading "INBOX" as a UIDVALIDITY
    assert imap._client is None  # nothing to fetch: not even connected


# -- the README ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, registry", [("mailbox.kind", sources.KINDS), ("smtp.kind", transports.KINDS)])
def test_the_readme_names_every_registered_kind(key, registry):
    [row] = [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
             if line.startswith(f"| `{key}` |")]
    meaning = row.split("|")[3]
    assert all(f"`{name}`" in meaning for name in registry.names()), row


def test_check_describes_the_built_in_local_kinds_as_before(tmp_path):
    from mailesc import app
    from tests.support import MAILDIR, ONE_HOUR_RULE, OUTBOX, write_config

    config = load_config(write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE))
    mailbox.Maildir(tmp_path / "Maildir", create=True).add_folder("Sent")
    lines = app.check(app.load_setup(config), offline=False)
    assert lines[-3:] == ["mailboxes  default (maildir)",
                          f"mailbox    kind: maildir; path: {tmp_path.resolve() / 'Maildir'}; "
                          "folders: {'INBOX': 0, 'Sent': 0}",
                          f"sending    kind: outbox; path: {tmp_path.resolve() / 'outbox'}"]
