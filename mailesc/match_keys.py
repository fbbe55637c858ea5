"""The keys a policy rule can match on (`match = { from_domain = [...] }`), one declaration each.

A key is its name, how its value in a policy file is read (with a problem naming the key when it is wrong), how
the value tests a message, and the one line that explains it in the README (a test holds the README's table to
these lines). policies.py builds a rule's Match from KEYS and asks it which keys a message fails; `check`
reports the problems found while reading; `policies explain` names the failing keys, in the order of KEYS.

Adding a key is one MatchKey in KEYS (and its tests): nothing else needs to know it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Callable

from mailesc.model import Message

Problem = Callable[[str, str], None]  # (key, text): a problem in the policy file, named by its key


@dataclass(frozen=True)
class Candidate:
    """What a key can test: the first customer message of a thread, and the sender's contract (if any)."""

    message: Message
    contract: str | None = None

    @property
    def domain(self) -> str:
        return self.message.sender.rpartition("@")[2]


@dataclass(frozen=True)
class MatchKey:
    name: str
    parse: Callable[[Any, str, Problem], Any]  # (value in the file, "match.NAME", problem) -> the value to test
    test: Callable[[Any, Candidate], bool]  # (parsed value, candidate) -> does it match
    help: str  # "matches when ...": the README's line for this key
    empty: Any = ()  # the value of a key that is not given: not tested


# -- how values are read -----------------------------------------------------------------------------------------


def words(value, key: str, problem: Problem) -> tuple[str, ...]:
    """A string or a list of strings, in lower case (addresses, domains and names match without case)."""
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problem(key, "must be a string or a list of strings")
        return ()
    return tuple(v.lower() for v in value)


def domains(value, key: str, problem: Problem) -> tuple[str, ...]:
    """Like words; "@example.com" is read as "example.com"."""
    return tuple(d.lstrip("@") for d in words(value, key, problem))


def regex(value, key: str, problem: Problem) -> re.Pattern | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problem(key, "must be a regular expression string")
        return None
    try:
        return re.compile(value)
    except re.error as error:
        problem(key, f"is not a valid regular expression: {error}")
        return None


def header_patterns(value, key: str, problem: Problem) -> tuple[tuple[str, re.Pattern], ...]:
    """A table of header name = regular expression; a problem names the header (`match.header.X-Plan`)."""
    if not isinstance(value, dict):
        problem(key, "must be a table of header name = regex")
        return ()
    return tuple((name.lower(), rx) for name, text in value.items() if (rx := regex(text, f"{key}.{name}", problem)))


# -- the keys, in the order `policies explain` names them -----------------------------------------------------------

KEYS: dict[str, MatchKey] = {key.name: key for key in (
    MatchKey("from_address", words,
             lambda patterns, c: any(fnmatchcase(c.message.sender, p) for p in patterns),
             "the sender is one of these addresses (`*` wildcards allowed: `\"*@bigcorp.example\"`)"),
    MatchKey("from_domain", domains,
             lambda names, c: any(c.domain == d or c.domain.endswith("." + d) for d in names),
             "the sender's domain is one of these, or a subdomain of one"),
    MatchKey("to_address", words,
             lambda patterns, c: any(fnmatchcase(r, p) for r in c.message.recipients for p in patterns),
             "any To/Cc recipient is one of these (e.g. a `vip@` alias; wildcards allowed)"),
    MatchKey("subject", regex,
             lambda rx, c: bool(rx.search(c.message.subject)),
             "the regular expression is found in the subject", empty=None),
    MatchKey("header", header_patterns,
             lambda pairs, c: all(any(rx.search(v) for v in c.message.header_values(name)) for name, rx in pairs),
             "a table of header name → regular expression; every header must match"),
    MatchKey("folder", words,
             lambda names, c: c.message.folder.lower() in names,
             "the message arrived in one of these folders"),
    MatchKey("contract", words,
             lambda names, c: c.contract is not None and c.contract.lower() in names,
             "the sender's contract (from `customers.toml` or `customers.csv`, below) is one of these"),
    MatchKey("mailbox", words,
             lambda names, c: c.message.mailbox.lower() in names,
             "the message came from one of these configured mailboxes (their `name`; `\"default\"` with one "
             "`[mailbox]` table)"),
)}


class Match:
    """The keys a rule matches on, each with its parsed value. Every key given must match; an empty Match
    matches every message. `Match(from_domain=("example.com",))` and `match.from_domain` work for every key
    in KEYS (a key not given reads as its empty value)."""

    __slots__ = ("given",)

    def __init__(self, **values):
        unknown = set(values) - set(KEYS)
        if unknown:
            raise TypeError(f"unknown match key(s): {', '.join(sorted(unknown))}")
        given = {name: values[name] for name in KEYS if name in values and values[name]}  # in the order of KEYS
        object.__setattr__(self, "given", given)

    @classmethod
    def read(cls, table, problem: Problem) -> "Match":
        """The Match of a rule's `match` table; each problem is named by its key (`match.subject`)."""
        if not isinstance(table, dict):
            problem("match", "must be a table like { from_domain = [...] }")
            return cls()
        for key in table:
            if key not in KEYS:
                problem(f"match.{key}", f"unknown key (known: {', '.join(KEYS)})")
        return cls(**{name: KEYS[name].parse(table[name], f"match.{name}", problem) for name in KEYS if name in table})

    def failures(self, message: Message, contract: str | None = None) -> list[str]:
        """The match keys that `message` (from a customer with `contract`) fails, to explain a rule."""
        candidate = Candidate(message, contract)
        return [name for name, value in self.given.items() if not KEYS[name].test(value, candidate)]

    def __getattr__(self, name: str):
        if name in KEYS:
            return self.given.get(name, KEYS[name].empty)
        raise AttributeError(name)

    def __setattr__(self, name, value):
        raise AttributeError("a Match is frozen")

    def __eq__(self, other) -> bool:
        return isinstance(other, Match) and self.given == other.given

    def __hash__(self) -> int:
        return hash(tuple(self.given.items()))

    def __repr__(self) -> str:
        return "Match(" + ", ".join(f"{name}={value!r}" for name, value in self.given.items()) + ")"

    def __reduce__(self):  # copy and pickle build it again from its keys (it is frozen)
        return _match_of, (dict(self.given),)


def _match_of(given: dict) -> Match:
    return Match(**given)
