"""Every bounce and auto-reply in ../shared/corpora must be classified AUTO: none may start a clock."""

from __future__ import annotations

import mailbox
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailesc.classify import People, auto_generated_reason, classify, machine_hint
from mailesc.model import Kind, RawMessage
from mailesc.parse import parse_message

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
FOLDERS = ("bounces", "auto-replies")
NOT_MESSAGES = {"LICENSE", "NOTICE", "SOURCE.md", "README.md"}
PEOPLE = People(team=("*@example.test",))
SEEN = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def corpus_messages() -> list[tuple[str, bytes]]:
    """(name relative to the corpora folder, raw bytes) of every message, mbox entries one by one."""
    found = []
    for folder in FOLDERS:
        for path in sorted((CORPORA / folder).rglob("*")):
            if not path.is_file() or path.name in NOT_MESSAGES:
                continue
            name = str(path.relative_to(CORPORA))
            if path.parent.name == "mailbox":
                box = mailbox.mbox(str(path), create=False)
                try:
                    found.extend((f"{name}#{key}", box.get_bytes(key)) for key in box.keys())
                finally:
                    box.close()
            else:
                found.append((name, path.read_bytes()))
    return found


def describe(message) -> str:
    names = sorted({name for name, _ in message.headers})
    return f"From={message.sender!r} Subject={message.subject[:70]!r} headers={names}"


def test_every_bounce_and_auto_reply_is_auto(capsys):
    if not all((CORPORA / folder).is_dir() for folder in FOLDERS):
        pytest.skip(f"../shared/corpora is not present: {CORPORA} (needs {', '.join(FOLDERS)})")
    messages = corpus_messages()
    assert len(messages) > 300  # the corpus README lists 389 bounces and 8 auto-replies
    missed = []
    for name, data in messages:
        message = parse_message(RawMessage(key=name, folder="INBOX", data=data, arrived=None), SEEN)
        kind = classify(message, PEOPLE)
        if kind is not Kind.AUTO:
            missed.append(f"{name}: {kind} ({describe(message)})")
        else:
            assert auto_generated_reason(message)
    rate = 1 - len(missed) / len(messages)
    with capsys.disabled():
        print(f"\nauto detection on {CORPORA}: {len(messages) - len(missed)}/{len(messages)} = {rate:.1%}")
        for line in missed:
            print("  missed", line)
    assert not missed, f"{len(missed)} of {len(messages)} not AUTO:\n" + "\n".join(missed)


def _corpus_or_skip(folders=FOLDERS) -> None:
    if not all((CORPORA / folder).is_dir() for folder in folders):
        pytest.skip(f"../shared/corpora is not present: {CORPORA} (needs {', '.join(folders)})")


def parsed(name: str, data: bytes):
    return parse_message(RawMessage(key=name, folder="INBOX", data=data, arrived=None), SEEN)


def forwarded(data: bytes, subject: str) -> bytes:
    """`data` forwarded as an attachment by a relay that keeps none of its headers (as some forwarders do)."""
    return (b"From: Relay <relay@forwarder.example>\r\nTo: support@example.test\r\nSubject: Fwd: "
            + subject.encode("utf-8") + b"\r\nMessage-ID: <fwd@forwarder.example>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="fwd-boundary"\r\n\r\n--fwd-boundary\r\n'
            b"Content-Type: text/plain\r\n\r\nSee below.\r\n--fwd-boundary\r\nContent-Type: message/rfc822\r\n\r\n"
            + data + b"\r\n--fwd-boundary--\r\n")


@pytest.mark.parametrize("convert", [
    lambda data: data.replace(b"\r\n", b"\n").replace(b"\n", b"\r"),
    lambda data: data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\r\n"),
    lambda data: data.replace(b"\r\n", b"\n").replace(b"\n", b"\n\r"),
], ids=["bare-cr", "cr-cr-lf", "lf-cr"])
def test_every_bounce_and_auto_reply_is_auto_whatever_its_line_endings(convert):
    _corpus_or_skip()
    missed = [name for name, data in corpus_messages()
              if classify(parsed(name, convert(data)), PEOPLE, data=convert(data)) is not Kind.AUTO]
    assert not missed, missed


def test_forwarded_bounces_are_auto_when_the_subject_hints_and_the_body_shows_one(capsys):
    """A bounce forwarded by a relay that drops its headers: only the subject hints, the attachment tells."""
    _corpus_or_skip()
    bounces = [(name, data) for name, data in corpus_messages() if name.startswith("bounces/")]
    hinted, missed = 0, []
    for name, data in bounces:
        subject = parsed(name, data).subject
        mail = forwarded(data, subject)
        message = parsed(name, mail)
        assert classify(message, PEOPLE) is Kind.CUSTOMER  # the headers alone say nothing for sure
        if not machine_hint(message):
            continue
        hinted += 1
        if classify(message, PEOPLE, data=mail) is not Kind.AUTO:
            missed.append(f"{name}: {subject[:60]!r}")
    with capsys.disabled():
        print(f"\nforwarded bounces with a hinting subject: {hinted - len(missed)}/{hinted} recognised "
              f"({len(bounces) - hinted} of {len(bounces)} subjects give no hint and stay customer mail)")
    assert hinted > 300
    assert not missed, missed


def test_reading_bodies_changes_nothing_for_other_mail():
    """Real newsletters, spam, replies and odd MIME: where the headers say a person wrote, the body is not
    read, and where it is read it must not turn human mail into a bounce."""
    _corpus_or_skip(("misc-mime",))
    changed = []
    for path in sorted((CORPORA / "misc-mime").rglob("*")):
        if not path.is_file() or path.name in NOT_MESSAGES:
            continue
        data = path.read_bytes()
        try:
            message = parsed(path.name, data)
        except Exception:
            continue  # no header at all: quarantined, never classified
        if classify(message, PEOPLE) is not classify(message, PEOPLE, data=data):
            changed.append(path.name)
    assert not changed, changed
