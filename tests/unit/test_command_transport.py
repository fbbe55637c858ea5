"""The `command` transport: its config keys (read through the transport registry), and sending through a real
program (tests/fake_sendmail.py) that keeps what it reads and exits with the status a test chooses."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from mailesc.config import load_config
from mailesc.errors import ConfigError, PermanentTransportError, TemporaryTransportError
from mailesc.render import OutgoingMail
from mailesc.transports import KINDS, open_transport
from mailesc.transports.command import CommandConfig, CommandTransport, summary
from tests.support import REPO

FAKE = REPO / "tests" / "fake_sendmail.py"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def write(folder: Path, text: str) -> Path:
    path = folder / "mailesc.toml"
    path.write_text(dedent(text), encoding="utf-8")
    return path


def command_section(folder: Path, extra: str = "") -> str:
    command = json.dumps([sys.executable, str(FAKE), str(folder), "-t", "-oi"])
    return f'[smtp]\nkind = "command"\ncommand = {command}\nfrom = "Escalations <esc@example.test>"\n{extra}\n'


@pytest.fixture
def sent(tmp_path) -> Path:
    """The folder the fake sendmail keeps the mails in."""
    folder = tmp_path / "sent"
    folder.mkdir()
    return folder


def transport_for(tmp_path: Path, sent: Path, extra: str = "") -> CommandTransport:
    return open_transport(load_config(write(tmp_path, command_section(sent, extra))).smtp)


def mail(sender="esc@example.test", number=1) -> OutgoingMail:
    data = (f"From: Escalations <esc@example.test>\r\nTo: manager@example.test\r\nSubject: Printer on fire\r\n"
            f"Message-ID: <m{number}@mailesc>\r\nAuto-Submitted: auto-generated\r\n\r\nLevel 1.\r\n").encode()
    return OutgoingMail(message_id=f"<m{number}@mailesc>", sender=sender, recipients=("manager@example.test",),
                        data=data)


def kept(sent: Path) -> list[tuple[list[str], bytes]]:
    return [(json.loads(path.with_suffix(".json").read_text()), path.read_bytes())
            for path in sorted(sent.glob("*.eml"))]


# -- config ----------------------------------------------------------------------------------------------------


def test_a_command_config_reads_its_keys(tmp_path, sent):
    config = load_config(write(tmp_path, command_section(sent, 'timeout_seconds = 5\nenvelope_option = "-r"')))
    assert config.smtp.kind == "command" and config.smtp.server is None and config.smtp.path is None
    assert config.smtp.settings == CommandConfig(argv=(sys.executable, str(FAKE), str(sent), "-t", "-oi"),
                                                 timeout=5.0, envelope_option="-r")


def test_the_defaults_of_a_command(tmp_path):
    config = load_config(write(tmp_path, '[smtp]\nkind = "command"\ncommand = ["sh", "-c", "cat"]\n'))
    assert config.smtp.settings == CommandConfig(argv=("sh", "-c", "cat"), timeout=30.0, envelope_option="-f")


def test_command_is_registered_after_smtp_and_outbox():
    assert KINDS.names() == ("smtp", "outbox", "command")


ERRORS = [
    # (id, [smtp] body, key named, the problem)
    ("missing", 'kind = "command"', "smtp.command",
     'is required with kind = "command": the program and its arguments, like ["/usr/sbin/sendmail", "-t", "-oi"]'),
    ("shell-string", 'kind = "command"\ncommand = "/usr/sbin/sendmail -t -oi"', "smtp.command",
     'must be a list like ["/usr/sbin/sendmail", "-t", "-oi"]: the program and its arguments, never a shell '
     "command line"),
    ("empty-list", 'kind = "command"\ncommand = []', "smtp.command",
     'must be a non-empty list of strings like ["/usr/sbin/sendmail", "-t", "-oi"]'),
    ("number-in-list", 'kind = "command"\ncommand = ["/bin/cat", 1]', "smtp.command",
     'must be a non-empty list of strings like ["/usr/sbin/sendmail", "-t", "-oi"]'),
    ("relative-path", 'kind = "command"\ncommand = ["bin/sendmail"]', "smtp.command",
     "bin/sendmail is not an absolute path (like /usr/sbin/sendmail)"),
    ("no-such-file", 'kind = "command"\ncommand = ["/nonexistent/sendmail", "-t"]', "smtp.command",
     "/nonexistent/sendmail is not an executable file"),
    ("not-executable", 'kind = "command"\ncommand = ["{folder}/plain.txt"]', "smtp.command",
     "{folder}/plain.txt is not an executable file"),
    ("not-on-path", 'kind = "command"\ncommand = ["no-such-sendmail-here"]', "smtp.command",
     "no program 'no-such-sendmail-here' on PATH (give its absolute path)"),
    ("envelope-option", 'kind = "command"\ncommand = ["/bin/cat"]\nenvelope_option = "-f x"',
     "smtp.envelope_option", "must be an option like \"-f\", or \"\" for a program that takes no envelope sender, "
                             "not '-f x'"),
    ("timeout-zero", 'kind = "command"\ncommand = ["/bin/cat"]\ntimeout_seconds = 0', "smtp.timeout_seconds",
     "must be a number of at least 1, not 0"),
    ("misspelt", 'kind = "outbox"\ncomand = ["/bin/cat"]', "smtp.comand", "unknown key (did you mean 'command'?)"),
    ("unknown-kind", 'kind = "sendmail"', "smtp.kind", "unknown kind 'sendmail': must be one of smtp, outbox, command"),
    # a key of the kind not chosen is still read, as the server keys always were: a typo is found before switching
    ("shell-string-for-another-kind", 'kind = "outbox"\ncommand = "/usr/sbin/sendmail -t"', "smtp.command",
     'must be a list like ["/usr/sbin/sendmail", "-t", "-oi"]'),
]


@pytest.mark.parametrize("body, key, text", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_command_problems_name_the_file_and_key(tmp_path, body, key, text):
    (tmp_path / "plain.txt").write_text("not a program")
    body, text = body.replace("{folder}", str(tmp_path)), text.replace("{folder}", str(tmp_path))
    path = write(tmp_path, f"[smtp]\n{body}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [(file, named) for file, named, _ in caught.value.problems] == [(str(path), key)]
    assert caught.value.problems[0][2].startswith(text)
    assert caught.value.exit_code == 78


def test_the_program_of_a_kind_not_chosen_need_not_exist(tmp_path):
    config = load_config(write(tmp_path, '[smtp]\nkind = "outbox"\ncommand = ["/nonexistent/sendmail"]\n'))
    assert config.smtp.kind == "outbox"


def test_a_shared_key_with_a_problem_is_reported_once(tmp_path):
    """timeout_seconds is read by the smtp and the command kinds: one problem, not two."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[smtp]\ntimeout_seconds = "long"\n'))
    assert [key for _, key, _ in caught.value.problems] == ["smtp.timeout_seconds"]


# -- sending ---------------------------------------------------------------------------------------------------


def test_each_mail_goes_to_the_program_with_its_envelope_sender(tmp_path, sent):
    settled = []
    results = transport_for(tmp_path, sent).send([mail(), mail(sender="", number=2)],
                                                 lambda mid, error: settled.append((mid, error)))
    assert results == {"<m1@mailesc>": None, "<m2@mailesc>": None}
    assert settled == [("<m1@mailesc>", None), ("<m2@mailesc>", None)]
    assert kept(sent) == [(["-t", "-oi", "-f", "esc@example.test"], mail().data),
                          (["-t", "-oi", "-f", "<>"], mail(sender="", number=2).data)]  # the null sender


def test_the_program_gets_no_password_from_the_environment(tmp_path, sent, monkeypatch):
    monkeypatch.setenv("MAILESC_SMTP_PASSWORD", "pw-never-passed-on")
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert transport_for(tmp_path, sent).send([mail()]) == {"<m1@mailesc>": None}
    given = json.loads((sent / "001.env.json").read_text())
    assert "MAILESC_SMTP_PASSWORD" not in given and {"PATH", "LC_TIME"} <= set(given)


def test_no_envelope_sender_for_a_program_that_takes_none(tmp_path, sent):
    assert transport_for(tmp_path, sent, 'envelope_option = ""').send([mail()]) == {"<m1@mailesc>": None}
    assert kept(sent) == [(["-t", "-oi"], mail().data)]


@pytest.mark.parametrize("status, stderr, kind, words", [
    ("75", "sendmail: queue file busy\n", TemporaryTransportError,
     "exited 75 (EX_TEMPFAIL): sendmail: queue file busy"),
    ("67", "manager@example.test... User unknown\n", PermanentTransportError, "exited 67 (EX_NOUSER): … User unknown"),
    ("1", "", PermanentTransportError, "exited 1"),
    ("70", "sendmail: fatal: cannot handle 'Printer on fire'\nline two\n", PermanentTransportError,
     "exited 70 (EX_SOFTWARE): sendmail: fatal: cannot handle … (and 1 more line)"),
    ("signal", "", TemporaryTransportError, "was stopped by signal 15"),
], ids=["tempfail", "no-user", "plain-failure", "quoted-subject", "killed"])
def test_the_exit_status_says_whether_to_retry(tmp_path, sent, status, stderr, kind, words):
    (sent / "status").write_text(status)
    if stderr:
        (sent / "stderr").write_text(stderr)
    [error] = transport_for(tmp_path, sent).send([mail()]).values()
    assert type(error) is kind
    assert str(error) == f"the mail command {sys.executable} {words}"
    assert "manager@example.test" not in str(error) and "Printer on fire" not in str(error)


def test_a_program_that_runs_too_long_is_stopped_and_the_mail_waits(tmp_path, sent):
    (sent / "status").write_text("sleep")
    [error] = transport_for(tmp_path, sent, "timeout_seconds = 1").send([mail()]).values()
    assert isinstance(error, TemporaryTransportError)
    assert str(error) == f"the mail command {sys.executable} did not finish within 1s (timeout_seconds) and was stopped"


def test_a_program_gone_since_the_config_was_read_is_a_temporary_failure(tmp_path):
    gone = CommandTransport(type("Config", (), {"settings": CommandConfig(("/nonexistent/sendmail",), 5.0)})())
    [error] = gone.send([mail()]).values()
    assert isinstance(error, TemporaryTransportError)
    assert str(error) == "the mail command /nonexistent/sendmail could not be started: No such file or directory"


def test_check_describes_the_command_without_running_it(tmp_path, sent):
    described = transport_for(tmp_path, sent).check()
    assert described == {"kind": "command",
                         "command": shlex.join([sys.executable, str(FAKE), str(sent), "-t", "-oi"]),
                         "timeout": "30s", "envelope sender": "-f ADDRESS"}
    assert kept(sent) == []  # run, the program would have kept what it read (nothing)


SUMMARIES = [
    (b"", ""),
    (b"\n  \n", ""),
    (b"sendmail: fatal: queue file write error\n", "sendmail: fatal: queue file write error"),
    (b"<pat@customer.example>... User unknown\n", "…... User unknown"),
    (b"Subject \"Invoice 42 for Pat\" too long\n", "Subject … too long"),
    (b"cannot open 'Pat Smith' or `x`\n", "cannot open … or …"),
    (b"bad byte \xff\x00 here\n", "bad byte here"),
    (b"x" * 300, "x" * 159 + "…"),
    (b"first\nsecond\nthird\n", "first (and 2 more lines)"),
]


@pytest.mark.parametrize("stderr, said", SUMMARIES)
def test_the_summary_of_stderr_leaves_out_addresses_and_quoted_text(stderr, said):
    assert summary(stderr) == said
