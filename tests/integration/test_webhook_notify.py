"""A ladder level's `notify = ["webhook:ops"]` on real servers: Dovecot in, aiosmtpd for the mail, and
mailesc.testing.WebhookServer for the chat, on both stores. The level gets one mail and one post; a post the
receiver refuses for a while is retried and made once; one it refuses for good fails with its status on record;
a crash between recording and posting posts at most once more; the URL (it holds the channel's token) is never
printed, logged or stored."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from mailesc import app
from mailesc.cli import main
from mailesc.config import load_config
from mailesc.sources import open_source
from mailesc.testing import WebhookServer
from mailesc.transports import open_transport
from tests.support import imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

CUSTOMER = "Pat Customer <pat@customer.example>"
RULES = """
[[rule]]
name = "standard"
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
notify = ["webhook:ops"]
[[rule.escalate]]
after = "2h"
to = ["director@example.test"]
"""
WEBHOOK = '[webhook.ops]\nurl_env = "MAILESC_OPS_WEBHOOK"\ntimeout_seconds = 5\n'


@pytest.fixture
def chat():
    with WebhookServer(path="/hooks/T0/B0/SeCrEtToKeN") as server:
        yield server


@pytest.fixture
def config(tmp_path, mailbox, smtp_sink, chat, monkeypatch, backend):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("MAILESC_OPS_WEBHOOK", chat.url)
    return write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=RULES,
                        store=backend.store_section, extra=WEBHOOK)


def customer_writes(mailbox, minutes_ago: float) -> str:
    when = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    raw, message_id = make_mail(sender=CUSTOMER, subject="Cannot log in", date=when)
    mailbox.append("INBOX", raw, when)
    return message_id


def run(config, capsys, *argv: str) -> tuple[int, str]:
    status = main(["-c", str(config), *argv])
    out = capsys.readouterr()
    return status, out.out + out.err


def the_breach(config, capsys) -> dict:
    status, out = run(config, capsys, "breaches", "list", "--json")
    assert status == 0, out
    [breach] = json.loads(out)
    return breach


def no_secret_in(text: str, chat: WebhookServer) -> None:
    assert "SeCrEtToKeN" not in text and chat.url not in text and chat.path not in text


def test_a_level_with_notify_gets_one_mail_and_one_post_recorded_in_the_breach_history(config, mailbox, smtp_sink,
                                                                                      chat, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    customer_writes(mailbox, minutes_ago=90)
    status, said = run(config, capsys, "-v", "once")
    assert status == 0, said
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["manager@example.test"]]
    [post] = chat.requests
    breach = the_breach(config, capsys)
    text = post.json["text"]
    assert f"breach {breach['id']}" in text and "level 1" in text and "policy standard" in text
    assert f"mailesc breaches show {breach['id']}" in text and "Cannot log in" in text
    assert "pat@customer.example" not in text  # a channel is a wider audience than the manager's inbox
    assert [(n["level"], n["to"], n["delivery"]) for n in breach["notifications"]] == [(1, ["webhook:ops"], "sent")]
    assert [e["level"] for e in breach["escalations"]] == [1]  # the post is no escalation mail
    assert breach["delivery"] == {"1": "sent"}

    status, shown = run(config, capsys, "breaches", "show", str(breach["id"]))
    assert "level 1 webhook ops post accepted by the webhook" in shown

    status, again = run(config, capsys, "once")  # nothing more is due: nothing posted twice
    assert status == 0 and len(chat.requests) == 1 and len(smtp_sink.messages) == 1
    status, checked = run(config, capsys, "check")
    assert status == 0 and "webhooks   ops: slack, URL from $MAILESC_OPS_WEBHOOK" in checked
    status, health = run(config, capsys, "status", "--json")
    for text in (said, shown, again, checked, health, caplog.text):
        no_secret_in(text, chat)


def test_a_post_refused_for_a_while_is_retried_and_made_once(config, mailbox, smtp_sink, chat, capsys):
    customer_writes(mailbox, minutes_ago=90)
    chat.fail_next(1, 500)
    status, said = run(config, capsys, "once")
    assert [r.status for r in chat.requests] == [500]
    assert len(smtp_sink.wait_for(1)) == 1  # the mail went all the same
    [post] = the_breach(config, capsys)["notifications"]
    assert (post["delivery"], post["attempts"], post["error"]) == ("pending", 1, "the webhook ops answered HTTP 500")
    status, health = run(config, capsys, "status", "--json")
    assert json.loads(health)["pending_posts"] == 1

    run(config, capsys, "once", "--now", (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat())
    assert [r.status for r in chat.requests] == [500, 200]
    assert [n["delivery"] for n in the_breach(config, capsys)["notifications"]] == ["sent"]
    run(config, capsys, "once", "--now", (datetime.now(timezone.utc) + timedelta(minutes=2)).isoformat())
    assert len(chat.accepted) == 1 and len(smtp_sink.messages) == 1
    no_secret_in(said + health, chat)


def test_a_post_refused_for_good_fails_with_its_status_in_the_history(config, mailbox, smtp_sink, chat, capsys):
    customer_writes(mailbox, minutes_ago=90)
    chat.fail_next(1, 400)
    run(config, capsys, "once")
    run(config, capsys, "once", "--now", (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat())
    assert [r.status for r in chat.requests] == [400]  # never tried again by itself
    breach = the_breach(config, capsys)
    assert [(n["delivery"], n["error"]) for n in breach["notifications"]] == [
        ("failed", "the webhook ops answered HTTP 400")]
    status, shown = run(config, capsys, "breaches", "show", str(breach["id"]))
    assert "level 1 webhook ops post refused for good: the webhook ops answered HTTP 400" in shown
    status, health = run(config, capsys, "status")
    assert status == 1 and "1 webhook post(s) refused for good" in health
    no_secret_in(shown + health, chat)


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on the way out)."""


class CrashingNotifier:
    """Dies before posting, or right after the receiver took the post (before it is recorded as made)."""

    def __init__(self, real, after: bool):
        self.real, self.after = real, after

    def post(self, post):
        if self.after:
            self.real.post(post)
        raise Crash()


@pytest.mark.parametrize("after", [False, True], ids=["before-posting", "after-the-receiver-took-it"])
def test_a_crash_between_recording_and_posting_posts_at_most_once_more(config, mailbox, smtp_sink, chat, capsys,
                                                                       after):
    customer_writes(mailbox, minutes_ago=90)
    setup = app.load_setup(load_config(config), starting=True)
    with app.open_store(setup.config) as store:
        source = open_source(setup.config.mailbox)
        try:
            engine = app.build_engine(setup, store, source, open_transport(setup.config.smtp))
            engine.outbox.notifier = CrashingNotifier(engine.outbox.notifier, after)
            with pytest.raises(Crash):
                engine.cycle(datetime.now(timezone.utc))
        finally:
            source.close()
    assert len(smtp_sink.wait_for(1)) == 1 and len(chat.requests) == (1 if after else 0)

    status, said = run(config, capsys, "once")  # the restart
    assert status == 0, said
    assert len(chat.requests) == (2 if after else 1)  # at most once more
    assert [n["delivery"] for n in the_breach(config, capsys)["notifications"]] == ["sent"]
    run(config, capsys, "once")
    assert len(chat.requests) == (2 if after else 1) and len(smtp_sink.messages) == 1


def test_a_dry_run_says_what_it_would_post_and_posts_nothing(config, mailbox, smtp_sink, chat, capsys):
    customer_writes(mailbox, minutes_ago=90)
    status, said = run(config, capsys, "once", "--dry-run")
    assert status == 0, said
    assert "would post webhook ops, level=1, breach=1" in said
    assert chat.requests == [] and smtp_sink.messages == []
    no_secret_in(said, chat)


def test_a_replay_records_the_post_and_posts_nothing(tmp_path, chat, monkeypatch, capsys):
    monkeypatch.setenv("MAILESC_OPS_WEBHOOK", chat.url)
    config = write_config(tmp_path, mailbox='[mailbox]\nkind = "maildir"\npath = "Maildir"',
                          smtp='[smtp]\nkind = "outbox"\npath = "outbox"\nfrom = "esc@example.test"', rules=RULES,
                          extra=WEBHOOK)
    raw, _ = make_mail(sender=CUSTOMER, subject="Cannot log in", date=datetime(2026, 11, 2, 9, 0,
                                                                               tzinfo=timezone.utc))
    (tmp_path / "old.mbox").write_bytes(b"From pat@customer.example Mon Nov  2 09:00:00 2026\n" + raw + b"\n")
    status, said = run(config, capsys, "replay", str(tmp_path / "old.mbox"), "--until", "2026-11-02T12:00:00+00:00",
                       "--json")
    assert status == 0, said
    assert json.loads(said)["breaches"] == 1, said
    assert chat.requests == []
    status, out = run(config, capsys, "breaches", "list", "--replay", "--json")
    [breach] = json.loads(out)
    assert [(n["level"], n["delivery"]) for n in breach["notifications"]] == [(1, "sent")]
