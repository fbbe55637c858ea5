"""Per-customer contracts: customers.toml / customers.csv in the policies folder, matched by rules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mailesc.errors import ConfigError
from mailesc.model import Message
from mailesc.policies import load_policies

RULES = """
[[rule]]
name = "gold"
match = { contract = "gold" }
first_response = "1h"
[[rule.escalate]]
to = ["manager@example.test"]

[[rule]]
name = "everyone-else"
first_response = "8h"
[[rule.escalate]]
to = ["manager@example.test"]
"""
TOML = """
[customers]
"bigcorp.example" = "gold"
"ceo@acme.example" = "gold"
"acme.example" = "silver"
"""
CSV = "customer,contract\nbigcorp.example,gold\nceo@acme.example,gold\nacme.example,silver\n"


def message(sender: str) -> Message:
    return Message(key="k", folder="INBOX", message_id="<m@x>", parents=(), subject="Help", sender=sender,
                   sender_name="", recipients=("support@example.test",), date=None,
                   arrived=datetime(2026, 10, 5, 9, tzinfo=timezone.utc))


@pytest.mark.parametrize("file, text", [("customers.toml", TOML), ("customers.csv", CSV)], ids=["toml", "csv"])
@pytest.mark.parametrize("sender, contract, rule", [
    ("pat@bigcorp.example", "gold", "gold"),
    ("pat@eu.bigcorp.example", "gold", "gold"),  # a subdomain has its parent's contract
    ("ceo@acme.example", "gold", "gold"),  # an address beats its domain
    ("dev@acme.example", "silver", "everyone-else"),
    ("someone@unknown.example", None, "everyone-else"),  # unknown customers fall through to later rules
], ids=["domain", "subdomain", "address-over-domain", "other-contract", "unknown"])
def test_contracts_pick_the_rule(tmp_path, file, text, sender, contract, rule):
    (tmp_path / "rules.toml").write_text(RULES)
    (tmp_path / file).write_text(text)
    policies = load_policies(tmp_path)
    assert policies.contracts.of(sender) == contract
    assert policies.first_match(message(sender)).name == rule
    assert [r.name for r in policies.rules] == ["gold", "everyone-else"]  # customers.toml is not a policy file


@pytest.mark.parametrize("files, where, problem", [
    ({"customers.csv": "address,plan\nx.example,gold\n"}, "line 1", "customer and contract"),
    ({"customers.csv": "customer,contract\nx.example,\n"}, "line 2", "needs a customer"),
    ({"customers.toml": '[customers]\n"x.example" = "gold"\n[extra]\n'}, "extra", "unknown key"),
    ({"customers.toml": '[customers]\n"x.example" = "gold"\n', "customers.csv": "customer,contract\nx.example,silver\n"},
     "line 2", "already has the contract 'gold'"),
    ({"customers.toml": '[customers]\n"x.example" = "silver"\n'}, "match.contract", "no customer has the contract"),
], ids=["bad-header", "empty-contract", "unknown-key", "two-contracts", "rule-names-unknown-contract"])
def test_customer_file_problems_name_file_and_place(tmp_path, files, where, problem):
    (tmp_path / "rules.toml").write_text(RULES)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_policies(tmp_path)
    assert any(key == where and problem in text for _, key, text in raised.value.problems), raised.value
