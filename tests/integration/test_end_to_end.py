"""mailesc against a real Dovecot and a real SMTP server: the product's spine, end to end.

The tests that take ``backend`` run on both stores (the embedded file and PostgreSQL); those using
`breaches show`/`resend` stay on the file store until those commands read PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from tests.support import ONE_HOUR_RULE, Backend, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

CUSTOMER = "Pat Customer <pat@customer.example>"
AGENT = "Alice Agent <alice@example.test>"


@pytest.fixture
def setup(tmp_path, mailbox, smtp_sink, monkeypatch, request):
    """On the file store, or on the backend the test asks for."""
    backend = Backend.of(request)
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE,
                          store=backend.store_section)
    return Setup(config, mailbox, smtp_sink, backend)


class Setup:
    def __init__(self, config, mailbox, sink, backend):
        self.config, self.mailbox, self.sink, self.backend = config, mailbox, sink, backend
        self.start = datetime.now(timezone.utc).replace(microsecond=0)  # "hours ago" counts from here

    def once(self, capsys, now: datetime | None = None) -> str:
        args = ["-c", str(self.config), "once"] + (["--now", now.isoformat()] if now else [])
        assert main(args) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    def breaches(self, capsys) -> list[dict]:
        assert main(["-c", str(self.config), "breaches", "list", "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    def customer_writes(self, hours_ago: float, subject="Cannot log in", **kwargs) -> str:
        when = self.start - timedelta(hours=hours_ago)
        raw, message_id = make_mail(sender=CUSTOMER, subject=subject, date=when, **kwargs)
        self.mailbox.append("INBOX", raw, when)
        return message_id

    def team_replies(self, hours_ago: float, parent: str, folder="Sent", only_references=False,
                     sender=AGENT, to=CUSTOMER, subject="Re: Cannot log in") -> str:
        when = self.start - timedelta(hours=hours_ago)
        raw, message_id = make_mail(sender=sender, to=to, cc="support@example.test", subject=subject, date=when,
                                    in_reply_to=None if only_references else parent, references=[parent],
                                    body="Hello Pat,\nwe are on it.")
        self.mailbox.append(folder, raw, when)
        return message_id


def test_an_unanswered_thread_is_escalated_once_with_the_thread_attached(setup, backend, capsys):
    first = setup.customer_writes(hours_ago=1.5)
    raw, follow_up = make_mail(sender=CUSTOMER, subject="Re: Cannot log in", in_reply_to=first, references=[first],
                               body="Any news?", date=datetime.now(timezone.utc) - timedelta(minutes=20))
    setup.mailbox.append("INBOX", raw, datetime.now(timezone.utc) - timedelta(minutes=20))

    setup.once(capsys)

    [mail] = setup.sink.wait_for(1)
    assert mail.rcpt_tos == ["manager@example.test"]
    message = mail.message
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert first in message["References"] and follow_up in message["References"]
    assert "Cannot log in" in message["Subject"]
    attached = [part.get_content() for part in message.iter_attachments()]
    assert [m["Message-ID"] for m in attached] == [first, follow_up]  # the whole thread, oldest first
    body = message.get_body(("plain",)).get_content()
    assert "pat@customer.example" in body and "standard" in body and "please help" in body

    [breach] = setup.breaches(capsys)
    assert breach["thread"] == first and breach["status"] == "open" and breach["policy"] == "standard"
    assert breach["customer"] == "pat@customer.example"
    assert [(e["level"], e["to"], e["message_id"]) for e in breach["escalations"]] == [
        (1, ["manager@example.test"], message["Message-ID"])]
    assert datetime.fromisoformat(breach["due_at"]) - datetime.fromisoformat(breach["received_at"]) == timedelta(hours=1)

    setup.once(capsys)  # the same cycle again sends nothing new
    setup.once(capsys)
    assert len(setup.sink.messages) == 1
    assert len(setup.breaches(capsys)) == 1


def test_the_ladder_climbs_to_level_two_only_while_nobody_answers(setup, backend, capsys):
    first = setup.customer_writes(hours_ago=1.5)
    setup.once(capsys)
    assert [m.rcpt_tos for m in setup.sink.wait_for(1)] == [["manager@example.test"]]

    setup.once(capsys, now=datetime.now(timezone.utc) + timedelta(hours=2))
    assert [m.rcpt_tos for m in setup.sink.wait_for(2)] == [["manager@example.test"], ["director@example.test"]]
    [breach] = setup.breaches(capsys)
    assert [e["level"] for e in breach["escalations"]] == [1, 2]
    assert breach["escalations"][1]["message_id"] != breach["escalations"][0]["message_id"]
    assert breach["thread"] == first


def test_a_reply_after_level_one_stops_the_ladder_and_records_a_late_response(setup, backend, capsys):
    first = setup.customer_writes(hours_ago=1.5)
    setup.once(capsys)
    setup.sink.wait_for(1)
    setup.team_replies(hours_ago=0, parent=first)

    setup.once(capsys, now=datetime.now(timezone.utc) + timedelta(hours=3))

    assert len(setup.sink.messages) == 1
    [breach] = setup.breaches(capsys)
    assert breach["status"] == "responded_late" and breach["responded_at"] is not None


@pytest.mark.parametrize("folder, only_references", [("Sent", False), ("INBOX", True)],
                         ids=["reply-in-sent", "reply-in-inbox-with-only-references"])
def test_a_team_reply_in_time_stops_the_clock(setup, backend, capsys, folder, only_references):
    first = setup.customer_writes(hours_ago=3)
    setup.team_replies(hours_ago=2.5, parent=first, folder=folder, only_references=only_references)

    setup.once(capsys)

    assert setup.sink.messages == []
    assert setup.breaches(capsys) == []


def test_a_late_reply_is_recorded_as_responded_late_without_any_mail(setup, backend, capsys):
    first = setup.customer_writes(hours_ago=5)
    setup.team_replies(hours_ago=2, parent=first)  # 3 h after the customer: 2 h late, mailesc was not running

    setup.once(capsys)

    assert setup.sink.messages == []
    [breach] = setup.breaches(capsys)
    assert breach["status"] == "responded_late" and breach["escalations"] == []
    responded = datetime.fromisoformat(breach["responded_at"])
    assert responded - datetime.fromisoformat(breach["due_at"]) == timedelta(hours=2)


def test_an_internal_forward_to_the_manager_is_not_a_response(setup, backend, capsys):
    first = setup.customer_writes(hours_ago=1.5)
    setup.team_replies(hours_ago=1.2, parent=first, to="manager@example.test", subject="Fwd: Cannot log in")

    setup.once(capsys)

    [mail] = setup.sink.wait_for(1)
    assert mail.rcpt_tos == ["manager@example.test"]


def test_auto_replies_and_bounces_neither_open_threads_nor_answer_them(setup, backend, capsys):
    first = setup.customer_writes(hours_ago=1.5)
    out_of_office, _ = make_mail(sender=AGENT, to=CUSTOMER, subject="Automatic reply: Cannot log in",
                                 in_reply_to=first, references=[first],
                                 headers={"Auto-Submitted": "auto-replied"})
    setup.mailbox.append("INBOX", out_of_office, datetime.now(timezone.utc) - timedelta(hours=1.4))
    bounce, _ = make_mail(sender="MAILER-DAEMON@mx.customer.example", subject="Undelivered Mail Returned to Sender",
                          headers={"Return-Path": "<>"}, date=datetime.now(timezone.utc) - timedelta(hours=5))
    setup.mailbox.append("INBOX", bounce, datetime.now(timezone.utc) - timedelta(hours=5))
    vacation, _ = make_mail(sender="Someone <someone@other.example>", subject="Out of office",
                            headers={"X-Autoreply": "yes"}, date=datetime.now(timezone.utc) - timedelta(hours=5))
    setup.mailbox.append("INBOX", vacation, datetime.now(timezone.utc) - timedelta(hours=5))

    setup.once(capsys)

    [mail] = setup.sink.wait_for(1)  # only the customer's thread, and the auto-reply did not stop its clock
    assert mail.rcpt_tos == ["manager@example.test"]
    assert [b["thread"] for b in setup.breaches(capsys)] == [first]


def test_mailesc_never_marks_the_teams_mail(setup, capsys):
    setup.customer_writes(hours_ago=1.5)
    setup.team_replies(hours_ago=3, parent="<other@customer.example>")
    before = {folder: setup.mailbox.flags(folder) for folder in ("INBOX", "Sent")}

    setup.once(capsys)
    setup.sink.wait_for(1)

    assert {folder: setup.mailbox.flags(folder) for folder in ("INBOX", "Sent")} == before
    assert all(flags == () for flags in before["INBOX"].values())


def test_new_mail_is_picked_up_incrementally_and_old_mail_not_counted_twice(setup, backend, capsys):
    setup.customer_writes(hours_ago=0.1, subject="First question")
    assert "1 new message(s)" in setup.once(capsys)
    setup.customer_writes(hours_ago=0.1, subject="Second question")
    assert "1 new message(s)" in setup.once(capsys)
    assert "0 new message(s)" in setup.once(capsys)
    assert setup.sink.messages == []


def test_an_unreachable_smtp_server_keeps_the_escalation_pending_until_it_is_back(setup, backend, capsys):
    setup.customer_writes(hours_ago=1.5)
    setup.sink.stop()

    assert main(["-c", str(setup.config), "once"]) == 69
    err = capsys.readouterr().err
    assert "1 mail(s) not sent yet" in err and "cannot reach the SMTP server" in err
    [breach] = setup.breaches(capsys)
    assert breach["escalations"][0]["delivery"] == "pending"

    setup.sink.start()
    # retries back off: 30 s after the first failure; meanwhile the mail still waits, and `once` says so (69)
    assert main(["-c", str(setup.config), "once"]) == 69
    assert "1 mail(s) not sent yet" in capsys.readouterr().err
    assert setup.sink.messages == []
    setup.once(capsys, now=datetime.now(timezone.utc) + timedelta(seconds=31))
    [mail] = setup.sink.wait_for(1)
    assert mail.message["Message-ID"] == breach["escalations"][0]["message_id"]  # the same mail, not a new one
    [breach] = setup.breaches(capsys)
    assert breach["escalations"][0]["delivery"] == "sent"


def test_a_permanent_smtp_refusal_is_recorded_with_the_servers_reply(setup, backend, capsys):
    setup.customer_writes(hours_ago=1.5)
    setup.sink.fail_next(554, "5.7.1 Rejected by policy")

    assert main(["-c", str(setup.config), "once"]) == 69
    assert "refused for good" in capsys.readouterr().err
    [breach] = setup.breaches(capsys)
    [escalation] = breach["escalations"]
    assert escalation["delivery"] == "failed" and "554" in escalation["error"] and "Rejected" in escalation["error"]
    setup.once(capsys, now=datetime.now(timezone.utc) + timedelta(hours=1))  # not retried on its own
    assert setup.sink.messages == []
    assert main(["-c", str(setup.config), "breaches", "show", str(breach["id"])]) == 0
    assert "554" in capsys.readouterr().out  # the server's words, for the operator

    assert main(["-c", str(setup.config), "breaches", "resend", str(breach["id"])]) == 0  # an operator decides
    assert escalation["message_id"] in capsys.readouterr().out
    setup.once(capsys)
    [mail] = setup.sink.wait_for(1)
    assert mail.message["Message-ID"] == escalation["message_id"]
    assert setup.breaches(capsys)[0]["escalations"][0]["delivery"] == "sent"


def test_a_temporary_smtp_refusal_is_retried_after_a_pause(setup, backend, capsys):
    setup.customer_writes(hours_ago=1.5)
    setup.sink.fail_next(451, "4.3.0 Try again later")

    assert main(["-c", str(setup.config), "once"]) == 69
    assert "451" in capsys.readouterr().err
    [escalation] = setup.breaches(capsys)[0]["escalations"]
    assert escalation["delivery"] == "pending" and escalation["attempts"] == 1
    retry_at = datetime.fromisoformat(escalation["retry_at"])

    setup.once(capsys, now=retry_at)
    [mail] = setup.sink.wait_for(1)
    assert mail.message["Message-ID"] == escalation["message_id"]


def test_resend_refuses_what_did_not_fail(setup, backend, capsys):
    setup.customer_writes(hours_ago=1.5)
    setup.once(capsys)
    assert main(["-c", str(setup.config), "breaches", "resend", "1"]) == 64
    assert "no failed escalation" in capsys.readouterr().err
    assert main(["-c", str(setup.config), "breaches", "resend", "9"]) == 64


def test_check_logs_in_and_reports_folders_and_capabilities(setup, backend, capsys):
    assert main(["-c", str(setup.config), "check"]) == 0
    out = capsys.readouterr().out
    assert setup.mailbox.username in out and "Sent" in out and "IDLE" in out
    assert f"{setup.sink.host}:{setup.sink.port}" in out and out.rstrip().endswith("OK")
    assert setup.mailbox.password not in out
    if backend.name == "postgresql":
        assert "schema: " in out and backend.database.password not in out  # the database and its schema version


def test_a_connection_the_server_closed_between_polls_is_renewed_without_losing_mail(setup, dovecot):
    from mailesc.config import load_config
    from mailesc.sources import poll_into
    from mailesc.sources.imap import ImapSource

    source = ImapSource(load_config(setup.config).mailbox)
    bookmarks: dict = {}
    try:
        first = setup.customer_writes(hours_ago=0.2, subject="Before the restart")
        assert len(list(poll_into(source, bookmarks))) == 1
        kicked = subprocess.run(["doveadm", "-c", str(dovecot.conf_path), "kick", setup.mailbox.username],
                                capture_output=True, text=True)
        assert kicked.returncode == 0, kicked.stderr  # the server drops the connection kept between polls
        second = setup.customer_writes(hours_ago=0.1, subject="After the restart")

        polled = list(poll_into(source, bookmarks))
    finally:
        source.close()
    assert [raw.data.count(second.encode()) for raw in polled] == [1]
    assert first != second


def test_a_changed_uidvalidity_rereads_the_folder_without_escalating_twice(setup, backend, dovecot, capsys):
    setup.customer_writes(hours_ago=1.5)
    setup.once(capsys)
    setup.sink.wait_for(1)
    with setup.mailbox.client() as client:
        before = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    changed = subprocess.run(["doveadm", "-c", str(dovecot.conf_path), "mailbox", "update", "-u",
                              setup.mailbox.username, "--uid-validity", str(before + 1000), "INBOX"],
                             capture_output=True, text=True)
    assert changed.returncode == 0, changed.stderr
    with setup.mailbox.client() as client:
        assert client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"] == before + 1000

    out = setup.once(capsys)  # every message of the folder is read again, and recognised
    assert "1 new message(s)" in out and "0 thread(s) opened" in out and "0 new breach(es)" in out
    assert len(setup.sink.messages) == 1
    [breach] = setup.breaches(capsys)
    assert len(breach["escalations"]) == 1

    setup.once(capsys, now=datetime.now(timezone.utc) + timedelta(hours=2))  # level 2 still attaches the thread
    [_, level_two] = setup.sink.wait_for(2)
    assert [p.get_content_type() for p in level_two.message.iter_attachments()] == ["message/rfc822"]


def test_a_huge_message_is_neither_fetched_whole_nor_attached_but_still_escalated(setup, capsys):
    when = datetime.now(timezone.utc) - timedelta(hours=1.5)
    raw, first = make_mail(sender=CUSTOMER, subject="Logs attached", date=when,
                           body="Here are our logs.\n" + ("x" * 999 + "\n") * 25_000)  # 25 MB
    setup.mailbox.append("INBOX", raw, when)
    small, _ = make_mail(sender=CUSTOMER, subject="Re: Logs attached", in_reply_to=first, references=[first],
                         body="Did you get them?", date=when + timedelta(minutes=5))
    setup.mailbox.append("INBOX", small, when + timedelta(minutes=5))

    setup.once(capsys)

    [mail] = setup.sink.wait_for(1)
    assert len(mail.content) < 1_000_000
    [attached] = [part.get_content() for part in mail.message.iter_attachments()]
    assert attached["Subject"] == "Re: Logs attached"
    text = mail.message.get_body(("plain",)).get_content()
    assert "too large to attach" in text and "too large to quote" in text
