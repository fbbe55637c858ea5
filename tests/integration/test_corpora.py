"""Every real-world message in ../shared/corpora goes through intake without an exception."""

from __future__ import annotations

import json
import mailbox as mailboxes
from datetime import datetime, timedelta, timezone

import pytest
from imapclient.exceptions import IMAPClientError

from mailesc.cli import main
from tests.support import CORPORA, ONE_HOUR_RULE, imap_section, smtp_section, write_config

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CORPORA.is_dir(), reason=f"{CORPORA} is not present (it sits beside the repository)"),
]
NOT_MESSAGES = {"LICENSE", "NOTICE", "SOURCE.md", "README.md"}


def corpus_messages() -> list[tuple[str, bytes]]:
    found = []
    for path in sorted(CORPORA.rglob("*")):
        if not path.is_file() or path.name in NOT_MESSAGES:
            continue
        if path.parent.name == "mailbox":
            box = mailboxes.mbox(path, create=False)
            found += [(f"{path}#{key}", box.get_bytes(key)) for key in box.iterkeys()]
        else:
            found.append((str(path), path.read_bytes()))
    return found


def test_every_corpus_message_is_ingested_from_imap_without_an_exception(tmp_path, mailbox, smtp_sink,
                                                                         monkeypatch, capsys):
    monkeypatch.setenv("MAILESC_IMAP_PASSWORD", mailbox.password)
    config = write_config(tmp_path, mailbox=imap_section(mailbox), smtp=smtp_section(smtp_sink), rules=ONE_HOUR_RULE)
    appended, refused = 0, []
    when = datetime.now(timezone.utc) - timedelta(hours=2)
    for name, raw in corpus_messages():
        try:
            mailbox.append("INBOX", raw, when)
            appended += 1
        except IMAPClientError as error:  # the server's own limits, not mailesc's
            refused.append((name, str(error)))
    assert appended > 500, refused

    assert main(["-c", str(config), "once"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.startswith(f"{appended} new message(s)"), out
    assert main(["-c", str(config), "quarantine", "--json"]) == 0
    quarantined = json.loads(capsys.readouterr().out)
    assert all(item["reason"] for item in quarantined)
    assert len(quarantined) <= 5, quarantined  # only messages with no RFC 5322 header at all
    # Every escalation for those threads was composed and accepted, odd encodings included.
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    breaches = json.loads(capsys.readouterr().out)
    assert breaches and all(e["delivery"] == "sent" for b in breaches for e in b["escalations"])
    # Storm control: that many escalations to one manager at once arrive as one digest listing them all.
    [digest] = smtp_sink.messages
    assert digest.message["X-Mailesc"].startswith("digest")
    assert {e["digest"] for b in breaches for e in b["escalations"]} == {digest.message["Message-ID"]}
    text = digest.message.get_body(("plain",)).get_content()
    assert all(f"breach {b['id']}," in text for b in breaches)


def test_every_corpus_message_replays_without_an_exception(tmp_path, capsys):
    config = write_config(tmp_path, mailbox="", smtp="", rules=ONE_HOUR_RULE)
    assert main(["-c", str(config), "replay", str(CORPORA), "--json"]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages"] == len(corpus_messages())
    assert summary["quarantined"] <= 5
    assert summary["ignored_auto"] >= 380  # bounces and auto-replies, see tests/unit for the per-file check
    assert summary["mails"] == len(list((tmp_path / "var" / "replay-outbox" / "new").iterdir()))
    assert summary["escalations"] >= summary["breaches"] > 0
