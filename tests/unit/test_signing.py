"""The installation secret beside the store, and the HMACs that make mailesc's Message-IDs and marker its own."""

from __future__ import annotations

import hashlib
import stat

import pytest

from mailesc.errors import StoreError
from mailesc.signing import (installation_secret, mail_message_id, marker_is_ours, secret_path, signed_marker)

SECRET = b"k" * 32


def test_the_secret_is_made_once_with_mode_600_and_then_reused(tmp_path):
    store = tmp_path / "var" / "mailesc.json"
    first = installation_secret(store)
    path = secret_path(store)
    assert path == tmp_path / "var" / "mailesc-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32 and installation_secret(store) == first
    assert [p.name for p in path.parent.iterdir()] == ["mailesc-secret"]  # no temp file left behind


def test_a_replay_store_has_its_own_secret(tmp_path):
    assert installation_secret(tmp_path / "mailesc-replay.json") != installation_secret(tmp_path / "mailesc.json")


@pytest.mark.parametrize("content, mode, problem", [
    ("", 0o600, "is damaged"),
    ("not hex at all\n", 0o600, "is damaged"),
    ("abcd\n", 0o600, "is damaged"),  # far too short to be a secret
    ("ab" * 32 + "\n", 0o644, "can be read by other users"),
], ids=["empty", "not-hex", "too-short", "readable-by-others"])
def test_a_bad_secret_file_is_refused_without_printing_it(tmp_path, content, mode, problem):
    path = secret_path(tmp_path / "mailesc.json")
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(StoreError) as error:
        installation_secret(tmp_path / "mailesc.json")
    assert problem in str(error.value) and str(path) in str(error.value)
    assert content.strip() == "" or content.strip() not in str(error.value)


def test_message_ids_are_stable_but_need_the_secret():
    thread = "<root@customer.example>"
    ours = mail_message_id(SECRET, thread, "L1", "escalations@example.test")
    assert ours == mail_message_id(SECRET, thread, "L1", "escalations@example.test")  # a resend is recognisable
    assert ours.endswith(".L1@example.test>") and ours.startswith("<mailesc.")
    assert ours != mail_message_id(b"another installation's secret!!!", thread, "L1", "escalations@example.test")
    assert ours != mail_message_id(SECRET, thread, "L2", "escalations@example.test")
    assert ours != mail_message_id(SECRET, thread, "A", "escalations@example.test")  # an ack's id tells nothing
    old_style = hashlib.sha256(thread.encode()).hexdigest()[:20]
    assert old_style not in ours


@pytest.mark.parametrize("header, message_id, ours", [
    (signed_marker(SECRET, "escalation; level=1; breach=2", "<m@x>"), "<m@x>", True),
    (signed_marker(SECRET, "escalation; level=1; breach=2", "<m@x>").replace("; ", ";\r\n "), "<m@x>", True),
    (signed_marker(SECRET, "escalation; level=1; breach=2", "<m@x>"), "<other@x>", False),
    (signed_marker(SECRET, "escalation; level=1; breach=2", "<m@x>").replace("breach=2", "breach=3"), "<m@x>", False),
    (signed_marker(b"x" * 32, "escalation; level=1; breach=2", "<m@x>"), "<m@x>", False),
    ("escalation; level=1; breach=2", "<m@x>", False),
    ("escalation; level=1; breach=2; sig=", "<m@x>", False),
    ("", "<m@x>", False),
], ids=["signed", "signed-and-refolded", "other-message-id", "value-changed", "other-secret", "unsigned",
        "empty-signature", "empty"])
def test_only_a_marker_signed_for_this_message_is_ours(header, message_id, ours):
    assert marker_is_ours(SECRET, " ".join(header.split()), message_id) is ours
    assert marker_is_ours(b"", header, message_id) is False  # without a secret nothing is ours by its marker
