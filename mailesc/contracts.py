"""Service contracts per customer: policies/customers.toml or policies/customers.csv map addresses and
domains to a contract name, which rules can match with `match = { contract = "gold" }`."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

FILES = ("customers.toml", "customers.csv")


@dataclass(frozen=True)
class Contracts:
    by_customer: dict[str, str] = field(default_factory=dict)  # "ceo@acme.example" or "bigcorp.example" -> name

    def of(self, address: str) -> str | None:
        """The contract of an address: the address itself, else its domain, else a parent domain."""
        address = address.lower()
        if address in self.by_customer:
            return self.by_customer[address]
        domain = address.rpartition("@")[2]
        while domain:
            if domain in self.by_customer:
                return self.by_customer[domain]
            domain = domain.partition(".")[2]
        return None

    def names(self) -> set[str]:
        return set(self.by_customer.values())


def load_contracts(folder: Path, problems: list) -> Contracts:
    """Read customers.toml and customers.csv in the policies folder, if there; append each problem found."""
    found: dict[str, str] = {}
    for name in FILES:
        path = folder / name
        if not path.is_file():
            continue
        entries = _toml(path, problems) if path.suffix == ".toml" else _csv(path, problems)
        for where, customer, contract in entries:
            customer = str(customer).strip().lower().lstrip("@")
            if not customer or not isinstance(contract, str) or not contract.strip():
                problems.append((str(path), where, "needs a customer (address or domain) and a contract name"))
            elif found.get(customer, contract) != contract:
                problems.append((str(path), where, f"{customer} already has the contract {found[customer]!r}"))
            else:
                found[customer] = contract.strip()
    return Contracts(found)


def _toml(path: Path, problems: list):
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        problems.append((str(path), "", f"cannot be read as TOML: {error}"))
        return []
    for key in set(data) - {"customers"}:
        problems.append((str(path), key, 'unknown key (write [customers] with "address or domain" = "contract")'))
    table = data.get("customers", {})
    if not isinstance(table, dict):
        problems.append((str(path), "customers", "must be a table"))
        return []
    return [(f"customers.{customer}", customer, contract) for customer, contract in table.items()]


def _csv(path: Path, problems: list):
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        problems.append((str(path), "", f"cannot be read as CSV: {error}"))
        return []
    if rows and not {"customer", "contract"} <= set(rows[0]):
        problems.append((str(path), "line 1", "the header must name the columns customer and contract"))
        return []
    return [(f"line {number}", row["customer"] or "", row["contract"]) for number, row in enumerate(rows, start=2)]
