"""The policy match key `mailbox`: a rule for the messages of some of the configured mailboxes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from mailesc.errors import ConfigError
from mailesc.model import Message
from mailesc.policies import MATCH_KEYS, Match, load_policies, mailbox_problems

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def message(mailbox: str | None = None, sender="alice@customer.example", folder="INBOX") -> Message:
    made = Message(key="1", folder=folder, message_id="<m@x>", parents=(), subject="Login problem", sender=sender,
                   sender_name="", recipients=("support@example.test",), date=T0, arrived=T0)
    return made if mailbox is None else replace(made, mailbox=mailbox)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(dedent(text), encoding="utf-8")
    return folder


def rule(name, match=None, first_response="4h"):
    match_line = f"match = {match}\n" if match else ""
    return f'[[rule]]\nname = "{name}"\n{match_line}first_response = "{first_response}"\n'


def test_a_message_comes_from_the_default_mailbox_unless_the_engine_says_otherwise():
    assert message().mailbox == "default"
    assert message("billing").mailbox == "billing"


MATCHES = [
    # (id, match table, message, matches?)
    ("one-name", '{ mailbox = "billing" }', message("billing"), True),
    ("other-mailbox", '{ mailbox = "billing" }', message("support"), False),
    ("list-of-names", '{ mailbox = ["vip", "billing"] }', message("billing"), True),
    ("list-without-it", '{ mailbox = ["vip", "sales"] }', message("billing"), False),
    ("case-insensitive", '{ mailbox = "Billing" }', message("billing"), True),
    ("case-insensitive-other-way", '{ mailbox = "billing" }', message("BILLING"), True),
    ("default-mailbox", '{ mailbox = "default" }', message(), True),
    ("no-prefix-match", '{ mailbox = "bill" }', message("billing"), False),
    ("no-wildcards", '{ mailbox = "bill*" }', message("billing"), False),
    ("with-other-keys-all-must-match", '{ mailbox = "billing", from_domain = "bigcorp.example" }',
     message("billing"), False),
    ("with-other-keys-matching", '{ mailbox = "billing", folder = "INBOX" }', message("billing"), True),
]


@pytest.mark.parametrize("match, msg, expected", [m[1:] for m in MATCHES], ids=[m[0] for m in MATCHES])
def test_match_mailbox(tmp_path, match, msg, expected):
    write(tmp_path, {"p.toml": rule("r", match=match)})
    (loaded,) = load_policies(tmp_path).rules
    assert loaded.matches(msg) is expected


def test_first_match_picks_the_rule_of_the_mailbox(tmp_path):
    write(tmp_path, {
        "10-billing.toml": rule("billing", '{ mailbox = "billing" }', "1d"),
        "20-vip.toml": rule("vip", '{ mailbox = ["vip", "vip-eu"] }', "1h"),
        "30-default.toml": rule("everyone-else"),
    })
    policies = load_policies(tmp_path)
    chosen = {box: policies.first_match(message(box)).name for box in ("billing", "vip-eu", "vip", "default")}
    assert chosen == {"billing": "billing", "vip-eu": "vip", "vip": "vip", "default": "everyone-else"}


def test_explain_names_mailbox_among_the_failing_keys():
    match = Match(mailbox=("billing",), folder=("vip",))
    assert match.failures(message("support")) == ["folder", "mailbox"]
    assert match.failures(message("billing", folder="VIP")) == []


def test_mailbox_is_a_known_match_key():
    assert "mailbox" in MATCH_KEYS


@pytest.mark.parametrize("match, key, words", [
    ('{ mailbox = 3 }', "match.mailbox", "must be a string or a list of strings"),
    ('{ mailbox = ["a", 1] }', "match.mailbox", "must be a string or a list of strings"),
    ('{ mailboxes = "a" }', "match.mailboxes", "unknown key (known: from_address,"),
], ids=["number", "list-with-number", "misspelt"])
def test_errors_in_the_mailbox_key_name_file_and_key(tmp_path, match, key, words):
    write(tmp_path, {"broken.toml": rule("r", match=match)})
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path)
    assert f"broken.toml rule 1: {key}: " in str(caught.value) and words in str(caught.value)


def test_the_unknown_key_message_lists_mailbox_among_the_known_ones(tmp_path):
    write(tmp_path, {"broken.toml": rule("r", match='{ mailboxs = "a" }')})
    with pytest.raises(ConfigError, match=r"unknown key \(known: .*contract, mailbox\)"):
        load_policies(tmp_path)


def test_a_rule_for_a_mailbox_that_is_not_configured_is_a_problem(tmp_path):
    write(tmp_path, {"a.toml": rule("billing", '{ mailbox = ["billing", "Vip"] }') + rule("rest"),
                     "b.toml": rule("typo", '{ mailbox = "suport" }')})
    policies = load_policies(tmp_path)
    assert mailbox_problems(policies, tmp_path, ("support", "billing", "vip")) == [
        (str(tmp_path / "b.toml rule 1"), "match.mailbox", "no mailbox is named 'suport' "
                                                           "(configured: billing, support, vip)")]
    assert mailbox_problems(policies, tmp_path, ("default",))[0][2].startswith("no mailbox is named 'billing'")
