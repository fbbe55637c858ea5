"""Policy files: loading, ordering, matching and the errors an operator sees."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from mailesc.errors import ConfigError
from mailesc.model import Message
from mailesc.policies import Match, load_policies

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def message(sender="alice@customer.example", subject="Login problem", recipients=("support@example.test",),
            folder="INBOX", headers=()):
    return Message(key="1", folder=folder, message_id="<m@x>", parents=(), subject=subject, sender=sender,
                   sender_name="", recipients=tuple(recipients), date=T0, arrived=T0,
                   headers=tuple((name.lower(), value) for name, value in headers))


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(dedent(text), encoding="utf-8")
    return folder


def rule(name, first_response="4h", match=None, extra=""):
    match_line = f"match = {match}\n" if match else ""
    return f'[[rule]]\nname = "{name}"\n{match_line}first_response = "{first_response}"\n{extra}\n'


# -- loading and order ------------------------------------------------------------------------------------------

def test_a_full_rule_loads(tmp_path):
    policies = load_policies(write(tmp_path, {"default.toml": """
        [[rule]]
        name = "vip"
        match = { from_domain = ["BigCorp.example"], subject = "(?i)outage" }
        first_response = "1h30m"
        [[rule.escalate]]
        after = "0m"
        to = ["manager@example.test"]
        [[rule.escalate]]
        after = "2h"
        to = ["director@example.test", "cto@example.test"]
        template = "urgent"
        """}))
    (vip,) = policies.rules
    assert vip.name == "vip"
    assert vip.source == "default.toml rule 1"
    assert vip.first_response == timedelta(hours=1, minutes=30)
    assert [(level.number, level.after, level.to, level.template) for level in vip.escalate] == [
        (1, timedelta(0), ("manager@example.test",), "escalation"),
        (2, timedelta(hours=2), ("director@example.test", "cto@example.test"), "urgent"),
    ]
    assert vip.match.from_domain == ("bigcorp.example",)
    assert policies.get("vip") is vip and policies.get("nope") is None
    assert policies.recipients() == ("cto@example.test", "director@example.test", "manager@example.test")
    assert policies.templates() == {"escalation", "urgent"}


def test_rules_are_ordered_by_file_name_then_by_order_in_the_file(tmp_path):
    write(tmp_path, {
        "b-later.toml": rule("b1") + rule("b2"),
        "a-first.toml": rule("a1") + rule("a2") + rule("a3"),
        "notes.txt": "not a policy file",
    })
    assert [r.name for r in load_policies(tmp_path).rules] == ["a1", "a2", "a3", "b1", "b2"]


def test_first_match_wins_across_files(tmp_path):
    write(tmp_path, {
        "10-vip.toml": rule("vip-urgent", "1h", '{ from_domain = "bigcorp.example", subject = "(?i)urgent" }')
        + rule("vip", "2h", '{ from_domain = "bigcorp.example" }'),
        "20-default.toml": rule("default", "4h"),
    })
    policies = load_policies(tmp_path)
    cases = {
        ("ceo@bigcorp.example", "URGENT: site down"): "vip-urgent",
        ("ceo@bigcorp.example", "Question"): "vip",
        ("alice@customer.example", "URGENT: site down"): "default",
    }
    for (sender, subject), expected in cases.items():
        assert policies.first_match(message(sender=sender, subject=subject)).name == expected, (sender, subject)


def test_no_rule_matches_gives_none(tmp_path):
    write(tmp_path, {"only.toml": rule("vip", match='{ from_domain = "bigcorp.example" }')})
    assert load_policies(tmp_path).first_match(message()) is None


def test_an_empty_policies_folder_has_no_rules(tmp_path):
    assert load_policies(tmp_path).rules == ()


def test_a_missing_policies_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_policies(tmp_path / "nope")


# -- matching ---------------------------------------------------------------------------------------------------

MATCHES = [
    # (id, match table, message, matches?)
    ("no-match-table-matches-everything", None, message(), True),
    ("empty-match-table-matches-everything", "{}", message(), True),
    ("from-address-exact", '{ from_address = "ceo@bigcorp.example" }', message("ceo@bigcorp.example"), True),
    ("from-address-case-insensitive", '{ from_address = "CEO@BigCorp.example" }', message("ceo@bigcorp.example"),
     True),
    ("from-address-other", '{ from_address = "ceo@bigcorp.example" }', message("cfo@bigcorp.example"), False),
    ("from-address-wildcard", '{ from_address = "*@bigcorp.example" }', message("anyone@bigcorp.example"), True),
    ("from-address-wildcard-not-subdomain", '{ from_address = "*@bigcorp.example" }',
     message("anyone@mail.bigcorp.example"), False),
    ("from-address-wildcard-other-domain", '{ from_address = "*@bigcorp.example" }',
     message("anyone@bigcorp.example.evil"), False),
    ("from-address-list", '{ from_address = ["a@x.example", "ceo@bigcorp.example"] }',
     message("ceo@bigcorp.example"), True),
    ("from-domain", '{ from_domain = "bigcorp.example" }', message("ceo@bigcorp.example"), True),
    ("from-domain-subdomain", '{ from_domain = "bigcorp.example" }', message("ceo@eu.mail.bigcorp.example"), True),
    ("from-domain-with-at", '{ from_domain = "@bigcorp.example" }', message("ceo@bigcorp.example"), True),
    ("from-domain-upper-case", '{ from_domain = "BIGCORP.example" }', message("ceo@bigcorp.example"), True),
    ("from-domain-suffix-is-not-subdomain", '{ from_domain = "bigcorp.example" }',
     message("ceo@notbigcorp.example"), False),
    ("from-domain-parent-is-not-match", '{ from_domain = "eu.bigcorp.example" }', message("ceo@bigcorp.example"),
     False),
    ("to-address", '{ to_address = "vip@example.test" }',
     message(recipients=("support@example.test", "vip@example.test")), True),
    ("to-address-wildcard", '{ to_address = "vip-*@example.test" }', message(recipients=("vip-eu@example.test",)),
     True),
    ("to-address-other", '{ to_address = "vip@example.test" }', message(), False),
    ("subject-regex", '{ subject = "(?i)outage|down" }', message(subject="Site is DOWN"), True),
    ("subject-regex-searches-anywhere", '{ subject = "invoice" }', message(subject="Re: your invoice 12"), True),
    ("subject-regex-case-sensitive-by-default", '{ subject = "outage" }', message(subject="OUTAGE"), False),
    ("subject-regex-no-match", '{ subject = "(?i)outage" }', message(), False),
    ("header", '{ header = { "X-Priority" = "^1" } }', message(headers=[("X-Priority", "1 (Highest)")]), True),
    ("header-other-value", '{ header = { "X-Priority" = "^1" } }', message(headers=[("X-Priority", "3")]), False),
    ("header-missing", '{ header = { "X-Priority" = "^1" } }', message(), False),
    ("header-all-must-match", '{ header = { "X-Priority" = "^1", "X-Plan" = "gold" } }',
     message(headers=[("X-Priority", "1"), ("X-Plan", "silver")]), False),
    ("header-any-value-of-repeated-header", '{ header = { "X-Tag" = "vip" } }',
     message(headers=[("X-Tag", "new"), ("X-Tag", "vip")]), True),
    ("folder", '{ folder = "VIP" }', message(folder="VIP"), True),
    ("folder-case-insensitive", '{ folder = ["vip", "urgent"] }', message(folder="Urgent"), True),
    ("folder-other", '{ folder = "VIP" }', message(folder="INBOX"), False),
    ("all-keys-must-match", '{ from_domain = "bigcorp.example", subject = "(?i)urgent" }',
     message("ceo@bigcorp.example", subject="hello"), False),
]


@pytest.mark.parametrize("match, msg, expected", [m[1:] for m in MATCHES], ids=[m[0] for m in MATCHES])
def test_match(tmp_path, match, msg, expected):
    write(tmp_path, {"p.toml": rule("r", match=match)})
    (loaded,) = load_policies(tmp_path).rules
    assert loaded.matches(msg) is expected
    assert (load_policies(tmp_path).first_match(msg) is not None) is expected


FAILURES = [
    ("none", Match(), message(), []),
    ("one-key", Match(from_domain=("bigcorp.example",)), message(), ["from_domain"]),
    ("passing-key-not-named", Match(from_domain=("customer.example",), subject=re.compile("nope")), message(),
     ["subject"]),
    ("every-key", Match(from_address=("x@y.example",), from_domain=("y.example",), to_address=("vip@example.test",),
                        subject=re.compile("nope"), header=(("x-plan", re.compile("gold")),), folder=("vip",)),
     message(), ["from_address", "from_domain", "to_address", "subject", "header", "folder"]),
]


@pytest.mark.parametrize("match, msg, failing", [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_match_failures_name_the_failing_keys(match, msg, failing):
    assert match.failures(msg) == failing


# -- errors -----------------------------------------------------------------------------------------------------

ERRORS = [
    # (id, file text, the key the error must name, a word of the explanation)
    ("bad-duration", rule("r", "4 hours"), "first_response", "not a duration"),
    ("negative-duration", rule("r", "-1h"), "first_response", "not a duration"),
    ("missing-first-response", '[[rule]]\nname = "r"\n', "first_response", "required"),
    ("bad-subject-regex", rule("r", match='{ subject = "(unclosed" }'), "match.subject", "regular expression"),
    ("bad-header-regex", rule("r", match='{ header = { "X-Plan" = "[gold" } }'), "match.header.X-Plan",
     "regular expression"),
    ("unknown-match-key", rule("r", match='{ sender = "x@y.example" }'), "match.sender", "unknown key"),
    ("unknown-rule-key", rule("r", extra='first_reponse = "1h"'), "first_reponse", "unknown key"),
    ("escalate-to-empty", rule("r", extra='[[rule.escalate]]\nafter = "0m"\nto = []'), "escalate[1].to",
     "e-mail address"),
    ("escalate-to-missing", rule("r", extra='[[rule.escalate]]\nafter = "0m"'), "escalate[1].to", "e-mail address"),
    ("escalate-to-not-an-address", rule("r", extra='[[rule.escalate]]\nafter = "0m"\nto = ["manager"]'),
     "escalate[1].to", "e-mail address"),
    ("escalate-bad-after", rule("r", extra='[[rule.escalate]]\nafter = "soon"\nto = ["m@example.test"]'),
     "escalate[1].after", "not a duration"),
    ("level-2-before-level-1", rule("r", extra='[[rule.escalate]]\nafter = "2h"\nto = ["m@example.test"]\n'
                                               '[[rule.escalate]]\nafter = "1h"\nto = ["d@example.test"]'),
     "escalate[2].after", "level 2"),
    ("missing-name", '[[rule]]\nfirst_response = "1h"\n', "name", "name"),
    ("invalid-toml", "[[rule]]\nname = \n", "", "TOML"),
]


@pytest.mark.parametrize("text, key, words", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_the_file_and_key(tmp_path, text, key, words):
    write(tmp_path, {"good.toml": rule("fine"), "broken.toml": text})
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path)
    message = str(caught.value)
    assert "broken.toml" in message and "good.toml" not in message
    if key:
        assert f": {key}: " in message
    assert words in message


def test_duplicate_rule_name_across_files_names_both_places(tmp_path):
    write(tmp_path, {"a.toml": rule("default"), "b.toml": rule("other") + rule("default")})
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path)
    message = str(caught.value)
    assert "b.toml rule 2: name:" in message
    assert "a.toml rule 1" in message and "'default'" in message


def test_every_problem_is_reported_at_once(tmp_path):
    write(tmp_path, {"a.toml": rule("one", "soon") + rule("two", match='{ subject = "(" }')})
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path)
    keys = [key for _, key, _ in caught.value.problems]
    assert keys == ["first_response", "match.subject"]
    assert len(str(caught.value).splitlines()) == 2


def test_equal_level_times_are_allowed(tmp_path):
    write(tmp_path, {"a.toml": rule("r", extra='[[rule.escalate]]\nafter = "1h"\nto = ["m@example.test"]\n'
                                                '[[rule.escalate]]\nafter = "1h"\nto = ["d@example.test"]')})
    assert [level.number for level in load_policies(tmp_path).rules[0].escalate] == [1, 2]
