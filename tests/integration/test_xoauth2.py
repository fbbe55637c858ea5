"""XOAUTH2 against real servers: an aiosmtpd sink that accepts one bearer token, and a Dovecot
whose oauth2 passdb asks a local token introspection endpoint (RFC 7662)."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc.cli import main
from mailesc.testing import XOAuth2Attempt
from tests.support import ONE_HOUR_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

CUSTOMER = "Pat Customer <pat@customer.example>"
SMTP_USER = "escalations@example.test"


def token_command(token: str) -> str:
    """A token_command (split with shlex) printing `token`, as a TOML basic string's content."""
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(f'print({token!r})')}"
    return command.replace("\\", "\\\\").replace('"', '\\"')


def token_file(folder: Path, token: str, mode: int) -> Path:
    path = folder / "access-token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def smtp_xoauth2_section(sink, *, command: str | None = None, file: Path | None = None) -> str:
    source = f'token_command = "{command}"' if command is not None else f'token_file = "{file}"'
    return f'{smtp_section(sink)}\nusername = "{SMTP_USER}"\nauth = "xoauth2"\n{source}'


def imap_xoauth2_section(mailbox, *, command: str | None = None, file: Path | None = None) -> str:
    source = f'token_command = "{command}"' if command is not None else f'token_file = "{file}"'
    return f"""[mailbox]
kind = "imap"
host = "{mailbox.host}"
port = {mailbox.port}
security = "plain"
username = "{mailbox.username}"
auth = "xoauth2"
{source}
folders = ["INBOX"]
sent_folder = "auto"
timeout_seconds = 10"""


def customer_writes(mailbox, hours_ago: float = 1.5, subject: str = "Cannot log in") -> str:
    """Append a customer's message to INBOX (the helper logs in with its PLAIN password)."""
    when = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    raw, message_id = make_mail(sender=CUSTOMER, subject=subject, date=when)
    mailbox.append("INBOX", raw, when)
    return message_id


def breaches(config: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def once(config: Path, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-c", str(config), "once"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_error(err: str, *secrets: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    for secret in secrets:
        assert secret not in err, f"a token was printed: {err!r}"


# --------------------------------------------------------------------------- SMTP


@pytest.fixture
def smtp_setup(tmp_path, mailbox, smtp_sink_xoauth2, monkeypatch):
    """A customer's 1.5-hour-old message in an ordinary (password) IMAP mailbox; returns a config writer."""
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    first = customer_writes(mailbox)

    def configure(**token_source) -> Path:
        return write_config(tmp_path, mailbox=imap_section(mailbox),
                            smtp=smtp_xoauth2_section(smtp_sink_xoauth2, **token_source), rules=ONE_HOUR_RULE)

    configure.first = first
    return configure


def test_smtp_xoauth2_with_a_token_command_sends_the_escalation(smtp_setup, smtp_sink_xoauth2, capsys):
    config = smtp_setup(command=token_command(smtp_sink_xoauth2.valid_token))

    code, out, err = once(config, capsys)

    assert code == 0, err
    assert "1 mail(s) sent" in out
    [mail] = smtp_sink_xoauth2.wait_for(1)
    assert mail.rcpt_tos == ["manager@example.test"]
    assert (mail.auth_mechanism, mail.auth_login) == ("XOAUTH2", SMTP_USER)
    assert smtp_sink_xoauth2.xoauth2_attempts == [XOAuth2Attempt(SMTP_USER, smtp_sink_xoauth2.valid_token, True)]
    [breach] = breaches(config, capsys)
    assert breach["thread"] == smtp_setup.first
    assert [(e["delivery"], e["message_id"]) for e in breach["escalations"]] == [("sent", mail.message["Message-ID"])]


def _refused_smtp_token(smtp_setup, sink, capsys) -> tuple[Path, dict]:
    wrong = "wrong-token-" + sink.valid_token[::-1]
    config = smtp_setup(command=token_command(wrong))

    code, out, err = once(config, capsys)

    assert code == 69, (out, err)
    assert "1 new breach(es)" in out and "0 mail(s) sent" in out
    assert_clean_error(err, wrong, sink.valid_token)
    assert sink.xoauth2_attempts == [XOAuth2Attempt(SMTP_USER, wrong, False)]
    assert sink.messages == []
    [breach] = breaches(config, capsys)
    [escalation] = breach["escalations"]
    assert "SMTP login refused" in escalation["error"] and SMTP_USER in escalation["error"], escalation
    assert wrong not in escalation["error"] and sink.valid_token not in escalation["error"]
    return config, escalation


def test_smtp_xoauth2_with_a_refused_token_exits_69_without_sending(smtp_setup, smtp_sink_xoauth2, capsys):
    _refused_smtp_token(smtp_setup, smtp_sink_xoauth2, capsys)


def test_smtp_xoauth2_with_a_refused_token_keeps_the_escalation_pending(smtp_setup, smtp_sink_xoauth2, capsys):
    config, escalation = _refused_smtp_token(smtp_setup, smtp_sink_xoauth2, capsys)
    assert escalation["delivery"] == "pending", escalation  # an operator fixes the token; the mail must not be lost


def test_smtp_xoauth2_with_a_token_file_of_mode_600(smtp_setup, smtp_sink_xoauth2, tmp_path, capsys):
    path = token_file(tmp_path, smtp_sink_xoauth2.valid_token, 0o600)
    config = smtp_setup(file=path)

    code, out, err = once(config, capsys)

    assert code == 0, err
    [mail] = smtp_sink_xoauth2.wait_for(1)
    assert (mail.auth_mechanism, mail.auth_login) == ("XOAUTH2", SMTP_USER)
    assert smtp_sink_xoauth2.xoauth2_attempts == [XOAuth2Attempt(SMTP_USER, smtp_sink_xoauth2.valid_token, True)]


def test_smtp_xoauth2_refuses_a_token_file_others_can_read(smtp_setup, smtp_sink_xoauth2, tmp_path, capsys):
    path = token_file(tmp_path, smtp_sink_xoauth2.valid_token, 0o644)
    config = smtp_setup(file=path)

    code, out, err = once(config, capsys)

    assert code == 78, (out, err)
    assert_clean_error(err, smtp_sink_xoauth2.valid_token)
    assert str(path) in err and "chmod 600" in err, err
    assert smtp_sink_xoauth2.xoauth2_attempts == [] and smtp_sink_xoauth2.messages == []
    assert breaches(config, capsys) == []  # refused at start (exit 78): nothing read, nothing recorded

    path.chmod(0o600)  # the operator fixes it: the escalation goes out
    code, out, err = once(config, capsys)
    assert code == 0, err
    [mail] = smtp_sink_xoauth2.wait_for(1)
    [breach] = breaches(config, capsys)
    assert mail.message["Message-ID"] == breach["escalations"][0]["message_id"]
    assert breach["escalations"][0]["delivery"] == "sent"


def test_smtp_xoauth2_with_a_failing_token_command(smtp_setup, smtp_sink_xoauth2, capsys):
    command = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(3)'"
    config = smtp_setup(command=command.replace('"', '\\"'))

    code, out, err = once(config, capsys)

    assert code == 78, (out, err)
    assert_clean_error(err)
    assert "smtp.token_command" in err and "exited 3" in err, err
    assert smtp_sink_xoauth2.xoauth2_attempts == [] and smtp_sink_xoauth2.messages == []


# --------------------------------------------------------------------------- IMAP


def test_imap_xoauth2_with_a_token_command_reads_the_mailbox(tmp_path, mailbox_oauth, dovecot_oauth,
                                                              oauth_introspection, smtp_sink, capsys):
    first = customer_writes(mailbox_oauth)
    config = write_config(tmp_path, mailbox=imap_xoauth2_section(mailbox_oauth,
                                                                 command=token_command(mailbox_oauth.access_token)),
                          smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)

    code, out, err = once(config, capsys)

    assert code == 0, err
    assert "1 new message(s)" in out and "1 new breach(es)" in out
    [mail] = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == ["manager@example.test"]
    assert [m["Message-ID"] for m in (p.get_content() for p in mail.message.iter_attachments())] == [first]
    [breach] = breaches(config, capsys)
    assert breach["thread"] == first and breach["escalations"][0]["delivery"] == "sent"
    methods = [line for line in dovecot_oauth.logins(mailbox_oauth.username) if "method=XOAUTH2" in line]
    assert methods, dovecot_oauth.log_tail()  # mailesc logged in with XOAUTH2, not a password
    assert mailbox_oauth.access_token in oauth_introspection.requests


def test_imap_xoauth2_with_a_token_file_of_mode_600(tmp_path, mailbox_oauth, dovecot_oauth, smtp_sink, capsys):
    customer_writes(mailbox_oauth)
    path = token_file(tmp_path, mailbox_oauth.access_token, 0o600)
    config = write_config(tmp_path, mailbox=imap_xoauth2_section(mailbox_oauth, file=path),
                          smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)

    code, out, err = once(config, capsys)

    assert code == 0, err
    smtp_sink.wait_for(1)
    assert any("method=XOAUTH2" in line for line in dovecot_oauth.logins(mailbox_oauth.username))


def test_imap_xoauth2_refuses_a_token_file_others_can_read(tmp_path, mailbox_oauth, smtp_sink, capsys):
    customer_writes(mailbox_oauth)
    path = token_file(tmp_path, mailbox_oauth.access_token, 0o644)
    config = write_config(tmp_path, mailbox=imap_xoauth2_section(mailbox_oauth, file=path),
                          smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)

    code, out, err = once(config, capsys)

    assert code == 78, (out, err)
    assert_clean_error(err, mailbox_oauth.access_token)
    assert str(path) in err and "chmod 600" in err, err
    assert smtp_sink.messages == []


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_a_token_file_others_can_read_is_named_as_token_file(section, tmp_path, mailbox, smtp_sink, monkeypatch,
                                                            capsys):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    customer_writes(mailbox)
    path = token_file(tmp_path, "some-token", 0o644)
    if section == "mailbox":
        mailbox_section, smtp = imap_xoauth2_section(mailbox, file=path), smtp_section(smtp_sink)
    else:
        mailbox_section, smtp = imap_section(mailbox), smtp_xoauth2_section(smtp_sink, file=path)
    config = write_config(tmp_path, mailbox=mailbox_section, smtp=smtp, rules=ONE_HOUR_RULE)

    code, out, err = once(config, capsys)

    assert code == 78, (out, err)
    assert f"{section}.token_file: {path} can be read by other users" in err, err


@pytest.mark.parametrize("whose", ["unknown", "another user's"])
def test_imap_xoauth2_with_a_refused_token(whose, tmp_path, mailbox_oauth, dovecot_oauth, oauth_introspection,
                                           smtp_sink, capsys):
    customer_writes(mailbox_oauth)
    if whose == "unknown":
        wrong = "at-wrong-" + mailbox_oauth.access_token[::-1]
    else:  # active, but introspects as someone else: Dovecot's username_attribute check refuses it
        wrong = oauth_introspection.issue(dovecot_oauth.new_mailbox("other").username)
    config = write_config(tmp_path, mailbox=imap_xoauth2_section(mailbox_oauth, command=token_command(wrong)),
                          smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)

    code, out, err = once(config, capsys)

    assert code == 69, (out, err)
    assert_clean_error(err, wrong, mailbox_oauth.access_token, mailbox_oauth.password)
    assert "IMAP login refused" in err and mailbox_oauth.username in err and "access token" in err, err
    assert wrong in oauth_introspection.requests  # Dovecot really asked, and was told no
    assert not any("method=XOAUTH2" in line for line in dovecot_oauth.logins(mailbox_oauth.username))
    assert smtp_sink.messages == []
    assert breaches(config, capsys) == []


def test_an_smtp_token_command_that_starts_failing_after_start_keeps_the_escalation_waiting(
        smtp_setup, smtp_sink_xoauth2, tmp_path, capsys):
    """The start check runs the command once (fine); at the login it fails: the mail waits with backoff and
    `status` says why, instead of the cycle failing as a whole."""
    runs = tmp_path / "token-runs"
    script = (f"import pathlib, sys; p = pathlib.Path({str(runs)!r}); n = int(p.read_text() or 0) if p.exists() "
              f"else 0; p.write_text(str(n + 1)); sys.exit(2) if n else print({smtp_sink_xoauth2.valid_token!r})")
    config = smtp_setup(command=f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}".replace('"', '\\"'))

    code, out, err = once(config, capsys)

    assert code == 69, (out, err)  # a waiting escalation, not a config error at start
    assert "1 new breach(es)" in out and "0 mail(s) sent" in out
    assert_clean_error(err, smtp_sink_xoauth2.valid_token)
    assert smtp_sink_xoauth2.messages == [] and runs.read_text() == "2"
    [breach] = breaches(config, capsys)
    [escalation] = breach["escalations"]
    assert escalation["delivery"] == "pending" and escalation["retry_at"], escalation
    assert "smtp.token_command" in escalation["error"] and "exited 2" in escalation["error"], escalation
    assert main(["-c", str(config), "status", "--json"]) == 1
    health = json.loads(capsys.readouterr().out)
    assert "smtp.token_command" in health["last_pending_error"] and health["healthy"] is False
