"""mailesc's TLS paths against real servers: IMAPS, IMAP STARTTLS, SMTPS, SMTP STARTTLS.

The servers present a certificate from a throwaway CA (``tls_ca``). With ``ca_file``
pointing at that CA mailesc must work and really use TLS; without it (system CAs) the
certificate cannot be verified, so mailesc must refuse to talk -- no login, no mail --
and say why, naming the server. A server that does not offer STARTTLS must never get
the mail in clear text.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from mailesc.testing import SmtpSink, wait_until
from tests.support import ONE_HOUR_RULE, imap_section, make_mail, write_config

pytestmark = pytest.mark.integration

CUSTOMER = "Pat Customer <pat@customer.example>"
EX_UNAVAILABLE = 69
CERT_UNVERIFIED = re.compile(r"certificate verify failed|certificate.{0,40}(could not|cannot|not) (be )?verif",
                             re.IGNORECASE)
HOSTS = pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])


def imap_tls_section(mailbox, *, security: str, host: str = "localhost", ca_file=None) -> str:
    port = mailbox.imaps_port if security == "tls" else mailbox.port
    ca = f'\nca_file = "{ca_file}"' if ca_file else ""
    return f"""[mailbox]
kind = "imap"
host = "{host}"
port = {port}
security = "{security}"
username = "{mailbox.username}"
password_env = "MAILESC_IMAP_PASSWORD"
folders = ["INBOX"]
sent_folder = "auto"
timeout_seconds = 10{ca}"""


def smtp_tls_section(sink, *, security: str, host: str = "localhost", ca_file=None) -> str:
    ca = f'\nca_file = "{ca_file}"' if ca_file else ""
    return f"""[smtp]
kind = "smtp"
host = "{host}"
port = {sink.port}
security = "{security}"
from = "Support Escalations <escalations@example.test>"
timeout_seconds = 10{ca}"""


class Run:
    """One mailesc config in tmp_path and the commands a test runs on it."""

    def __init__(self, tmp_path, capsys, monkeypatch, mailbox, *, mailbox_section: str, smtp_section: str):
        monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
        self.tmp_path, self.capsys, self.mailbox = tmp_path, capsys, mailbox
        self.config = write_config(tmp_path, mailbox=mailbox_section, smtp=smtp_section, rules=ONE_HOUR_RULE)

    def rewrite(self, *, mailbox_section: str, smtp_section: str) -> None:
        self.config = write_config(self.tmp_path, mailbox=mailbox_section, smtp=smtp_section, rules=ONE_HOUR_RULE)

    def main(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["-c", str(self.config), *args])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def breaches(self) -> list[dict]:
        code, out, err = self.main("breaches", "list", "--json")
        assert code == 0, err
        return json.loads(out)

    def customer_writes(self, hours_ago: float = 2, subject: str = "Cannot log in") -> str:
        when = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
        raw, message_id = make_mail(sender=CUSTOMER, subject=subject, date=when)
        self.mailbox.append("INBOX", raw, when)
        return message_id


def new_logins(server, username: str, before: int) -> list[str]:
    """Dovecot login lines for `username` written after the first `before` ones."""
    return server.logins(username)[before:]


def assert_logged_in_over_tls(server, username: str, before: int) -> None:
    lines = wait_until(lambda: new_logins(server, username, before), timeout=5,
                       message=f"no new Dovecot login for {username}:\n{server.log_tail()}")
    assert all(", TLS, " in line for line in lines), lines  # "secured" would mean clear text on loopback


def assert_clean_failure(err: str, where: str) -> None:
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert where in err, f"stderr does not name {where}: {err!r}"
    assert CERT_UNVERIFIED.search(err), f"stderr does not say the certificate could not be verified: {err!r}"


# ----------------------------------------------------------------------------- working TLS with ca_file


@HOSTS
def test_imaps_and_smtp_starttls_with_the_private_ca(tmp_path, capsys, monkeypatch, tls_ca, dovecot_tls,
                                                      mailbox_tls, smtp_sink_starttls, host):
    run = Run(tmp_path, capsys, monkeypatch, mailbox_tls,
              mailbox_section=imap_tls_section(mailbox_tls, security="tls", host=host, ca_file=tls_ca.ca_file),
              smtp_section=smtp_tls_section(smtp_sink_starttls, security="starttls", host=host,
                                            ca_file=tls_ca.ca_file))
    thread = run.customer_writes(hours_ago=2)
    logins_before = len(dovecot_tls.logins(mailbox_tls.username))

    code, out, err = run.main("once")

    assert code == 0, err
    assert "1 mail(s) sent" in out
    [mail] = smtp_sink_starttls.wait_for(1)
    assert mail.rcpt_tos == ["manager@example.test"]
    assert mail.tls and mail.starttls and mail.tls_version in ("TLSv1.2", "TLSv1.3")
    assert smtp_sink_starttls.mail_commands == [(mail.mail_from, True)]
    assert thread in mail.message["References"]
    assert_logged_in_over_tls(dovecot_tls, mailbox_tls.username, logins_before)
    [breach] = run.breaches()
    assert breach["thread"] == thread and breach["escalations"][0]["delivery"] == "sent"

    code, out, err = run.main("check")
    assert code == 0, err
    assert f"{host}:{mailbox_tls.imaps_port} (tls)" in out
    assert f"{host}:{smtp_sink_starttls.port} (starttls)" in out


@HOSTS
def test_imap_starttls_and_smtps_with_the_private_ca(tmp_path, capsys, monkeypatch, tls_ca, dovecot_tls,
                                                     mailbox_tls, smtp_sink_tls, host):
    run = Run(tmp_path, capsys, monkeypatch, mailbox_tls,
              mailbox_section=imap_tls_section(mailbox_tls, security="starttls", host=host, ca_file=tls_ca.ca_file),
              smtp_section=smtp_tls_section(smtp_sink_tls, security="tls", host=host, ca_file=tls_ca.ca_file))
    thread = run.customer_writes(hours_ago=2)
    logins_before = len(dovecot_tls.logins(mailbox_tls.username))

    code, out, err = run.main("once")

    assert code == 0, err
    [mail] = smtp_sink_tls.wait_for(1)
    assert mail.rcpt_tos == ["manager@example.test"]
    assert mail.tls and not mail.starttls  # TLS from the first byte, not upgraded
    assert smtp_sink_tls.mail_commands == [(mail.mail_from, True)]
    assert thread in mail.message["References"]
    assert_logged_in_over_tls(dovecot_tls, mailbox_tls.username, logins_before)
    [breach] = run.breaches()
    assert breach["escalations"][0]["delivery"] == "sent"

    code, out, err = run.main("check")
    assert code == 0, err
    assert f"{host}:{mailbox_tls.port} (starttls)" in out
    assert f"{host}:{smtp_sink_tls.port} (tls)" in out


# ----------------------------------------------------------------------------- IMAP: certificate not trusted


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_imap_without_ca_file_refuses_the_untrusted_certificate(tmp_path, capsys, monkeypatch, tls_ca, dovecot_tls,
                                                                mailbox_tls, smtp_sink_starttls, security):
    run = Run(tmp_path, capsys, monkeypatch, mailbox_tls,
              mailbox_section=imap_tls_section(mailbox_tls, security=security),  # system CAs only
              smtp_section=smtp_tls_section(smtp_sink_starttls, security="starttls", ca_file=tls_ca.ca_file))
    run.customer_writes(hours_ago=2)
    logins_before = len(dovecot_tls.logins(mailbox_tls.username))
    port = mailbox_tls.imaps_port if security == "tls" else mailbox_tls.port

    code, out, err = run.main("once")
    assert code == EX_UNAVAILABLE, (out, err)
    assert_clean_failure(err, f"localhost:{port}")

    code, out, err = run.main("check")
    assert code == EX_UNAVAILABLE, (out, err)
    assert_clean_failure(err, f"localhost:{port}")

    assert new_logins(dovecot_tls, mailbox_tls.username, logins_before) == []  # the password never went out
    assert smtp_sink_starttls.messages == []


def test_imap_starttls_against_a_server_without_starttls_does_not_log_in(tmp_path, capsys, monkeypatch, tls_ca,
                                                                          dovecot, mailbox, smtp_sink_starttls):
    section = imap_section(mailbox).replace('security = "plain"', 'security = "starttls"')
    run = Run(tmp_path, capsys, monkeypatch, mailbox, mailbox_section=section + f'\nca_file = "{tls_ca.ca_file}"',
              smtp_section=smtp_tls_section(smtp_sink_starttls, security="starttls", ca_file=tls_ca.ca_file))
    run.customer_writes(hours_ago=2)
    logins_before = len(dovecot.logins(mailbox.username))  # the append above logged in

    code, out, err = run.main("once")

    assert code == EX_UNAVAILABLE, (out, err)
    assert "Traceback" not in err and f"{mailbox.host}:{mailbox.port}" in err, err
    assert "STARTTLS" in err, err
    assert new_logins(dovecot, mailbox.username, logins_before) == []  # no clear-text login
    assert smtp_sink_starttls.messages == []


# ----------------------------------------------------------------------------- SMTP: certificate not trusted


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_smtp_without_ca_file_keeps_the_escalation_pending(request, tmp_path, capsys, monkeypatch, tls_ca, mailbox,
                                                           security):
    sink = request.getfixturevalue("smtp_sink_starttls" if security == "starttls" else "smtp_sink_tls")
    run = Run(tmp_path, capsys, monkeypatch, mailbox, mailbox_section=imap_section(mailbox),
              smtp_section=smtp_tls_section(sink, security=security))  # system CAs only
    run.customer_writes(hours_ago=2)

    code, out, err = run.main("once")

    assert code == EX_UNAVAILABLE, (out, err)
    assert "1 mail(s) not sent yet" in err, err
    assert_clean_failure(err, f"localhost:{sink.port}")
    [breach] = run.breaches()
    assert [e["delivery"] for e in breach["escalations"]] == ["pending"]
    assert sink.messages == [] and sink.mail_commands == []

    code, out, err = run.main("check")
    assert code == EX_UNAVAILABLE, (out, err)
    assert_clean_failure(err, f"localhost:{sink.port}")

    # Trusting the CA later delivers the very escalation that waited, once.
    run.rewrite(mailbox_section=imap_section(mailbox),
                smtp_section=smtp_tls_section(sink, security=security, ca_file=tls_ca.ca_file))
    after_the_backoff = (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()
    code, out, err = run.main("once", "--now", after_the_backoff)
    assert code == 0, err
    [mail] = sink.wait_for(1)
    assert mail.tls and mail.message["Message-ID"] == breach["escalations"][0]["message_id"]
    [breach] = run.breaches()
    assert [e["delivery"] for e in breach["escalations"]] == ["sent"]


def test_smtp_certificate_for_another_name_is_refused(tmp_path, capsys, monkeypatch, tls_ca, mailbox):
    """The CA is trusted, but the certificate names another host: the host name check must fail."""
    cert, key = tls_ca.issue("other-host", dns=("mail.other.example",), ips=())
    sink = SmtpSink(implicit_tls=tls_ca.server_context(cert, key)).start()
    try:
        run = Run(tmp_path, capsys, monkeypatch, mailbox, mailbox_section=imap_section(mailbox),
                  smtp_section=smtp_tls_section(sink, security="tls", host="127.0.0.1", ca_file=tls_ca.ca_file))
        run.customer_writes(hours_ago=2)

        code, out, err = run.main("once")

        assert code == EX_UNAVAILABLE, (out, err)
        assert_clean_failure(err, f"127.0.0.1:{sink.port}")
        assert "mismatch" in err or "not valid for" in err, err
        assert [e["delivery"] for e in run.breaches()[0]["escalations"]] == ["pending"]
        assert sink.messages == [] and sink.mail_commands == []
    finally:
        sink.stop()


# ----------------------------------------------------------------------------- SMTP: no downgrade


def test_smtp_starttls_against_a_server_without_starttls_never_sends_in_clear(tmp_path, capsys, monkeypatch,
                                                                                tls_ca, mailbox, smtp_sink):
    run = Run(tmp_path, capsys, monkeypatch, mailbox, mailbox_section=imap_section(mailbox),
              smtp_section=smtp_tls_section(smtp_sink, security="starttls", host="127.0.0.1",
                                            ca_file=tls_ca.ca_file))
    run.customer_writes(hours_ago=2)

    code, out, err = run.main("once")

    assert code == EX_UNAVAILABLE, (out, err)
    assert "Traceback" not in err and f"127.0.0.1:{smtp_sink.port}" in err, err
    assert "STARTTLS" in err, err
    assert smtp_sink.messages == [] and smtp_sink.mail_commands == []  # not even a MAIL FROM in clear text
    [breach] = run.breaches()
    assert [e["delivery"] for e in breach["escalations"]] == ["pending"]

    code, out, err = run.main("check")
    assert code == EX_UNAVAILABLE, (out, err)
    assert "Traceback" not in err and "STARTTLS" in err, err
