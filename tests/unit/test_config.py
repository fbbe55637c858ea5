"""load_config: typed settings from mailesc.toml; every problem names its file and key."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from mailesc.config import load_config
from mailesc.errors import ConfigError

FULL = """
    [mailbox]
    kind = "imap"
    host = "imap.example.test"
    port = 993
    security = "tls"
    username = "support@example.test"
    password_env = "MAILESC_TEST_IMAP_PASSWORD"
    folders = ["INBOX", "VIP"]
    sent_folder = "Sent"
    timeout_seconds = 20

    [smtp]
    kind = "smtp"
    host = "smtp.example.test"
    port = 587
    security = "starttls"
    username = "escalations@example.test"
    password_file = "secrets/smtp-password"
    from = "Support Escalations <escalations@example.test>"
    timeout_seconds = 15.5

    [team]
    addresses = ["Support@Example.test", "*@example.test"]

    [store]
    path = "var/state.json"

    [policies]
    path = "rules"

    [templates]
    path = "tpl"

    [daemon]
    poll_seconds = 60
"""


def write(folder: Path, text: str, name: str = "mailesc.toml") -> Path:
    path = folder / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def test_a_full_config_loads_with_paths_relative_to_its_folder(tmp_path, monkeypatch):
    config_dir = tmp_path / "etc" / "mailesc"
    config_dir.mkdir(parents=True)
    write(config_dir, FULL)
    monkeypatch.chdir(tmp_path)  # somewhere else: paths must not depend on the working folder
    config = load_config(Path("etc/mailesc/mailesc.toml"))
    base = config_dir.resolve()

    mailbox, imap = config.mailbox, config.mailbox.server
    assert (mailbox.kind, imap.host, imap.port, imap.security) == ("imap", "imap.example.test", 993, "tls")
    assert imap.username == "support@example.test"
    assert imap.password.env == "MAILESC_TEST_IMAP_PASSWORD" and imap.password.file is None
    assert mailbox.folders == ("INBOX", "VIP")
    assert mailbox.sent_folder == "Sent"
    assert imap.timeout == 20
    assert mailbox.path is None

    smtp, server = config.smtp, config.smtp.server
    assert (smtp.kind, server.host, server.port, server.security) == ("smtp", "smtp.example.test", 587, "starttls")
    assert smtp.from_address == "Support Escalations <escalations@example.test>"
    assert server.password.file == base / "secrets" / "smtp-password" and server.password.env is None
    assert server.timeout == 15.5
    assert smtp.path is None

    assert config.team_addresses == ("support@example.test", "*@example.test")
    assert config.store_path == base / "var" / "state.json"
    assert config.policies_path == base / "rules"
    assert config.templates_path == base / "tpl"
    assert config.poll_seconds == 60
    assert config.replay_store_path == base / "var" / "state-replay.json"


def test_local_folders_resolve_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, """
        [mailbox]
        kind = "maildir"
        path = "mail/support"
        [smtp]
        kind = "outbox"
        path = "/srv/outbox"
    """))
    assert config.mailbox.path == tmp_path.resolve() / "mail" / "support"
    assert config.smtp.path == Path("/srv/outbox")  # an absolute path stays what it is


def test_an_empty_file_gives_the_defaults_next_to_it(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.mailbox.kind == "maildir" and config.smtp.kind == "outbox"
    assert config.store_path == tmp_path.resolve() / "var" / "mailesc.json"
    assert config.poll_seconds == 30


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.53"])
def test_plain_is_allowed_to_a_loopback_host(tmp_path, host):
    config = load_config(write(tmp_path, f"""
        [mailbox]
        kind = "imap"
        host = "{host}"
        security = "plain"
        username = "u"
    """))
    assert config.mailbox.server.security == "plain" and config.mailbox.server.port == 143


def test_plain_to_a_remote_host_is_allowed_only_when_insisted_on(tmp_path):
    config = load_config(write(tmp_path, """
        [smtp]
        kind = "smtp"
        host = "smtp.example.test"
        security = "plain"
        allow_insecure = true
    """))
    assert config.smtp.server.security == "plain"


ERRORS = [
    # (id, config text, key named in the message, words of the explanation)
    ("unknown-section", "[mailbx]\nkind = 'imap'\n", "mailbx", "unknown section (did you mean 'mailbox'?)"),
    ("unknown-key-did-you-mean", "[mailbox]\nhots = 'imap.example.test'\n", "mailbox.hots",
     "unknown key (did you mean 'host'?)"),
    ("unknown-key-in-daemon", "[daemon]\npoll_second = 10\n", "daemon.poll_second", "did you mean 'poll_seconds'?"),
    ("port-as-string", "[mailbox]\nport = '993'\n", "mailbox.port", "must be a number"),
    ("port-as-bool", "[smtp]\nport = true\n", "smtp.port", "must be a number"),
    ("kind-not-a-string", "[mailbox]\nkind = 1\n", "mailbox.kind", "must be a string"),
    ("kind-unknown", "[mailbox]\nkind = 'pop3'\n", "mailbox.kind", "must be one of imap, maildir"),
    ("security-unknown", "[smtp]\nsecurity = 'ssl'\n", "smtp.security", "must be one of tls, starttls, plain"),
    ("folders-not-strings", "[mailbox]\nfolders = [1, 2]\n", "mailbox.folders", "must be a list of strings"),
    ("team-addresses-not-a-list", "[team]\naddresses = 5\n", "team.addresses", "must be a list of strings"),
    ("poll-seconds-zero", "[daemon]\npoll_seconds = 0\n", "daemon.poll_seconds", "at least 1"),
    ("section-not-a-table", "store = 'var/x.json'\n", "store", "must be a table"),
    ("imap-plain-to-remote-host",
     "[mailbox]\nkind = 'imap'\nhost = 'imap.example.test'\nsecurity = 'plain'\nusername = 'u'\n",
     "mailbox.security", "only allowed to a loopback host"),
    ("smtp-plain-to-remote-host", "[smtp]\nkind = 'smtp'\nhost = 'smtp.example.test'\nsecurity = 'plain'\n",
     "smtp.security", "only allowed to a loopback host"),
    ("plain-to-a-name-that-only-starts-like-localhost",
     "[smtp]\nkind = 'smtp'\nhost = 'localhost.example.test'\nsecurity = 'plain'\n", "smtp.security", "loopback"),
    ("password-inline", "[mailbox]\npassword = 'hunter2'\n", "mailbox.password", "use password_env or password_file"),
    ("password-env-and-file", "[smtp]\npassword_env = 'X'\npassword_file = 'y'\n", "smtp.password_env",
     "not both"),
    ("imap-without-username", "[mailbox]\nkind = 'imap'\nhost = 'imap.example.test'\n", "mailbox.username",
     "required"),
    ("classify-unknown-key-did-you-mean", "[classify]\nspam_score_treshold = 5\n", "classify.spam_score_treshold",
     "did you mean 'spam_score_threshold'?"),
    ("spam-threshold-a-string", "[classify]\nspam_score_threshold = '5'\n", "classify.spam_score_threshold",
     "must be a number"),
    ("spam-threshold-a-bool", "[classify]\nspam_score_threshold = true\n", "classify.spam_score_threshold",
     "must be a number"),
    ("spam-headers-a-list", "[classify]\nspam_headers = ['X-Spam']\n", "classify.spam_headers",
     "must be a table of header name = regular expression"),
    ("spam-header-bad-regex", "[classify]\nspam_headers = { X-Junk = '(yes' }\n", "classify.spam_headers.X-Junk",
     "is not a valid regular expression"),
    ("spam-header-not-a-string", "[classify]\nspam_headers = { X-Junk = 1 }\n", "classify.spam_headers.X-Junk",
     "must be a regular expression string"),
    ("spam-header-bad-name", "[classify]\nspam_headers = { 'X Junk' = 'yes' }\n", "classify.spam_headers.X Junk",
     "is not a header name"),
    ("threads-unknown-key", "[threads]\nsubject_windows = '7d'\n", "threads.subject_windows",
     "did you mean 'subject_window'?"),
    ("subject-window-not-a-duration", "[threads]\nsubject_window = 'a month'\n", "threads.subject_window", "a month"),
    ("subject-window-zero", "[threads]\nsubject_window = '0d'\n", "threads.subject_window", "longer than 0"),
    ("classify-section-misspelt", "[clasify]\n", "clasify", "did you mean 'classify'?"),
]


@pytest.mark.parametrize("text, key, words", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}: {key}: " in message
    assert words in message
    assert caught.value.exit_code == 78


def test_an_inline_password_is_never_repeated_in_the_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[smtp]\npassword = 'hunter2-correct-horse'\n"))
    assert "hunter2-correct-horse" not in str(caught.value)


def test_several_problems_are_reported_together(tmp_path):
    path = write(tmp_path, "[mailbox]\nport = 'x'\n[daemon]\npoll_seconds = 0\n[nonsense]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert sorted(key for _, key, _ in caught.value.problems) == ["daemon.poll_seconds", "mailbox.port", "nonsense"]


@pytest.mark.parametrize("content, words", [
    (b"[mailbox\nkind = 'imap'\n", "is not valid TOML"),
    (b"kind = = 'imap'\n", "is not valid TOML"),
    (b"[mailbox]\nhost = '\xff\xfe'\n", "is not UTF-8"),
], ids=["unclosed-table", "double-equals", "not-utf8"])
def test_unreadable_files_name_the_file(tmp_path, content, words):
    path = tmp_path / "mailesc.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ") and words in str(caught.value)


def test_a_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: no such file"


SECRET = "pw-Zq8!never-print-me"


@pytest.mark.parametrize("text", [
    "[mailbox]\nkind = 'imap'\nhost = 'imap.example.test'\nsecurity = 'plain'\nusername = 'u'\n"
    "password_env = 'MAILESC_TEST_SECRET'\n",
    "[mailbox]\npassword_env = 'MAILESC_TEST_SECRET'\npassword_file = 'also'\n",
    "[mailbox]\npassword_env = 'MAILESC_TEST_SECRET'\nport = 'x'\nhots = 1\n[smtp]\npassword_env = 7\n",
], ids=["plain-to-remote", "env-and-file", "several-problems"])
def test_a_config_error_never_contains_the_password_from_the_environment(tmp_path, monkeypatch, text):
    monkeypatch.setenv("MAILESC_TEST_SECRET", SECRET)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert SECRET not in str(caught.value)
    assert all(SECRET not in str(part) for problem in caught.value.problems for part in problem)


def test_the_password_is_read_only_on_request_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILESC_TEST_SECRET", SECRET)
    path = write(tmp_path, "[mailbox]\nkind = 'imap'\nhost = 'imap.example.test'\nusername = 'u'\n"
                           "password_env = 'MAILESC_TEST_SECRET'\n")
    config = load_config(path)
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert config.mailbox.server.password.read() == SECRET
    monkeypatch.delenv("MAILESC_TEST_SECRET")
    with pytest.raises(ConfigError) as caught:
        config.mailbox.server.password.read()
    assert f"{path}: mailbox.password_env: " in str(caught.value) and "MAILESC_TEST_SECRET" in str(caught.value)


def test_a_password_file_is_read_and_stripped(tmp_path):
    (tmp_path / "pw").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "pw").chmod(0o600)
    path = write(tmp_path, "[smtp]\nkind = 'smtp'\nhost = 'smtp.example.test'\npassword_file = 'pw'\n")
    config = load_config(path)
    assert config.smtp.server.password.read() == SECRET
    (tmp_path / "pw").unlink()
    with pytest.raises(ConfigError) as caught:
        config.smtp.server.password.read()
    assert f"{path}: smtp.password_file: cannot read" in str(caught.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=["world-and-group", "group", "world"])
def test_a_password_file_others_can_read_is_refused(tmp_path, mode):
    (tmp_path / "pw").write_text(SECRET, encoding="utf-8")
    (tmp_path / "pw").chmod(mode)
    path = write(tmp_path, "[smtp]\nkind = 'smtp'\nhost = 'smtp.example.test'\npassword_file = 'pw'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path).smtp.server.password.read()
    assert "smtp.password_file" in str(caught.value) and "chmod 600" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_classify_and_threads_settings_load(tmp_path):
    config = load_config(write(tmp_path, """
        [classify]
        spam_score_threshold = 6.5
        spam_headers = { "X-Barracuda-Spam-Status" = "^Yes", "X-Junk" = "(?i)junk" }
        [threads]
        subject_window = "14d"
    """))
    assert config.spam.threshold == 6.5
    assert [(name, rx.pattern) for name, rx in config.spam.headers] == [
        ("X-Barracuda-Spam-Status", "^Yes"), ("X-Junk", "(?i)junk")]
    assert config.subject_window.days == 14


def test_classify_and_threads_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.spam.threshold is None and config.spam.headers == ()  # the filter's own verdict decides
    assert config.subject_window.days == 30
