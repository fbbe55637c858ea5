"""load_config for many mailboxes, the PostgreSQL store and leases: [[mailbox]], [store] url, [daemon] lease_seconds.
Every problem names the file, the table and key, and is reported with all the others."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from mailesc.config import credential_problems, load_config
from mailesc.errors import ConfigError

SECRET = "pg-Zq8!never-print-me"


def write(folder: Path, text: str, name: str = "mailesc.toml") -> Path:
    path = folder / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == 78
    return caught.value.problems


THREE = """
    [team]
    addresses = ["*@example.test"]

    [[mailbox]]
    name = "support"
    path = "Maildir/support"

    [[mailbox]]
    name = "billing"
    kind = "imap"
    host = "imap.example.test"
    username = "billing@example.test"
    password_env = "MAILESC_TEST_IMAP_PASSWORD"
    team = ["Accounts@Partner.example"]

    [[mailbox]]
    name = "vip.eu-1"
    path = "Maildir/vip"
    policies = "vip-policies"
    since = "2d"
"""


# -- [[mailbox]] ------------------------------------------------------------------------------------------------

def test_several_mailboxes_load_in_the_order_of_the_file(tmp_path):
    (tmp_path / "vip-policies").mkdir()
    config = load_config(write(tmp_path, THREE))
    base = tmp_path.resolve()
    assert [box.name for box in config.mailboxes] == ["support", "billing", "vip.eu-1"]
    assert config.mailbox is config.mailboxes[0]
    support, billing, vip = config.mailboxes
    assert (support.kind, support.path) == ("maildir", base / "Maildir" / "support")
    assert (billing.kind, billing.server.host, billing.server.username) == ("imap", "imap.example.test",
                                                                            "billing@example.test")
    assert billing.server.password.section == "mailbox[2]"  # a password problem names this table
    assert vip.since.days == 2 and support.since.days == 7
    assert config.find_mailbox("billing") is billing and config.find_mailbox("nope") is None


def test_each_mailbox_adds_its_own_team_to_the_common_one(tmp_path):
    (tmp_path / "vip-policies").mkdir()
    config = load_config(write(tmp_path, THREE))
    support, billing, _ = config.mailboxes
    assert billing.team == ("accounts@partner.example",)
    assert config.team_of(billing) == ("*@example.test", "accounts@partner.example")
    assert config.team_of(support) == ("*@example.test",)


def test_a_mailbox_may_have_its_own_policies_folder(tmp_path):
    (tmp_path / "vip-policies").mkdir()
    config = load_config(write(tmp_path, THREE))
    support, _, vip = config.mailboxes
    assert vip.policies_path == tmp_path.resolve() / "vip-policies"
    assert config.policies_of(vip) == tmp_path.resolve() / "vip-policies"
    assert support.policies_path is None and config.policies_of(support) == config.policies_path


@pytest.mark.parametrize("text, name", [
    ("", "default"),
    ("[mailbox]\npath = 'Maildir'\n", "default"),
    ("[mailbox]\nname = 'support'\n", "support"),
    ("[[mailbox]]\npath = 'Maildir'\n", "default"),  # one [[mailbox]] table needs no name either
], ids=["no-table", "single-table", "single-table-named", "one-array-table"])
def test_one_mailbox_keeps_working_and_is_called_default_unless_named(tmp_path, text, name):
    config = load_config(write(tmp_path, text))
    assert len(config.mailboxes) == 1 and config.mailbox.name == name
    assert config.mailbox.team == () and config.mailbox.policies_path is None
    assert config.team_of(config.mailbox) == config.team_addresses


def test_a_single_table_takes_team_and_policies_too(tmp_path):
    (tmp_path / "p").mkdir()
    config = load_config(write(tmp_path, "[mailbox]\nteam = 'lead@example.test'\npolicies = 'p'\n"))
    assert config.mailbox.team == ("lead@example.test",)
    assert config.policies_of(config.mailbox) == tmp_path.resolve() / "p"


@pytest.mark.parametrize("name", ["a", "support", "vip.eu-1", "Billing_2", "9", "x" * 63])
def test_names_of_letters_digits_dots_underscores_and_dashes_are_accepted(tmp_path, name):
    assert load_config(write(tmp_path, f"[mailbox]\nname = '{name}'\n")).mailbox.name == name


MAILDIRS = "[[mailbox]]\nname = 'a'\npath = 'A'\n[[mailbox]]\nname = 'b'\npath = 'B'\n"
ERRORS = [
    # (id, config text, key named in the message, words of the explanation)
    ("missing-name", "[[mailbox]]\nname = 'a'\npath = 'A'\n[[mailbox]]\npath = 'B'\n", "mailbox[2].name",
     "is required when there is more than one mailbox"),
    ("missing-name-in-first", "[[mailbox]]\npath = 'A'\n[[mailbox]]\nname = 'b'\npath = 'B'\n", "mailbox[1].name",
     "is required"),
    ("duplicate-name", "[[mailbox]]\nname = 'a'\npath = 'A'\n[[mailbox]]\nname = 'a'\npath = 'B'\n",
     "mailbox[2].name", "'a' is already the name of mailbox[1]"),
    ("duplicate-name-but-for-case", "[[mailbox]]\nname = 'sales'\npath = 'A'\n[[mailbox]]\nname = 'Sales'\n"
                                    "path = 'B'\n", "mailbox[2].name", "differ by more than upper and lower case"),
    ("name-with-space", "[mailbox]\nname = 'first line'\n", "mailbox.name", "letters, digits, '.', '_' or '-'"),
    ("name-with-quote", "[mailbox]\nname = \"it's\"\n", "mailbox.name", "letters, digits"),
    ("name-with-slash", "[mailbox]\nname = 'a/b'\n", "mailbox.name", "letters, digits"),
    ("name-dot-dot", "[mailbox]\nname = '..'\n", "mailbox.name", "starting with a letter or digit"),
    ("name-leading-dash", "[mailbox]\nname = '-x'\n", "mailbox.name", "starting with a letter or digit"),
    ("name-empty", "[mailbox]\nname = ''\n", "mailbox.name", "1 to 63"),
    ("name-too-long", f"[mailbox]\nname = '{'x' * 64}'\n", "mailbox.name", "1 to 63"),
    ("name-not-unicode-letters", "[mailbox]\nname = 'süpport'\n", "mailbox.name", "letters, digits"),
    ("name-not-a-string", "[mailbox]\nname = 3\n", "mailbox.name", "must be a string"),
    ("unknown-key-in-second-table", MAILDIRS + "hots = 'x'\n", "mailbox[2].hots", "did you mean 'host'?"),
    ("bad-value-in-first-table", "[[mailbox]]\nname = 'a'\nport = 'x'\n[[mailbox]]\nname = 'b'\npath = 'B'\n",
     "mailbox[1].port", "must be a number"),
    ("same-maildir", "[[mailbox]]\nname = 'a'\npath = 'Mail'\n[[mailbox]]\nname = 'b'\npath = './x/../Mail'\n",
     "mailbox[2].path", "mailbox[1] already reads the Maildir"),
    ("same-imap-account", "[[mailbox]]\nname = 'a'\nkind = 'imap'\nhost = 'imap.example.test'\nusername = 'u'\n"
                          "[[mailbox]]\nname = 'b'\nkind = 'imap'\nhost = 'IMAP.example.test'\nusername = 'U'\n"
                          "folders = ['VIP']\n",
     "mailbox[2].username", "mailbox[1] already reads the IMAP account U@IMAP.example.test"),
    ("team-not-strings", "[mailbox]\nteam = [1]\n", "mailbox.team", "must be a list of strings"),
    ("policies-missing-folder", "[[mailbox]]\nname = 'a'\npolicies = 'nope'\n", "mailbox[1].policies",
     "is not a folder"),
    ("mailbox-a-string", "mailbox = 'support'\n", "mailbox", "one [mailbox] table or [[mailbox]] tables"),
    ("mailbox-an-empty-list", "mailbox = []\n", "mailbox", "one [mailbox] table or [[mailbox]] tables"),
    ("mailbox-a-list-of-strings", "mailbox = ['a', 'b']\n", "mailbox[1]", "must be a table"),
    ("single-and-array", "[mailbox]\npath = 'A'\n[[mailbox]]\nname = 'b'\n", "mailbox",
     "either one [mailbox] table or [[mailbox]] tables, not both"),
    ("array-and-single", "[[mailbox]]\nname = 'b'\n[smtp]\nkind = 'outbox'\n[mailbox]\npath = 'A'\n", "mailbox",
     "not both"),
    # [store]
    ("url-with-password", "[store]\nurl = 'postgresql://mailesc:hunter2@db.example.test/mailesc'\n", "store.url",
     "holds a password: put it in password_env or password_file"),
    ("url-with-empty-password", "[store]\nurl = 'postgresql://mailesc:@db.example.test/mailesc'\n", "store.url",
     "holds a password"),
    ("url-other-scheme", "[store]\nurl = 'mysql://mailesc@db.example.test/mailesc'\n", "store.url",
     "must start with postgresql://"),
    ("url-no-scheme", "[store]\nurl = 'db.example.test/mailesc'\n", "store.url", "must start with postgresql://"),
    ("url-no-host", "[store]\nurl = 'postgresql:///mailesc'\n", "store.url", "names no host"),
    ("url-no-database", "[store]\nurl = 'postgresql://mailesc@db.example.test'\n", "store.url",
     "names no database"),
    ("url-empty-database", "[store]\nurl = 'postgresql://mailesc@db.example.test/'\n", "store.url",
     "names no database"),
    ("url-bad-port", "[store]\nurl = 'postgresql://mailesc@db.example.test:99999/mailesc'\n", "store.url",
     "is not a URL"),
    ("url-with-parameters", "[store]\nurl = 'postgresql://mailesc@db.example.test/mailesc?sslmode=disable'\n",
     "store.url", "takes no ?parameters"),
    ("url-not-a-string", "[store]\nurl = 5432\n", "store.url", "must be a string"),
    ("store-security-unknown", "[store]\nurl = 'postgresql://m@db.example.test/m'\nsecurity = 'starttls'\n",
     "store.security", "must be one of tls, plain"),
    ("store-plain-to-remote-host", "[store]\nurl = 'postgresql://m@db.example.test/m'\nsecurity = 'plain'\n",
     "store.security", "only allowed to a loopback host, not 'db.example.test'"),
    ("store-password-inline", "[store]\nurl = 'postgresql://m@127.0.0.1/m'\npassword = 'x'\n", "store.password",
     "use password_env or password_file"),
    ("store-password-env-and-file", "[store]\nurl = 'postgresql://m@127.0.0.1/m'\npassword_env = 'X'\n"
                                    "password_file = 'pw'\n", "store.password_env", "not both"),
    ("store-password-without-url", "[store]\npassword_env = 'X'\n", "store.password_env", "only means something "
                                                                                          "with url"),
    ("store-security-without-url", "[store]\nsecurity = 'plain'\n", "store.security", "only means something"),
    ("store-ca-file-missing", "[store]\nurl = 'postgresql://m@db.example.test/m'\nca_file = 'nope.pem'\n",
     "store.ca_file", "does not exist"),
    ("store-unknown-key", "[store]\nurls = 'postgresql://m@db.example.test/m'\n", "store.urls",
     "did you mean 'url'?"),
    # [daemon]
    ("lease-seconds-too-short", "[daemon]\nlease_seconds = 4\n", "daemon.lease_seconds", "at least 5"),
    ("lease-seconds-a-string", "[daemon]\nlease_seconds = '30s'\n", "daemon.lease_seconds", "must be a number"),
    ("lease-seconds-misspelt", "[daemon]\nlease_second = 30\n", "daemon.lease_second",
     "did you mean 'lease_seconds'?"),
]


@pytest.mark.parametrize("text, key, words", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_file_table_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: {key}: " in str(caught.value)
    assert words in str(caught.value)
    assert caught.value.exit_code == 78


def test_every_mailbox_problem_is_reported_with_the_others(tmp_path):
    path = write(tmp_path, """
        [[mailbox]]
        name = "support"
        path = "Maildir"
        [[mailbox]]
        name = "support"
        hots = "x"
        [[mailbox]]
        path = "Maildir"
        [store]
        url = "postgresql://mailesc@db.example.test"
        [daemon]
        lease_seconds = 1
    """)
    keys = sorted(key for _, key, _ in problems_of(path))
    assert keys == ["daemon.lease_seconds", "mailbox[2].hots", "mailbox[2].name", "mailbox[2].path",
                    "mailbox[3].name", "mailbox[3].path", "store.url"]
    assert all(file == str(path) for file, _, _ in problems_of(path))


@pytest.mark.parametrize("url", [
    f"postgresql://mailesc:{SECRET}@db.example.test/mailesc",
    f"postgresql://mailesc:{SECRET}@db.example.test",  # and a second problem
    f"postgresql://mailesc:{SECRET}@db.example.test:5432/mailesc?sslmode=disable",
    f"mysql://mailesc:{SECRET}@db.example.test/mailesc",
    f"postgresql://mailesc:{SECRET}@db.example.test:99999/mailesc",
], ids=["password", "password-and-no-database", "password-and-parameters", "password-and-scheme",
        "password-and-bad-port"])
def test_a_password_in_the_url_is_never_repeated(tmp_path, url):
    problems = problems_of(write(tmp_path, f"[store]\nurl = '{url}'\nsecurity = 'plain'\n"))
    assert problems and all(SECRET not in part for problem in problems for part in problem)
    assert all(url not in part for problem in problems for part in problem)


# -- [store] ----------------------------------------------------------------------------------------------------

def test_the_file_store_is_the_default(tmp_path):
    config = load_config(write(tmp_path, "[store]\npath = 'var/state.json'\n"))
    assert config.store.url is None and config.store.path == tmp_path.resolve() / "var" / "state.json"
    assert config.store_path == config.store.path
    assert config.store.where == str(config.store.path)


@pytest.mark.parametrize("url, where, args", [
    ("postgresql://mailesc@db.example.test:5433/escalations", "db.example.test:5433/escalations",
     {"host": "db.example.test", "port": 5433, "dbname": "escalations", "user": "mailesc"}),
    ("postgres://db.example.test/mailesc", "db.example.test:5432/mailesc",
     {"host": "db.example.test", "port": 5432, "dbname": "mailesc"}),
    ("postgresql://mail%40esc@[::1]/my%20db", "[::1]:5432/my db",
     {"host": "::1", "port": 5432, "dbname": "my db", "user": "mail@esc"}),
], ids=["full", "postgres-scheme-no-user", "quoted-and-ipv6"])
def test_a_postgresql_url_is_taken_apart_for_the_driver(tmp_path, url, where, args):
    config = load_config(write(tmp_path, f"[store]\nurl = '{url}'\n"))
    assert config.store.url == url and config.store.where == where
    assert config.store.security == "tls" and config.store.password.env is None
    connect = config.store.connect_args()
    assert connect["sslmode"] == "verify-full" and connect["sslrootcert"]  # the system's CAs unless told
    assert {key: connect[key] for key in args} == args and "password" not in connect
    assert config.store_path == tmp_path.resolve() / "var" / "mailesc.json"  # the replay store and locks


def test_the_store_password_is_read_only_on_request_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILESC_TEST_PG_PASSWORD", SECRET)
    path = write(tmp_path, "[store]\nurl = 'postgresql://mailesc@db.example.test/mailesc'\n"
                           "password_env = 'MAILESC_TEST_PG_PASSWORD'\n")
    config = load_config(path)
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert config.store.password.read() == SECRET
    assert config.store.connect_args()["password"] == SECRET
    assert credential_problems(config) == []
    monkeypatch.delenv("MAILESC_TEST_PG_PASSWORD")
    assert credential_problems(config) == [(str(path), "store.password_env",
                                            "environment variable MAILESC_TEST_PG_PASSWORD is not set")]


def test_plain_to_a_loopback_database_and_a_private_ca(tmp_path):
    (tmp_path / "ca.pem").write_text("not checked here\n", encoding="utf-8")
    config = load_config(write(tmp_path, "[store]\nurl = 'postgresql://m@127.0.0.1:5499/m'\nsecurity = 'plain'\n"))
    assert config.store.security == "plain" and config.store.connect_args()["sslmode"] == "disable"
    config = load_config(write(tmp_path, "[store]\nurl = 'postgresql://m@db.example.test/m'\nca_file = 'ca.pem'\n"))
    assert config.store.connect_args()["sslrootcert"] == str(tmp_path.resolve() / "ca.pem")
    config = load_config(write(tmp_path, "[store]\nurl = 'postgresql://m@db.example.test/m'\nsecurity = 'plain'\n"
                                         "allow_insecure = true\n"))
    assert config.store.connect_args()["sslmode"] == "disable"


@pytest.mark.parametrize("setup, key, words", [
    (lambda folder: None, "store.password_env", "MAILESC_TEST_PG_PASSWORD is not set"),
    (lambda folder: (folder / "pw").write_text("", encoding="utf-8") or (folder / "pw").chmod(0o600),
     "store.password_file", "is empty"),
    (lambda folder: (folder / "pw").write_text(SECRET, encoding="utf-8") or (folder / "pw").chmod(0o644),
     "store.password_file", "chmod 600"),
    (lambda folder: None, "store.password_file", "cannot read"),
], ids=["env-unset", "file-empty", "file-readable-by-others", "file-missing"])
def test_store_password_problems_are_found_at_start(tmp_path, monkeypatch, setup, key, words):
    monkeypatch.delenv("MAILESC_TEST_PG_PASSWORD", raising=False)
    setup(tmp_path)
    source = "password_env = 'MAILESC_TEST_PG_PASSWORD'" if key.endswith("env") else "password_file = 'pw'"
    path = write(tmp_path, f"[store]\nurl = 'postgresql://m@db.example.test/m'\n{source}\n")
    problems = credential_problems(load_config(path))
    assert [(file, found) for file, found, _ in problems] == [(str(path), key)]
    assert words in problems[0][2] and SECRET not in problems[0][2]


def test_no_store_password_is_no_problem_and_the_file_store_needs_none(tmp_path):
    config = load_config(write(tmp_path, "[store]\nurl = 'postgresql://m@db.example.test/m'\n"))
    assert credential_problems(config) == []  # trust, peer or ~/.pgpass: the server decides
    assert credential_problems(load_config(write(tmp_path, ""))) == []


def test_credentials_of_every_imap_mailbox_are_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILESC_TEST_IMAP_PASSWORD", raising=False)
    (tmp_path / "vip-policies").mkdir()
    path = write(tmp_path, THREE + """
        [[mailbox]]
        name = "sales"
        kind = "imap"
        host = "imap.example.test"
        username = "sales@example.test"
    """)
    problems = credential_problems(load_config(path))
    assert [(key, text.split(":")[0]) for _, key, text in problems] == [
        ("mailbox[2].password_env", "environment variable MAILESC_TEST_IMAP_PASSWORD is not set"),
        ("mailbox[4].password_env", "the login as sales@example.test needs a password")]


# -- [daemon] lease_seconds -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("", 30), ("[daemon]\nlease_seconds = 5\n", 5),
                                           ("[daemon]\nlease_seconds = 12.5\n", 12.5)],
                         ids=["default", "minimum", "fraction"])
def test_lease_seconds(tmp_path, text, seconds):
    assert load_config(write(tmp_path, text)).lease_seconds == seconds
