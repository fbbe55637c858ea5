"""Every bounce and auto-reply in ../shared/corpora must be classified AUTO: none may start a clock."""

from __future__ import annotations

import mailbox
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailesc.classify import People, auto_generated_reason, classify
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
