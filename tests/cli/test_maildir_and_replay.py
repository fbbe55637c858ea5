"""The embedded default, no servers: a local Maildir in, an outbox Maildir out; and replay."""

from __future__ import annotations

import json
import mailbox
from datetime import datetime, timedelta, timezone

import pytest

from mailesc.cli import main
from tests.support import MAILDIR, OUTBOX, REPO, deliver, make_mail, outbox_mails, write_config

ANY_RULE = '[[rule]]\nname = "any"\nfirst_response = "1h"\n'


def test_once_on_a_maildir_escalates_into_the_outbox_and_uses_file_times(maildir_setup, capsys):
    config, inbox, sent, outbox = maildir_setup
    now = datetime.now(timezone.utc)
    # The Date header says "just now", but the file arrived 2 hours ago: the file time counts.
    raw, late_id = make_mail(sender="pat@customer.example", subject="Unanswered", date=now)
    deliver(inbox, raw, now - timedelta(hours=2))
    raw, answered_id = make_mail(sender="kim@customer.example", subject="Answered", date=now - timedelta(hours=3))
    deliver(inbox, raw, now - timedelta(hours=3))
    reply, _ = make_mail(sender="bob@example.test", to="kim@customer.example", subject="Re: Answered",
                         in_reply_to=answered_id, references=[answered_id], date=now - timedelta(hours=2.5))
    deliver(sent, reply, now - timedelta(hours=2.5))

    assert main(["-c", str(config), "once"]) == 0
    assert "3 new message(s)" in capsys.readouterr().out

    [mail] = outbox_mails(outbox)
    assert mail["To"] == "manager@example.test" and late_id in mail["References"]
    assert mail["Auto-Submitted"] == "auto-generated"
    assert main(["-c", str(config), "breaches", "show", "1", "--json"]) == 0
    breach = json.loads(capsys.readouterr().out)
    assert breach["thread"] == late_id
    assert datetime.fromisoformat(breach["received_at"]) == (now - timedelta(hours=2)).replace(microsecond=0) \
        or abs(datetime.fromisoformat(breach["received_at"]) - (now - timedelta(hours=2))) < timedelta(seconds=1)

    assert main(["-c", str(config), "once"]) == 0  # nothing twice
    assert len(outbox_mails(outbox)) == 1


def test_the_example_inbox_replays_with_the_documented_summary(tmp_path, capsys):
    example_config = (REPO / "examples" / "mailesc.toml").read_text()
    config = tmp_path / "mailesc.toml"
    config.write_text(example_config.replace('"../policies"', f'"{REPO / "policies"}"')
                      .replace('"../templates"', f'"{REPO / "templates"}"').replace("../var", "var"))

    assert main(["-c", str(config), "replay", str(REPO / "examples" / "support-inbox.mbox"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)

    for key in ("messages", "threads", "responded", "breaches", "escalations", "ignored_auto", "quarantined"):
        assert isinstance(summary[key], int), key
    assert summary["messages"] == len(mailbox.mbox(REPO / "examples" / "support-inbox.mbox")) > 300
    assert summary["quarantined"] == 0 and summary["ignored_auto"] > 10
    assert summary["responded"] + summary["unanswered"] == summary["threads"]
    assert summary["breaches"] == summary["responded_late"] + summary["unanswered"] - _still_within_deadline(tmp_path)
    mails = outbox_mails(tmp_path / "var" / "replay-outbox")
    assert len(mails) == summary["mails"] > 0 and summary["escalations"] >= summary["mails"]
    assert all(m["Auto-Submitted"] == "auto-generated" for m in mails)

    assert main(["-c", str(config), "breaches", "list", "--replay", "--json"]) == 0
    breaches = json.loads(capsys.readouterr().out)
    assert len(breaches) == summary["breaches"]
    assert {b["status"] for b in breaches} == {"open", "responded_late"}
    # A late reply never gets an escalation sent after it.
    for breach in breaches:
        for escalation in breach["escalations"]:
            assert breach["responded_at"] is None or (
                datetime.fromisoformat(escalation["at"]) < datetime.fromisoformat(breach["responded_at"]))


def _still_within_deadline(tmp_path) -> int:
    """Unanswered threads whose deadline lies after the end of the replay are not breaches (yet)."""
    store = json.loads((tmp_path / "var" / "mailesc-replay.json").read_text())
    end = max(datetime.fromisoformat(m["arrived"]) for t in store["threads"].values() for m in t["messages"])
    return sum(1 for t in store["threads"].values() if t["due_at"] and datetime.fromisoformat(t["due_at"]) > end
               and not any(m["kind"] == "team" for m in t["messages"]))


FOUR_HOURS_FOR_EVERYONE = """
[[rule]]
name = "everyone"
first_response = "4h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def test_replay_agrees_with_the_example_inbox_ground_truth(tmp_path, capsys):
    """examples/README.md: with a 4 hour deadline for all, 84 threads are answered on time, 37 late, 21 never.

    Those numbers come from the generator, which knows every thread; mailesc must find them from the mail
    alone (threading without references, internal forwards, auto-replies in threads and all)."""
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=FOUR_HOURS_FOR_EVERYONE)
    assert main(["-c", str(config), "replay", str(REPO / "examples" / "support-inbox.mbox"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["threads"], summary["responded_on_time"], summary["responded_late"], summary["unanswered"]) == (
        142, 84, 37, 21)
    assert summary["ignored_auto"] == 19


def test_a_bare_cr_mbox_replays_every_message(tmp_path, capsys):
    """Old Mac tools end lines with CR alone; the mailbox module reads such an mbox as one empty message."""
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ANY_RULE)
    first, _ = make_mail(sender="Pat <pat@customer.example>", subject="Cannot log in",
                         date=datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc))
    second, _ = make_mail(sender="kim@customer.example", subject="Invoice",
                          date=datetime(2026, 10, 5, 10, 0, tzinfo=timezone.utc))
    text = (b"From pat@customer.example Mon Oct  5 09:00:00 2026\n" + first + b"\n"
            b"From kim@customer.example Mon Oct  5 10:00:00 2026\n" + second + b"\n")
    (tmp_path / "cr.mbox").write_bytes(text.replace(b"\r\n", b"\n").replace(b"\n", b"\r"))

    assert main(["-c", str(config), "replay", str(tmp_path / "cr.mbox"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["messages"], summary["threads"], summary["quarantined"]) == (2, 2, 0)
    assert (summary["start"], summary["end"]) == ("2026-10-05T09:00:00+00:00", "2026-10-05T10:00:00+00:00")


def test_replay_counts_spam_apart_and_opens_no_thread_for_it(tmp_path, capsys):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ANY_RULE,
                          extra='[classify]\nspam_headers = { "X-Barracuda-Spam-Status" = "^yes" }\n')
    folder = tmp_path / "mails"
    folder.mkdir()
    start = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)
    mails = [dict(sender="pat@customer.example", subject="Cannot log in"),
             dict(sender="deals@spam.example", subject="Watches", headers={"X-Spam-Flag": "YES"}),
             dict(sender="win@spam.example", subject="Prize", headers={"X-Barracuda-Spam-Status": "Yes, SCORE=9"}),
             dict(sender="bounce@mx.example", subject="x", headers={"Auto-Submitted": "auto-generated"})]
    for number, mail in enumerate(mails):
        raw, _ = make_mail(date=start + timedelta(minutes=number), **mail)
        (folder / f"{number}.eml").write_bytes(raw)

    assert main(["-c", str(config), "replay", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["messages"], summary["threads"], summary["ignored_spam"], summary["ignored_auto"]) == (4, 1, 2, 1)
    assert main(["-c", str(config), "replay", str(folder)]) == 0
    assert "spam, ignored                2" in capsys.readouterr().out


@pytest.mark.parametrize("window, threads", [("", 1), ('[threads]\nsubject_window = "1d"\n', 2)],
                         ids=["default-30-days-joins", "window-of-a-day-does-not"])
def test_replay_joins_an_orphan_reply_by_subject_within_the_configured_window(tmp_path, capsys, window, threads):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=ANY_RULE,
                          extra=window)
    folder = tmp_path / "mails"
    folder.mkdir()
    start = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)
    first, _ = make_mail(sender="pat@customer.example", subject="Cannot log in", date=start)
    # Pat answers a copy whose Message-ID a list gateway rewrote: the reference leads nowhere.
    orphan, _ = make_mail(sender="pat@customer.example", subject="Re: Cannot log in", date=start + timedelta(days=3),
                          in_reply_to="<rewritten@lists.example>", references=["<rewritten@lists.example>"])
    (folder / "1.eml").write_bytes(first)
    (folder / "2.eml").write_bytes(orphan)

    assert main(["-c", str(config), "replay", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == threads


def test_a_replay_refuses_the_live_store_and_leaves_it_as_it_was(maildir_setup, tmp_path, capsys):
    """A replay empties its store first: pointed at the live one (`--store`), it stops before touching it."""
    config, inbox, _, _ = maildir_setup
    now = datetime.now(timezone.utc)
    raw, _ = make_mail(sender="pat@customer.example", subject="Kept", date=now)
    deliver(inbox, raw, now - timedelta(minutes=5))
    assert main(["-c", str(config), "once"]) == 0
    live = config.parent / "var" / "mailesc.json"  # write_config's store
    before = live.read_bytes()
    capsys.readouterr()

    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"From x Mon Nov  2 09:00:00 2026\n" + raw)
    assert main(["-c", str(config), "replay", str(mbox), "--store", str(live)]) == 64
    assert "is the live store" in capsys.readouterr().err
    assert live.read_bytes() == before
