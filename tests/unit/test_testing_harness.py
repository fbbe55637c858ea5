"""The shipped test harness (mailesc.testing) where it has logic of its own: ports, waiting, the XOAUTH2 blob,
the configs and stores it writes for a test, and that it imports without pytest or aiosmtpd."""

from __future__ import annotations

import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from mailesc.config import load_config
from mailesc.testing import LOCALHOST, free_port, parse_xoauth2, port_accepts, wait_until
from mailesc.testing.backend import Backend
from mailesc.testing.configs import MAILDIR, ONE_HOUR_RULE, OUTBOX, imap_section, smtp_section, write_config
from mailesc.testing.mail import make_mail


# -- free_port ----------------------------------------------------------------------------------------------------

def test_free_port_gives_a_port_a_server_can_bind_at_once():
    port = free_port()
    assert 1 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((LOCALHOST, port))  # raises OSError if it were taken
        server.listen()
        assert server.getsockname() == (LOCALHOST, port)


def test_port_accepts_while_a_server_listens_and_not_after():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((LOCALHOST, 0))
        port = server.getsockname()[1]
        assert not port_accepts(LOCALHOST, port)  # bound, not listening yet
        server.listen()
        assert port_accepts(LOCALHOST, port)
    assert not port_accepts(LOCALHOST, port)


# -- wait_until ---------------------------------------------------------------------------------------------------

def test_wait_until_returns_the_first_truthy_value_of_the_predicate():
    answers = iter([None, 0, "", [], {"ready": True}, "never asked"])
    assert wait_until(lambda: next(answers), timeout=60, interval=0) == {"ready": True}
    assert next(answers) == "never asked"  # it stopped asking at the first truthy answer


def test_wait_until_asks_once_more_at_the_deadline_then_fails_with_the_message():
    calls = []
    with pytest.raises(AssertionError, match=r"wait_until timed out after \d+\.\d\ds: the mail never came"):
        wait_until(lambda: calls.append(1), timeout=0, message="the mail never came")
    assert calls == [1]  # a zero timeout still asks once: a condition already true never fails


def test_wait_until_lets_the_predicates_own_error_through():
    def broken():
        raise KeyError("no such mailbox")

    with pytest.raises(KeyError, match="no such mailbox"):
        wait_until(broken, timeout=60)


# -- the XOAUTH2 initial response (RFC-less, Google's format: user=U^Aauth=Bearer T^A^A) -------------------------

@pytest.mark.parametrize("blob, expected", [
    (b"user=boss@example.test\x01auth=Bearer ya29.token\x01\x01", ("boss@example.test", "ya29.token")),
    (b"user=u@example.test\x01auth=bearer lower\x01\x01", ("u@example.test", "lower")),  # scheme is case-blind
    (b"auth=Bearer first\x01user=u@example.test\x01\x01", ("u@example.test", "first")),  # any order
    (b"user=u@example.test\x01host=smtp.example\x01port=587\x01auth=Bearer t\x01\x01", ("u@example.test", "t")),
    (b"user=u@example.test\x01auth=Bearer a=b==\x01\x01", ("u@example.test", "a=b==")),  # '=' inside the token
    ("user=jürgen@example.test\x01auth=Bearer t\x01\x01".encode(), ("jürgen@example.test", "t")),
    (b"user=u@example.test\x01auth=Bearer t\x01", None),  # one closing ^A only
    (b"user=u@example.test\x01auth=Bearer t", None),  # not closed at all
    (b"auth=Bearer t\x01\x01", None),  # no user
    (b"user=u@example.test\x01\x01", None),  # no auth
    (b"user=u@example.test\x01auth=Basic dTpw\x01\x01", None),  # not a bearer token
    (b"user=u@example.test\x01auth=Bearer t\xff\x01\x01", None),  # not UTF-8
    (b"", None),
])
def test_parse_xoauth2(blob, expected):
    assert parse_xoauth2(blob) == expected


# -- configs, stores and mail for a test ------------------------------------------------------------------------

def test_write_config_writes_a_config_mailesc_loads_with_the_shipped_templates(tmp_path):
    box = SimpleNamespace(host=LOCALHOST, port=10143, username="support-1@example.test")
    sink = SimpleNamespace(host=LOCALHOST, port=10025)
    path = write_config(tmp_path, mailbox=imap_section(box), smtp=smtp_section(sink), rules=ONE_HOUR_RULE,
                        team=("alex@example.test",))
    config = load_config(path)
    assert (config.mailboxes[0].server.host, config.mailboxes[0].server.port) == (LOCALHOST, 10143)
    assert (config.smtp.server.host, config.smtp.server.port) == (LOCALHOST, 10025)
    assert (config.templates_path / "escalation.txt.j2").is_file()
    assert (tmp_path / "policies" / "rules.toml").read_text() == ONE_HOUR_RULE


def test_write_config_takes_the_no_server_sections_and_a_templates_folder_of_ones_own(tmp_path):
    (tmp_path / "mine").mkdir()
    config = load_config(write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE,
                                      templates=tmp_path / "mine"))
    assert config.mailboxes[0].kind == "maildir" and config.smtp.kind == "outbox"
    assert config.templates_path == tmp_path / "mine"


@pytest.mark.parametrize("backend, section", [
    (Backend("file"), 'path = "var/mailesc.json"'),
    (Backend("postgresql", SimpleNamespace(url="postgresql://mailesc@127.0.0.1:5999/t1", password="s3cret")),
     'url = "postgresql://mailesc@127.0.0.1:5999/t1"\npassword_env = "MAILESC_DB_PASSWORD"\nsecurity = "plain"\n'
     'path = "var/mailesc.json"'),
])
def test_a_backend_names_its_store_without_its_password(backend, section):
    assert backend.store_section == section
    assert "s3cret" not in backend.store_section


def test_make_mail_threads_a_reply_under_its_parent():
    raw, parent = make_mail(sender="Pat <pat@customer.example>", subject="Invoice")
    reply, reply_id = make_mail(sender="alex@example.test", subject="Re: Invoice", in_reply_to=parent,
                                references=[parent], headers={"Auto-Submitted": "no"})
    assert parent.startswith("<") and parent.endswith("@customer.example>") and reply_id != parent
    assert f"In-Reply-To: {parent}".encode() in reply and f"References: {parent}".encode() in reply
    assert b"Auto-Submitted: no" in reply and b"Subject: Invoice" in raw


# -- what importing the harness costs ----------------------------------------------------------------------------

def test_the_harness_imports_without_pytest_aiosmtpd_or_psycopg():
    """Users may run another test runner, and a machine without the test extra can still start a Dovecot."""
    modules = ["mailesc.testing", "mailesc.testing.soak", "mailesc.testing.workers_soak", "mailesc.testing.backend",
               "mailesc.testing.configs", "mailesc.testing.mail"]
    code = (f"import sys\nfor name in {modules!r}:\n    __import__(name)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pytest', '_pytest', 'aiosmtpd', 'psycopg'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
