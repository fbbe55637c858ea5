"""The daily digest over real SMTP (aiosmtpd), from a real Dovecot mailbox: sent once a day, retried with the
same Message-ID after a 4xx, and the day's digest is not sent twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from tests.support import imap_section, make_mail, smtp_section, write_config

pytestmark = pytest.mark.integration
NOW = datetime.now(timezone.utc).replace(microsecond=0)
RULE = '[[rule]]\nname = "standard"\nfirst_response = "1h"\n[[rule.escalate]]\nafter = "0m"\nto = ["manager@example.test"]\n'


def once(config, at: datetime, capsys) -> int:
    code = main(["-c", str(config), "once", "--now", at.isoformat()])
    capsys.readouterr()
    return code


def test_the_daily_digest_is_retried_after_a_4xx_and_never_sent_twice(tmp_path, mailbox, smtp_sink, monkeypatch,
                                                                       capsys, backend):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=RULE,
                          extra='[daily_digest]\ndaily_at = "07:30"\ntimezone = "UTC"\nto = ["boss@example.test"]\n',
                          store=backend.store_section)
    yesterday = NOW - timedelta(days=1)
    raw, _ = make_mail(sender="pat@customer.example", subject="Still waiting", date=yesterday)
    mailbox.append("INBOX", raw, yesterday)
    today_0730 = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=7, minutes=30)
    assert once(config, today_0730 - timedelta(hours=1), capsys) == 0  # the escalation goes out, no digest yet
    assert [m.message["X-Mailesc"].split("; sig=")[0] for m in smtp_sink.wait_for(1)] == \
        ["escalation; level=1; breach=1"]

    smtp_sink.fail_next(451, "try again later")
    once(config, today_0730 + timedelta(minutes=1), capsys)
    assert len(smtp_sink.messages) == 1  # refused: recorded, waiting for its retry
    once(config, today_0730 + timedelta(minutes=1, seconds=10), capsys)
    assert len(smtp_sink.messages) == 1  # not before its pause is over
    once(config, today_0730 + timedelta(minutes=2), capsys)
    digest = smtp_sink.wait_for(2)[-1]
    assert digest.rcpt_tos == ["boss@example.test"] and digest.message["Auto-Submitted"] == "auto-generated"
    assert "1 breach(es) still have no recorded cause" in digest.message.get_content()
    assert digest.message["Message-ID"] == f"<mailesc.daily.{NOW.date().isoformat()}@example.test>"

    once(config, today_0730 + timedelta(hours=5), capsys)
    assert len(smtp_sink.messages) == 2  # once a day
