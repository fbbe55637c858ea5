"""What a user sees when something is wrong: one clear line, the right exit status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ONE_HOUR_RULE, REPO, write_config
from mailesc.testing import free_port


def mailesc(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailesc", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd or REPO)


def assert_clean_failure(result, status: int, *phrases: str) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


@pytest.mark.parametrize("text, key, problem", [
    ("[mailbox]\nkind = 'pop3'\n", "mailbox.kind", "must be one of imap, maildir"),
    ("[mailbox]\nfoldrs = ['INBOX']\n", "mailbox.foldrs", "did you mean 'folders'"),
    ("[daemon]\npoll_seconds = 'often'\n", "daemon.poll_seconds", "must be a number"),
    ("[smtp]\nkind = 'smtp'\nhost = 'mail.example.com'\nsecurity = 'plain'\n", "smtp.security", "loopback"),
    ("[mailbox]\npassword = 'hunter2'\n", "mailbox.password", "password_env or password_file"),
    ("[team\naddresses = 1\n", "", "is not valid TOML"),
    ("[colours]\nred = 1\n", "colours", "unknown section"),
], ids=["bad-choice", "typo", "wrong-type", "plain-to-remote", "inline-password", "broken-toml", "unknown-section"])
def test_a_bad_config_names_file_key_and_problem_and_exits_78(tmp_path, text, key, problem):
    config = tmp_path / "mailesc.toml"
    config.write_text(text)
    result = mailesc("-c", str(config), "check", "--offline")
    assert_clean_failure(result, 78, str(config), key, problem)
    assert "hunter2" not in result.stderr


def test_a_missing_config_file_exits_78(tmp_path):
    assert_clean_failure(mailesc("-c", str(tmp_path / "nope.toml"), "once"), 78, "nope.toml", "no such file")


def test_a_bad_policy_names_the_rule_and_key(tmp_path):
    config = write_config(tmp_path, mailbox="", smtp="", rules=ONE_HOUR_RULE.replace('"1h"', '"soon"'))
    assert_clean_failure(mailesc("-c", str(config), "check", "--offline"), 78, "rules.toml rule 1",
                         "first_response", "'soon' is not a duration")


def test_a_missing_password_variable_is_a_config_error(tmp_path):
    config = write_config(tmp_path, smtp="", rules=ONE_HOUR_RULE, mailbox=f"""[mailbox]
kind = "imap"
host = "127.0.0.1"
port = {free_port()}
security = "plain"
username = "support@example.test"
password_env = "MAILESC_TEST_UNSET_PASSWORD"
""")
    env = {k: v for k, v in os.environ.items() if k != "MAILESC_TEST_UNSET_PASSWORD"}
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "once"], capture_output=True,
                            text=True, timeout=60, env=env)
    assert_clean_failure(result, 78, "MAILESC_TEST_UNSET_PASSWORD", "is not set")


def test_an_unreachable_imap_server_is_reported_clearly(tmp_path):
    port = free_port()  # nothing listens there
    config = write_config(tmp_path, smtp="", rules=ONE_HOUR_RULE, mailbox=f"""[mailbox]
kind = "imap"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "support@example.test"
password_env = "MAILESC_IMAP_PASSWORD"
timeout_seconds = 3
""")
    result = mailesc("-c", str(config), "once", env={"MAILESC_IMAP_PASSWORD": "s3cret-value"})
    assert_clean_failure(result, 69, f"cannot reach the IMAP server 127.0.0.1:{port}")
    assert "s3cret-value" not in result.stderr + result.stdout
    checked = mailesc("-c", str(config), "check", env={"MAILESC_IMAP_PASSWORD": "s3cret-value"})
    assert_clean_failure(checked, 69, f"cannot reach the IMAP server 127.0.0.1:{port}")


def test_an_unknown_breach_id_and_a_bad_time_are_usage_errors(tmp_path):
    config = write_config(tmp_path, mailbox="", smtp="", rules=ONE_HOUR_RULE)
    assert_clean_failure(mailesc("-c", str(config), "breaches", "show", "42"), 1, "no breach with id 42")
    assert_clean_failure(mailesc("-c", str(config), "once", "--now", "yesterday"), 64, "--now", "ISO 8601")


def test_a_damaged_store_is_reported_and_left_untouched(tmp_path):
    config = write_config(tmp_path, mailbox="", smtp="", rules=ONE_HOUR_RULE)
    store = tmp_path / "var" / "mailesc.json"
    store.parent.mkdir()
    store.write_text('{"threads": {"1": {"id": ')
    result = mailesc("-c", str(config), "breaches", "list")
    assert_clean_failure(result, 65, str(store), "damaged")
    assert store.read_text() == '{"threads": {"1": {"id": '


def test_a_second_mailesc_on_the_same_store_is_refused(tmp_path):
    from mailesc.store import Store

    config = write_config(tmp_path, mailbox="", smtp="", rules=ONE_HOUR_RULE)
    with Store(tmp_path / "var" / "mailesc.json"):  # a daemon holds the store
        result = mailesc("-c", str(config), "once")
        assert_clean_failure(result, 75, "another mailesc process is using", "mailesc.json")  # EX_TEMPFAIL
        listed = mailesc("-c", str(config), "breaches", "list")  # reading needs no lock
        assert listed.returncode == 0 and "No breaches recorded." in listed.stdout
