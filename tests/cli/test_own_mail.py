"""Stores written before Message-IDs were signed keep working: recorded ids stay as recorded (a resend and a
manager's reply use them), and mailesc's own older mails are still recognised by their From address."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import datetime, timedelta, timezone

from mailesc.cli import main
from tests.support import deliver, make_mail, outbox_mails

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)


def old_style_id(thread: str, what: str) -> str:
    """How Message-IDs were made before the installation secret: anybody could compute them."""
    return f"<mailesc.{hashlib.sha256(thread.encode()).hexdigest()[:20]}.{what}@example.test>"


def test_a_store_with_old_message_ids_keeps_them_and_a_reply_to_one_still_acknowledges(maildir_setup, capsys):
    config, inbox, sent, outbox = maildir_setup
    raw, thread = make_mail(sender="pat@customer.example", subject="Cannot log in", date=T0)
    deliver(inbox, raw, T0)
    assert main(["-c", str(config), "once", "--now", (T0 + timedelta(hours=1, minutes=5)).isoformat()]) == 0
    [new_style] = outbox_mails(outbox)
    store = config.parent / "var" / "mailesc.json"
    secret = config.parent / "var" / "mailesc-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text().strip() not in capsys.readouterr().err  # never logged

    # As an older mailesc recorded it: the same record with an unsigned, computable Message-ID.
    old = old_style_id(thread, "L1")
    store.write_text(store.read_text().replace(new_style["Message-ID"], old))
    raw, _ = make_mail(sender="Mia <manager@example.test>", to="support@example.test", subject="Re: breach",
                       in_reply_to=old, references=[thread, old], date=T0 + timedelta(hours=1, minutes=30))
    deliver(inbox, raw, T0 + timedelta(hours=1, minutes=30))
    # An old escalation read back (own From address, old unsigned marker) is never a customer message.
    raw, _ = make_mail(sender="Support Escalations <escalations@example.test>", to="manager@example.test",
                       subject="[SLA breach, level 1] Cannot log in", message_id=old_style_id(thread, "L9"),
                       headers={"X-Mailesc": "escalation; level=1; breach=1"}, date=T0 + timedelta(hours=1))
    deliver(inbox, raw, T0 + timedelta(hours=1))

    assert main(["-c", str(config), "once", "--now", (T0 + timedelta(hours=4)).isoformat()]) == 0
    capsys.readouterr()
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    [breach] = json.loads(capsys.readouterr().out)
    assert [e["message_id"] for e in breach["escalations"]] == [old]  # as recorded; level 2 never went out
    assert breach["acknowledged_by"] == "manager@example.test"
    assert len(outbox_mails(outbox)) == 1
    assert main(["-c", str(config), "status", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["threads"] == 1  # the old escalation opened no thread
