"""next_response end to end on a Maildir: the customer writes again after an answer and waits too long."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from mailesc.cli import main
from tests.support import deliver, make_mail, outbox_mails

RULES = """
[[rule]]
name = "standard"
first_response = "4h"
next_response = "2h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def test_a_missed_next_response_is_its_own_breach_and_escalation(maildir_setup, capsys):
    config, inbox, sent, outbox = maildir_setup
    (config.parent / "policies" / "rules.toml").write_text(RULES)
    now = datetime.now(timezone.utc)
    raw, first = make_mail(sender="pat@customer.example", subject="Export fails", date=now - timedelta(hours=6))
    deliver(inbox, raw, now - timedelta(hours=6))
    raw, _ = make_mail(sender="bob@example.test", to="pat@customer.example", subject="Re: Export fails",
                       in_reply_to=first, references=[first])
    deliver(sent, raw, now - timedelta(hours=5))  # answered within an hour
    raw, again = make_mail(sender="pat@customer.example", subject="Re: Export fails", in_reply_to=first,
                           references=[first], body="Still failing, see attached log.")
    deliver(inbox, raw, now - timedelta(hours=3))  # asked again 3 hours ago: the 2h next response is missed

    assert main(["-c", str(config), "once"]) == 0
    capsys.readouterr()

    [mail] = outbox_mails(outbox)
    assert mail["To"] == "manager@example.test" and again in mail["References"]
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    [breach] = json.loads(capsys.readouterr().out)
    assert breach["clock"] == "next_response" and breach["thread"] == first
    assert breach["escalations"][0]["message_id"] == mail["Message-ID"]
    assert datetime.fromisoformat(breach["due_at"]) - datetime.fromisoformat(breach["received_at"]) == \
        timedelta(hours=2)
