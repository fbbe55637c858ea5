"""Spam the server tagged but left in INBOX never starts a clock and never answers one (real Dovecot + SMTP)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from tests.support import ONE_HOUR_RULE, imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration

CUSTOMER = "Pat Customer <pat@customer.example>"


def test_tagged_spam_in_inbox_leads_to_no_escalation(tmp_path, mailbox, smtp_sink, monkeypatch, capsys):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE,
                          extra="[classify]\nspam_score_threshold = 5.0\n")
    now = datetime.now(timezone.utc)

    def arrives(hours_ago: float, **mail) -> str:
        raw, message_id = make_mail(date=now - timedelta(hours=hours_ago), **mail)
        mailbox.append("INBOX", raw, now - timedelta(hours=hours_ago))
        return message_id

    customer = arrives(1.5, sender=CUSTOMER, subject="Cannot log in")
    # Spam in every dialect the filters write, all old enough to have breached long ago.
    arrives(3, sender="deals@spam.example", subject="Cheap watches", headers={"X-Spam-Flag": "YES"})
    arrives(3, sender="win@spam.example", subject="You won", headers={"X-Rspamd-Action": "add header"})
    arrives(3, sender="pills@spam.example", subject="Pills", headers={"X-Spam-Level": "********"})
    # Spam with a forged team address "answering" the customer: not a response, the clock keeps running.
    arrives(1.4, sender="alice@example.test", to=CUSTOMER, subject="Re: Cannot log in", in_reply_to=customer,
            references=[customer], headers={"X-Spam-Status": "Yes, score=9.9 required=5.0"})
    # A customer's mail the filter got wrong; the customer writes again, untagged: that works as usual.
    misjudged = arrives(3, sender="kim@customer.example", subject="Invoice", headers={"X-Spam-Flag": "YES"})
    arrives(1.5, sender="kim@customer.example", subject="Re: Invoice", in_reply_to=misjudged, references=[misjudged])
    before = mailbox.flags("INBOX")

    assert main(["-c", str(config), "once"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("7 new message(s), 2 thread(s) opened, 2 new breach(es), 2 mail(s)")

    mails = smtp_sink.wait_for(2)
    assert all(mail.rcpt_tos == ["manager@example.test"] for mail in mails)
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    breaches = json.loads(capsys.readouterr().out)
    assert sorted((b["customer"], b["subject"], b["responded_at"]) for b in breaches) == [
        ("kim@customer.example", "Re: Invoice", None), ("pat@customer.example", "Cannot log in", None)]
    assert mailbox.flags("INBOX") == before  # left where the server put it, unmarked


def test_spam_answering_an_escalation_does_not_stop_the_ladder(tmp_path, mailbox, smtp_sink, monkeypatch, capsys):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)
    now = datetime.now(timezone.utc)
    raw, _ = make_mail(sender=CUSTOMER, subject="Cannot log in", date=now - timedelta(hours=1.5))
    mailbox.append("INBOX", raw, now - timedelta(hours=1.5))
    assert main(["-c", str(config), "once"]) == 0, capsys.readouterr().err
    [level_one] = smtp_sink.wait_for(1)
    # A reply to the escalation "from the manager", tagged as spam (a forged sender): no acknowledgement.
    raw, _ = make_mail(sender="manager@example.test", to="support@example.test", subject="Re: escalation",
                       in_reply_to=level_one.message["Message-ID"], references=[level_one.message["Message-ID"]],
                       headers={"X-Spam-Flag": "YES"})
    mailbox.append("INBOX", raw, now)

    assert main(["-c", str(config), "once", "--now", (now + timedelta(hours=2)).isoformat()]) == 0
    capsys.readouterr()
    assert smtp_sink.wait_for(2)[1].rcpt_tos == ["director@example.test"]  # level 2 went out
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    [breach] = json.loads(capsys.readouterr().out)
    assert breach["acknowledged_by"] is None
