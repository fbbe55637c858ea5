"""Everything `check --offline` can know is found before the daemon starts, each problem with its file and key,
all at once: passwords and tokens, calendars without open time, templates a rule names, no rules at all."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from mailesc.app import load_setup
from mailesc.config import load_config
from mailesc.errors import ConfigError

SECRET = "pw-Zq8!never-print-me"
RULE = """
[[rule]]
name = "standard"
first_response = "4h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""
OFFICE_RULE = RULE.replace('first_response = "4h"', 'first_response = "4h"\ncalendar = "office"')
IMAP = """[mailbox]
kind = "imap"
host = "127.0.0.1"
security = "plain"
username = "support@example.test"
"""
SMTP = """[smtp]
kind = "smtp"
host = "127.0.0.1"
security = "plain"
username = "escalations@example.test"
"""


def setup_files(folder: Path, config: str, policy: str = RULE, templates: dict | None = None) -> Path:
    (folder / "policies").mkdir()
    (folder / "policies" / "p.toml").write_text(policy)
    (folder / "templates").mkdir()
    for name, text in (templates or {}).items():
        (folder / "templates" / name).write_text(text)
    (folder / "secret").write_text(SECRET)
    (folder / "secret").chmod(0o600)
    path = folder / "mailesc.toml"
    path.write_text(config + '\n[policies]\npath = "policies"\n[templates]\npath = "templates"\n')
    return path


def failing_command() -> str:
    return shlex.quote(sys.executable) + " -c 'import sys; sys.exit(3)'"


# (id, config, policy, templates, environment, [(where the problem is, key, words in the problem)])
PROBLEMS = [
    ("password-variable-not-set", IMAP + 'password_env = "MAILESC_TEST_UNSET"\n', RULE, {}, {},
     [("mailesc.toml", "mailbox.password_env", "MAILESC_TEST_UNSET is not set")]),
    ("password-variable-empty", IMAP + 'password_env = "MAILESC_TEST_EMPTY"\n', RULE, {}, {"MAILESC_TEST_EMPTY": ""},
     [("mailesc.toml", "mailbox.password_env", "is empty")]),
    ("password-file-missing", SMTP + 'password_file = "nope"\n', RULE, {}, {},
     [("mailesc.toml", "smtp.password_file", "cannot read")]),
    ("password-file-too-open", SMTP + 'password_file = "secret"\nMODE = 0o644\n', RULE, {}, {},
     [("mailesc.toml", "smtp.password_file", "chmod 600")]),
    ("password-file-unreadable", SMTP + 'password_file = "."\n', RULE, {}, {},
     [("mailesc.toml", "smtp.password_file", "cannot read")]),
    ("no-password-for-imap", IMAP, RULE, {}, {},
     [("mailesc.toml", "mailbox.password_env", "needs a password")]),
    ("no-password-for-smtp-login", SMTP, RULE, {}, {},
     [("mailesc.toml", "smtp.password_env", "needs a password")]),
    ("token-file-too-open", SMTP + 'auth = "xoauth2"\ntoken_file = "secret"\nMODE = 0o640\n', RULE, {}, {},
     [("mailesc.toml", "smtp.token_file", "chmod 600")]),
    ("token-command-fails", IMAP + f'auth = "xoauth2"\ntoken_command = "{failing_command()}"\n', RULE, {}, {},
     [("mailesc.toml", "mailbox.token_command", "exited 3")]),
    ("calendar-never-open", "", '[calendars.office]\nhours = {}\n' + OFFICE_RULE, {}, {},
     [("p.toml", "calendars.office.hours", "opens on no day")]),
    ("calendar-with-empty-days", "", '[calendars.office]\nhours = { mon = "", sat = "" }\n' + RULE, {}, {},
     [("p.toml", "calendars.office.hours", "opens on no day")]),
    ("escalation-template-missing", "", RULE + 'template = "escalaton"\n', {}, {},
     [("p.toml rule 1", "escalate[1].template", "no template 'escalaton'"),
      ("p.toml rule 1", "escalate[1].template", "did you mean 'escalation'")]),
    ("warning-template-missing", "", RULE.replace('first_response = "4h"', 'first_response = "4h"\n'
                                                  'warn_before = "1h"\nnotify = ["lead@example.test"]\n'
                                                  'warn_template = "heads-up"'), {}, {},
     [("p.toml rule 1", "warn_template", "no template 'heads-up'")]),
    ("acknowledgement-template-missing", "", RULE.replace('first_response = "4h"',
                                                          'first_response = "4h"\nacknowledge = "thanks"'), {}, {},
     [("p.toml rule 1", "acknowledge", "no template 'thanks'")]),
    ("daily-digest-template-missing", '[daily_digest]\ndaily_at = "08:00"\nto = ["boss@example.test"]\n'
                                      'template = "morning"\n', RULE, {}, {},
     [("mailesc.toml", "digest.template", "no template 'morning'")]),
    ("broken-custom-template", "", RULE, {"escalation.txt.j2": "{% if %}"}, {},
     [("escalation.txt.j2", "line 1", "")]),
    ("no-rules-at-all", "", "# nothing here yet\n", {}, {},
     [("policies", "", "no [[rule]] in any policy file")]),
]


@pytest.mark.parametrize("config, policy, templates, environment, expected",
                         [case[1:] for case in PROBLEMS], ids=[case[0] for case in PROBLEMS])
def test_each_startup_problem_names_its_file_and_key(tmp_path, monkeypatch, config, policy, templates,
                                                     environment, expected):
    monkeypatch.delenv("MAILESC_TEST_UNSET", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    mode = None
    if "MODE = " in config:
        config, _, mode = config.partition("MODE = ")
    path = setup_files(tmp_path, config, policy, templates)
    if mode:
        (tmp_path / "secret").chmod(int(mode.strip(), 8))
    with pytest.raises(ConfigError) as raised:
        load_setup(load_config(path), starting=True)
    problems = raised.value.problems
    for where, key, words in expected:
        assert any(file.endswith(where) and p_key == key and words in text for file, p_key, text in problems), problems
    assert len(problems) == 1, problems  # one line per problem, no follow-ups
    assert SECRET not in str(raised.value)


def test_every_problem_is_reported_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILESC_TEST_UNSET", raising=False)
    calendar = ('[calendars.office]\ntimezone = "Europe/Atlantis"\n'
                'hours = { mon = "18:00-08:00", funday = "09:00-10:00" }\n'
                'holidays = ["24.12."]\nholidays_country = "XX"\n')
    policy = calendar + OFFICE_RULE + RULE.replace('"standard"', '"other"') + 'template = "escalaton"\n'
    path = setup_files(tmp_path, IMAP + 'password_env = "MAILESC_TEST_UNSET"\n' + SMTP + 'password_file = "secret"\n',
                       policy)
    (tmp_path / "secret").chmod(0o644)
    with pytest.raises(ConfigError) as raised:
        load_setup(load_config(path), starting=True)
    keys = [key for _, key, _ in raised.value.problems]
    assert sorted(keys) == sorted([
        "calendars.office.timezone", "calendars.office.hours.mon", "calendars.office.hours.funday",
        "calendars.office.holidays", "calendars.office.holidays_country", "escalate[1].template",
        "mailbox.password_env", "smtp.password_file"]), raised.value.problems
    assert "unknown calendar" not in str(raised.value)  # the rule names a calendar already reported as broken
    assert len(str(raised.value).splitlines()) == len(keys)


def test_commands_that_need_no_server_do_not_ask_for_passwords(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILESC_TEST_UNSET", raising=False)
    path = setup_files(tmp_path, IMAP + 'password_env = "MAILESC_TEST_UNSET"\n')
    setup = load_setup(load_config(path))  # breaches, report, replay, status: no password needed
    assert [rule.name for rule in setup.policies.rules] == ["standard"]
    with pytest.raises(ConfigError, match="MAILESC_TEST_UNSET is not set"):
        load_setup(load_config(path), starting=True)


def test_a_good_setup_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILESC_TEST_SET", SECRET)
    path = setup_files(tmp_path, IMAP + 'password_env = "MAILESC_TEST_SET"\n' + SMTP + 'password_file = "secret"\n')
    setup = load_setup(load_config(path), starting=True)
    assert setup.config.smtp.server.password.read() == SECRET
