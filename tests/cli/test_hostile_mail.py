"""Hostile and damaged mail never blocks an escalation (nor a whole replay): header values are cleaned or left
out, and a mail that cannot be composed is recorded as failed with its reason, never pending for ever."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailesc.cli import main
from mailesc.store import Store
from tests.support import CORPORA, MAILDIR, OUTBOX, deliver, make_mail, outbox_mails, write_config

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)
RULES = """
[[rule]]
name = "vip"
match = { from_domain = ["vip.example"] }
first_response = "1h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]

[[rule]]
name = "standard"
first_response = "4h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""

# (name, raw header lines of a customer message): each one made composing the escalation fail before.
HOSTILE = [
    ("encoded-crlf-in-display-name", b"From: =?utf-8?q?Evil=0D=0ABcc=3A_victim=40example=2Eorg?= <a@customer.example>"),
    ("encoded-lf-in-subject", b"From: b@customer.example\r\nSubject: =?utf-8?q?Hi=0ABcc=3A_victim=40example=2Eorg?="),
    ("message-id-of-thousands-of-brackets", b"From: c@customer.example\r\nMessage-ID: <" + b"<" * 5000 + b">"),
    ("references-of-thousands-of-brackets", b"From: d@customer.example\r\nReferences: " + b"<" * 3000),
    ("control-characters-in-name", b"From: \"Ev\x01il\x1b[31m\x7f\" <e@customer.example>"),
    ("very-long-message-id", b"From: f@customer.example\r\nMessage-ID: <" + b"x" * 900 + b"@customer.example>"),
    ("utf7-lone-surrogate-in-name", b"From: =?utf-7?q?+2AA-?= <g@customer.example>"),
    ("bidi-override-in-subject", b"From: h@customer.example\r\nSubject: =?utf-8?q?invoice_=E2=80=AEfdp=2Eexe?="),
]


def hostile_message(headers: bytes, number: int) -> bytes:
    lines = headers.split(b"\r\n")
    if not any(line.lower().startswith(b"subject:") for line in lines):
        lines.append(b"Subject: Problem %d" % number)
    if not any(line.lower().startswith(b"message-id:") for line in lines):
        lines.append(b"Message-ID: <hostile-%d@customer.example>" % number)
    lines += [b"To: support@example.test", b"Date: Mon, 05 Oct 2026 09:00:00 +0000"]
    return b"\r\n".join(lines) + b"\r\n\r\nHello,\r\n\r\nplease help.\r\n"


@pytest.fixture
def setup(tmp_path):
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=RULES)
    import mailbox
    return config, mailbox.Maildir(tmp_path / "Maildir", create=True), tmp_path / "outbox"


def breaches(config, capsys) -> list[dict]:
    assert main(["-c", str(config), "breaches", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_customers_with_hostile_names_subjects_and_ids_are_escalated_with_clean_headers(setup, capsys):
    config, inbox, outbox = setup
    config.write_text(config.read_text() + '\n[daemon]\ndigest_after = 50\n')  # one mail each, no digest
    for number, (_, headers) in enumerate(HOSTILE):
        deliver(inbox, hostile_message(headers, number), T0)

    assert main(["-c", str(config), "once", "--now", (T0 + timedelta(hours=5)).isoformat()]) == 0, \
        capsys.readouterr().err
    capsys.readouterr()

    recorded = breaches(config, capsys)
    assert len(recorded) == len(HOSTILE)
    assert [e["delivery"] for b in recorded for e in b["escalations"]] == ["sent"] * len(HOSTILE)
    mails = outbox_mails(outbox)
    assert len(mails) == len(HOSTILE)
    for mail in mails:
        assert mail["Bcc"] is None and mail["Cc"] is None
        assert list(mail.keys()).count("To") == 1 and mail["To"] == "manager@example.test"
        assert all(ch.isprintable() for name, value in mail.items() for ch in str(value)), dict(mail.items())
        assert all(len(i) < 300 for i in str(mail["References"]).split())  # the absurd ids are left out
        assert "=?" not in str(mail.get("References", ""))  # never RFC 2047 words in References
        [attached] = list(mail.iter_attachments())
        # The original as it was; one with a line over 998 bytes cannot travel as message/rfc822.
        if attached.get_content_type() == "application/octet-stream":
            assert max(len(line) for line in attached.get_content().splitlines()) > 998
        else:
            assert attached.get_content_type() == "message/rfc822"
    assert main(["-c", str(config), "status", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["failed_mails"] == 0


def test_a_mail_that_cannot_be_composed_is_recorded_failed_with_the_reason_and_shown_by_status(setup, capsys):
    config, inbox, outbox = setup
    templates = config.parent / "templates"
    templates.mkdir()
    for name in ("digest.txt.j2",):
        (templates / name).write_text((Path(__file__).resolve().parents[2] / "templates" / name).read_text())
    # A template that works for the sample (and `check`) but not for one customer's thread.
    (templates / "escalation.txt.j2").write_text(
        '{% set mail_subject = "[SLA breach] " ~ subject %}{% if "Crash" in subject %}{{ no_such_variable }}'
        '{% endif %}{{ customer }} waits.\n')
    text = config.read_text()
    config.write_text(re.sub(r'\[templates\]\npath = "[^"]*"', '[templates]\npath = "templates"', text))
    for number, subject in enumerate(["Crash the template", "Fine"]):
        raw, _ = make_mail(sender=f"p{number}@customer.example", subject=subject, date=T0)
        deliver(inbox, raw, T0)

    assert main(["-c", str(config), "once", "--now", (T0 + timedelta(hours=5)).isoformat()]) == 69  # refused
    err = capsys.readouterr().err
    assert "Crash" not in err and "p0@customer.example" not in err  # no customer data in the log

    by_customer = {b["customer"]: b for b in breaches(config, capsys)}
    [failed] = by_customer["p0@customer.example"]["escalations"]
    assert failed["delivery"] == "failed"
    assert failed["error"] == "could not compose the mail: UndefinedError while composing"
    assert [e["delivery"] for e in by_customer["p1@customer.example"]["escalations"]] == ["sent"]
    assert len(outbox_mails(outbox)) == 1

    assert main(["-c", str(config), "status", "--json"]) == 1  # not healthy
    status = json.loads(capsys.readouterr().out)
    assert status["failed_mails"] == 1 and status["pending_mails"] == 0 and status["healthy"] is False
    assert status["last_failed_error"] == "could not compose the mail: UndefinedError while composing"
    assert main(["-c", str(config), "status"]) == 1
    assert "could not compose the mail" in capsys.readouterr().out

    main(["-c", str(config), "once", "--now", (T0 + timedelta(hours=6)).isoformat()])
    assert len(outbox_mails(outbox)) == 1  # not tried again and again: `breaches resend` does that


def test_a_digest_lists_by_policy_priority_then_most_overdue(setup, capsys):
    config, inbox, outbox = setup
    config.write_text(config.read_text() + '\n[daemon]\ndigest_after = 2\n')
    arrivals = [("older@customer.example", T0), ("newer@customer.example", T0 + timedelta(hours=1)),
                ("boss@vip.example", T0 + timedelta(hours=3))]  # due 13:00, 14:00 (standard), 13:00 (vip)
    for sender, when in arrivals:
        raw, _ = make_mail(sender=sender, subject=f"From {sender}", date=when)
        deliver(inbox, raw, when)

    assert main(["-c", str(config), "once", "--now", (T0 + timedelta(hours=8)).isoformat()]) == 0
    [digest] = outbox_mails(outbox)
    text = digest.get_body(("plain",)).get_content()
    order = [text.index(f"From {sender}") for sender, _ in arrivals]
    assert order[2] < order[0] < order[1], text  # vip (the first rule) first, then the most overdue
    assert "overdue by 4h 00m" in text and "overdue by 3h 00m" in text and "Mon 5 Oct 13:00 UTC" in text


# -- damaged messages generated from the shared corpora ----------------------------------------------------------

NOT_MESSAGES = {"LICENSE", "NOTICE", "SOURCE.md", "README.md"}
SEED = 11


def _corpus_files() -> list[Path]:
    return [p for p in sorted(CORPORA.rglob("*")) if p.is_file() and p.name not in NOT_MESSAGES
            and p.parent.name != "mailbox"]


def _damage(rng: random.Random, data: bytes, number: int) -> bytes:
    """One kind of damage that real mail (or a hostile sender) brings, chosen by the seeded generator."""
    kind = rng.choice(["flip", "cut", "header-bomb", "long-header", "absurd-date", "absurd-id", "crlf-name",
                       "references-bomb", "customer"])
    header, _, body = data.partition(b"\n\n") if b"\r\n\r\n" not in data else data.partition(b"\r\n\r\n")
    if kind == "flip":
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 40)):
            position = rng.randrange(len(damaged))
            damaged[position] ^= 1 << rng.randrange(8)
        return bytes(damaged)
    if kind == "cut":
        return data[:rng.randrange(1, max(2, len(data)))]
    customer = b"From: =?utf-8?q?Cust=0D=0Aomer_%d?= <c%d@customer.example>\n" % (number, number)
    if kind == "header-bomb":
        return customer + b"".join(b"X-Bomb-%d: %s\n" % (i, b"x" * rng.randint(1, 80)) for i in range(3000)) + data
    if kind == "long-header":
        return customer + b"Subject: " + b"A" * 200_000 + b"\n" + data
    if kind == "absurd-date":
        date = rng.choice([b"Mon, 01 Jan 0001 00:00:00 +0000", b"Fri, 31 Dec 9999 23:59:59 -2359",
                           b"Thu, 01 Jan 1970 00:00:00 +9999", b"99999999999999", b"Sat, 30 Feb 2026 25:61:61 +0000"])
        return customer + b"Date: " + date + b"\n" + data
    if kind == "absurd-id":
        mid = rng.choice([b"<" * 5000, b"<" + b"x" * 5000 + b"@y>", b"<a\x00b@c>", b"<>", b"<\xff\xfe@c>"])
        return customer + b"Message-ID: " + mid + b"\nIn-Reply-To: " + mid + b"\n" + data
    if kind == "references-bomb":
        refs = b" ".join(b"<r%d.%d@customer.example>" % (number, i) for i in range(5000))
        return customer + b"References: " + refs + b"\n" + data
    if kind == "crlf-name":
        return customer + b"Subject: =?utf-8?b?" + __import__("base64").b64encode(b"Hi\r\nBcc: x@y") + b"?=\n" + data
    return customer + b"Subject: Help with order %d\nDate: Mon, 05 Oct 2026 09:%02d:00 +0000\n\n" % (
        number, number % 60) + body[:2000]


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"{CORPORA} is not present (it sits beside the repository)")
def test_a_replay_of_damaged_corpus_messages_completes_and_every_escalation_is_sent_or_failed(tmp_path, capsys):
    rng = random.Random(SEED)
    files = _corpus_files()
    box = tmp_path / "damaged"
    box.mkdir()
    chosen = rng.sample(files, min(160, len(files)))
    for number, path in enumerate(chosen):
        (box / f"{number:04d}.eml").write_bytes(_damage(rng, path.read_bytes(), number))
    config = write_config(tmp_path, mailbox=MAILDIR, smtp=OUTBOX, rules=RULES)

    code = main(["-c", str(config), "replay", str(box), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    assert "internal error" not in err
    summary = json.loads(out)
    assert summary["messages"] == len(chosen)

    with Store(tmp_path / "var" / "mailesc-replay.json", readonly=True) as store:
        assert len(store.quarantine) == summary["quarantined"]
        assert all(item.reason.strip() for item in store.quarantine.values())
        placed = {m.key for t in store.threads.values() for m in t.messages}
        records = [r for b in store.breaches.values() for r in b.escalations]
    assert summary["breaches"] > 0 and records
    assert not set(store.quarantine) & placed  # a message is quarantined or processed, never both
    assert all(r.delivery.value in ("sent", "failed") for r in records)  # never pending for ever
    assert all(r.error.startswith("could not compose the mail: ") for r in records if r.delivery.value == "failed")
    mails = outbox_mails(tmp_path / "var" / "replay-outbox")
    assert len(mails) == summary["mails"] > 0
    for mail in mails:
        assert mail["Bcc"] is None
        assert all(ch.isprintable() for _, value in mail.items() for ch in str(value))
