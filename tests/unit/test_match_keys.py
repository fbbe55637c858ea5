"""The policy match keys, one declaration each (match_keys.KEYS): how each reads its value, the problems it
names, how it tests a message, and the README's table, which must say what the declarations say."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import pytest

from mailesc.match_keys import KEYS, Match
from mailesc.model import Message
from mailesc.policies import MATCH_KEYS
from tests.support import REPO

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def message(sender="alice@customer.example", subject="Login problem", recipients=("support@example.test",),
            folder="INBOX", headers=(), mailbox="default") -> Message:
    made = Message(key="1", folder=folder, message_id="<m@x>", parents=(), subject=subject, sender=sender,
                   sender_name="", recipients=tuple(recipients), date=T0, arrived=T0,
                   headers=tuple((name.lower(), value) for name, value in headers))
    return replace(made, mailbox=mailbox)


@dataclass(frozen=True)
class Problem:
    key: str
    text: str


def read(table) -> tuple[Match, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    return Match.read(table, lambda key, text: problems.append((key, text))), problems


# -- reading values ----------------------------------------------------------------------------------------------

READ = [
    # (id, key, value in the policy file, the value it is read as, or the (key, problem) it gives)
    ("from-address-string", "from_address", "CEO@BigCorp.example", ("ceo@bigcorp.example",)),
    ("from-address-list", "from_address", ["a@x.example", "*@y.example"], ("a@x.example", "*@y.example")),
    ("from-address-number", "from_address", 3, Problem("match.from_address", "must be a string or a list of strings")),
    ("from-domain-at", "from_domain", ["@BigCorp.example"], ("bigcorp.example",)),
    ("from-domain-list-with-number", "from_domain", ["a.example", 1],
     Problem("match.from_domain", "must be a string or a list of strings")),
    ("to-address", "to_address", "VIP@example.test", ("vip@example.test",)),
    ("to-address-table", "to_address", {"a": "b"}, Problem("match.to_address", "must be a string or a list of strings")),
    ("subject", "subject", "(?i)outage", re.compile("(?i)outage")),
    ("subject-list", "subject", ["a"], Problem("match.subject", "must be a regular expression string")),
    ("subject-broken", "subject", "(unclosed",
     Problem("match.subject", "is not a valid regular expression: missing ), unterminated subpattern at position 0")),
    ("header", "header", {"X-Plan": "gold"}, (("x-plan", re.compile("gold")),)),
    ("header-not-a-table", "header", "X-Plan: gold", Problem("match.header", "must be a table of header name = regex")),
    ("header-broken", "header", {"X-Plan": "[gold"},
     Problem("match.header.X-Plan", "is not a valid regular expression: unterminated character set at position 0")),
    ("header-value-number", "header", {"X-Plan": 1}, Problem("match.header.X-Plan", "must be a regular expression string")),
    ("folder", "folder", ["VIP", "Urgent"], ("vip", "urgent")),
    ("folder-bool", "folder", True, Problem("match.folder", "must be a string or a list of strings")),
    ("contract", "contract", "Gold", ("gold",)),
    ("contract-number", "contract", 1, Problem("match.contract", "must be a string or a list of strings")),
    ("mailbox", "mailbox", ["Billing"], ("billing",)),
    ("mailbox-list-with-number", "mailbox", ["a", 1], Problem("match.mailbox", "must be a string or a list of strings")),
]


@pytest.mark.parametrize("key, value, expected", [r[1:] for r in READ], ids=[r[0] for r in READ])
def test_each_key_reads_its_value_or_names_the_problem(key, value, expected):
    match, problems = read({key: value})
    if isinstance(expected, Problem):
        assert problems == [(expected.key, expected.text)]
        assert getattr(match, key) == KEYS[key].empty  # a key read with a problem tests nothing
    else:
        assert problems == []
        assert getattr(match, key) == expected


def test_unknown_keys_are_named_with_every_known_key():
    match, problems = read({"sender": "x@y.example", "from_domain": "y.example"})
    assert problems == [("match.sender", "unknown key (known: from_address, from_domain, to_address, subject, "
                                         "header, folder, contract, mailbox)")]
    assert match == Match(from_domain=("y.example",))


def test_a_match_that_is_not_a_table_is_a_problem():
    assert read(["from_domain"]) == (Match(), [("match", "must be a table like { from_domain = [...] }")])


# -- testing messages --------------------------------------------------------------------------------------------

TESTS = [
    # (id, key, value as written, message, contract, matches?)
    ("from-address-wildcard", "from_address", "*@bigcorp.example", message("x@bigcorp.example"), None, True),
    ("from-address-not-subdomain", "from_address", "*@bigcorp.example", message("x@eu.bigcorp.example"), None,
     False),
    ("from-domain-subdomain", "from_domain", "bigcorp.example", message("x@eu.bigcorp.example"), None, True),
    ("from-domain-suffix-only", "from_domain", "bigcorp.example", message("x@notbigcorp.example"), None, False),
    ("to-address-cc", "to_address", "vip-*@example.test", message(recipients=("a@b.example", "vip-eu@example.test")),
     None, True),
    ("to-address-other", "to_address", "vip@example.test", message(), None, False),
    ("subject-searched", "subject", "invoice", message(subject="Re: your invoice 12"), None, True),
    ("subject-case-sensitive", "subject", "outage", message(subject="OUTAGE"), None, False),
    ("header-any-value", "header", {"X-Tag": "vip"}, message(headers=[("X-Tag", "new"), ("X-Tag", "vip")]), None,
     True),
    ("header-missing", "header", {"X-Tag": "vip"}, message(), None, False),
    ("folder-no-case", "folder", "vip", message(folder="VIP"), None, True),
    ("folder-other", "folder", "vip", message(), None, False),
    ("contract", "contract", "gold", message(), "Gold", True),
    ("contract-other", "contract", "gold", message(), "silver", False),
    ("contract-none", "contract", "gold", message(), None, False),
    ("mailbox", "mailbox", ["billing", "vip"], message(mailbox="Billing"), None, True),
    ("mailbox-other", "mailbox", "billing", message(), None, False),
]


@pytest.mark.parametrize("key, value, msg, contract, expected", [t[1:] for t in TESTS], ids=[t[0] for t in TESTS])
def test_each_key_tests_a_message(key, value, msg, contract, expected):
    match, problems = read({key: value})
    assert problems == []
    assert match.failures(msg, contract) == ([] if expected else [key])


def test_every_declared_key_has_cases_above():
    """A key added to KEYS without reading and matching cases here fails this test."""
    assert {r[1] for r in READ} == set(KEYS) == {t[1] for t in TESTS}


def test_failures_are_named_in_the_order_of_the_declarations():
    match = Match(mailbox=("billing",), folder=("vip",), from_domain=("bigcorp.example",))
    assert match.failures(message()) == ["from_domain", "folder", "mailbox"]
    assert list(MATCH_KEYS) == list(KEYS)


def test_a_key_given_empty_tests_nothing():
    match, problems = read({"from_address": [], "header": {}})
    assert problems == [] and match == Match() and match.failures(message()) == []


def test_a_match_is_frozen_and_survives_a_copy():
    import copy
    import pickle

    match = Match(subject=re.compile("x"), folder=("vip",))
    with pytest.raises(AttributeError):
        match.folder = ("other",)
    with pytest.raises(TypeError, match="sender"):
        Match(sender=("x",))
    assert copy.deepcopy(match) == match == pickle.loads(pickle.dumps(match))
    assert hash(match) == hash(Match(folder=("vip",), subject=re.compile("x")))


# -- the README --------------------------------------------------------------------------------------------------

def test_the_readme_table_of_match_keys_says_what_the_declarations_say():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| match key | matches when |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        found = re.fullmatch(r"\| `(\w+)` \| (.*) \|", line)
        assert found, line
        rows.append(found.groups())
    assert rows == [(key.name, key.help) for key in KEYS.values()]
