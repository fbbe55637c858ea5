"""Policy files (TOML, in policies/): ordered rules, the first that matches a thread's first message applies."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

from mailesc.contracts import FILES as CONTRACT_FILES
from mailesc.contracts import Contracts, load_contracts
from mailesc.durations import parse_duration
from mailesc.errors import ConfigError
from mailesc.hours import ALWAYS_OPEN, Calendar, CalendarError, make_calendar
from mailesc.match_keys import KEYS, Match
from mailesc.model import Message

MATCH_KEYS = tuple(KEYS)  # declared in match_keys.py, one MatchKey each
RULE_KEYS = ("name", "match", "first_response", "escalate", "calendar", "warn_before", "notify", "warn_template",
             "acknowledge", "acknowledge_every", "next_response")
LEVEL_KEYS = ("after", "to", "template", "notify")
NOTIFIER_KINDS = ("webhook",)  # what a level's `notify` can name, as "KIND:NAME" ([webhook.NAME] in the config)
CALENDAR_KEYS = ("timezone", "hours", "holidays", "holidays_country", "holidays_subdiv")


@dataclass(frozen=True)
class Level:
    number: int
    after: timedelta  # counted from the first-response deadline
    to: tuple[str, ...]
    template: str = "escalation"
    notify: tuple[str, ...] = ()  # "webhook:ops": where else the level is told, beside its mail to `to`


@dataclass(frozen=True)
class EarlyWarning:
    """Warn the team before the deadline: with `before` of open time left, or at `share` of the time used."""

    to: tuple[str, ...]
    before: timedelta | None = None
    share: float | None = None  # 0.8 for "80%"
    template: str = "warning"


@dataclass(frozen=True)
class Rule:
    name: str
    source: str  # "file.toml rule 2", for messages to the operator
    match: Match
    first_response: timedelta
    escalate: tuple[Level, ...]
    calendar: Calendar = field(default=ALWAYS_OPEN, compare=False)
    warning: EarlyWarning | None = None
    acknowledge: str | None = None  # template of the acknowledgement to the customer, if any
    acknowledge_every: timedelta = timedelta(days=1)  # at most one acknowledgement per sender this often
    next_response: timedelta | None = None  # a new clock each time the customer writes again after an answer


    def matches(self, message: Message, contract: str | None = None) -> bool:
        return not self.match.failures(message, contract)

    def warn_at(self, received: datetime) -> datetime | None:
        if self.warning is None:
            return None
        if self.warning.share is not None:
            used = self.first_response * self.warning.share
        elif self.warning.before is not None:
            used = self.first_response - self.warning.before
        else:  # a warning has `before` or `share` (checked when the policies are read)
            return None
        return self.calendar.add(received, used)


@dataclass(frozen=True)
class Policies:
    rules: tuple[Rule, ...]
    calendars: dict[str, Calendar] = field(default_factory=lambda: {"always": ALWAYS_OPEN}, compare=False)

    contracts: Contracts = field(default_factory=Contracts, compare=False)

    def tried(self, message: Message) -> Iterator[tuple[Rule, list[str]]]:
        """Each rule in order with the match keys the message fails, up to the first rule that matches."""
        contract = self.contracts.of(message.sender)
        for rule in self.rules:
            failures = rule.match.failures(message, contract)
            yield rule, failures
            if not failures:
                return

    def first_match(self, message: Message) -> Rule | None:
        return next((rule for rule, failures in self.tried(message) if not failures), None)

    def get(self, name: str | None) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def recipients(self) -> tuple[str, ...]:
        """Everybody an escalation can go to: mail addressed only to them is internal."""
        notified = {a for rule in self.rules if rule.warning for a in rule.warning.to}
        escalated = {a for rule in self.rules for level in rule.escalate for a in level.to}
        return tuple(sorted(a.lower() for a in notified | escalated))

    def template_uses(self) -> list[tuple[str, str, str]]:
        """(template name, rule source, key) for every template a rule names, to report a missing one there."""
        uses = []
        for rule in self.rules:
            uses += [(level.template, rule.source, f"escalate[{level.number}].template") for level in rule.escalate]
            if rule.warning:
                uses.append((rule.warning.template, rule.source, "warn_template"))
            if rule.acknowledge:
                uses.append((rule.acknowledge, rule.source, "acknowledge"))
        return uses

    def templates(self) -> set[str]:
        return {name for name, _source, _key in self.template_uses()}


def mailbox_problems(policies: Policies, folder: Path, names) -> list[tuple[str, str, str]]:
    """Rules whose `match.mailbox` names no configured mailbox: they could never match (a typo, or a mailbox
    renamed in the config). The policies do not know the config, so the caller gives the `names`."""
    known = {name.lower() for name in names}
    return [(str(folder / rule.source), "match.mailbox",
             f"no mailbox is named {name!r} (configured: {', '.join(sorted(names))})")
            for rule in policies.rules for name in rule.match.mailbox if name not in known]


def notifier_problems(policies: Policies, folder: Path, webhooks, config_file) -> list[tuple[str, str, str]]:
    """Levels whose `notify` names a webhook the config does not define (`[webhook.NAME]`): the post would fail
    at every breach. The policies do not know the config, so the caller gives the names and the config's file."""
    known = set(webhooks)
    defined = ", ".join(sorted(known)) or "none"
    return [(str(folder / rule.source), f"escalate[{level.number}].notify",
             f"no webhook is named {name!r} in {config_file} (defined: {defined}; add a [webhook.{name}] table)")
            for rule in policies.rules for level in rule.escalate for target in level.notify
            for kind, _, name in [target.partition(":")] if kind == "webhook" and name not in known]


def load_policies(folder: Path) -> Policies:
    """Read every *.toml in `folder`, sorted by name; raise ConfigError naming each problem found."""
    if not folder.is_dir():
        raise ConfigError(folder, "", "the policies folder does not exist")
    problems: list = []
    files = [(path, data) for path in sorted(folder.glob("*.toml"))
             if path.name not in CONTRACT_FILES and (data := _read(path, problems)) is not None]
    contracts = load_contracts(folder, problems)
    calendars = {"always": ALWAYS_OPEN}
    broken: set[str] = set()  # calendars defined with problems: already reported, so not "unknown" in rules
    for path, data in files:
        calendars.update(_calendars(path, data.get("calendars", {}), calendars, problems, broken))
    rules = [rule for path, data in files for rule in _rules(path, data, calendars, problems, broken)]
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.name in seen:
            problems.append((rule.source, "name", f"{rule.name!r} is already used by {seen[rule.name]}"))
        seen.setdefault(rule.name, rule.source)
    for rule in rules:
        for name in set(rule.match.contract) - {n.lower() for n in contracts.names()}:
            problems.append((rule.source, "match.contract", f"no customer has the contract {name!r}"))
    policies = Policies(tuple(rules), calendars, contracts)
    if problems:
        error = ConfigError.many(problems)
        error.partial = policies  # the rules without problems, so that their templates can be checked too
        raise error
    return policies


def _read(path: Path, problems: list) -> dict | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        problems.append((str(path), "", f"cannot be read as TOML: {error}"))
        return None
    for key in data:
        if key not in ("rule", "calendars"):
            problems.append((str(path), key, "unknown key (a policy file holds [[rule]] and [calendars.NAME] tables)"))
    return data


def _calendars(path: Path, tables, known: dict[str, Calendar], problems: list, broken: set[str]) -> dict[str, Calendar]:
    if not isinstance(tables, dict):
        problems.append((str(path), "calendars", "write calendars as [calendars.NAME] tables"))
        return {}
    found = {}
    for name, table in tables.items():
        key = f"calendars.{name}"
        if name in known or name in broken:
            problems.append((str(path), key, f"calendar {name!r} is defined twice"))
            continue
        if not isinstance(table, dict):
            problems.append((str(path), key, "must be a table"))
            broken.add(name)
            continue
        for unknown in set(table) - set(CALENDAR_KEYS):
            problems.append((str(path), f"{key}.{unknown}", f"unknown key (known: {', '.join(CALENDAR_KEYS)})"))
        try:
            found[name] = make_calendar(
                name, zone=table.get("timezone", "UTC"), hours=table.get("hours"),
                holidays_list=table.get("holidays", ()), country=table.get("holidays_country"),
                subdivision=table.get("holidays_subdiv"))
        except CalendarError as error:
            problems.extend((str(path), f"{key}.{sub}", text) for sub, text in error.problems)
            broken.add(name)
            continue
        if found[name].never_open:
            problems.append((str(path), f"{key}.hours", "opens on no day, so no deadline in this calendar could ever "
                                                        "fall due (leave `hours` out for a calendar always open)"))
            broken.add(name)
            del found[name]
    return found


def _rules(path: Path, data: dict, calendars: dict[str, Calendar], problems: list, broken: set[str]) -> list[Rule]:
    tables = data.get("rule", [])
    if not isinstance(tables, list):
        problems.append((str(path), "rule", "write rules as [[rule]] tables"))
        return []
    rules = []
    for index, table in enumerate(tables, start=1):
        report = _Problems(problems, f"{path} rule {index}", f"{path.name} rule {index}")
        rule = _rule(table, calendars, broken, report)
        if rule and not report.found:
            rules.append(rule)
    return rules


class _Problems:
    def __init__(self, problems: list, where: str, source: str):
        self.problems, self.where, self.source, self.found = problems, where, source, False

    def __call__(self, key: str, text: str) -> None:
        self.found = True
        self.problems.append((self.where, key, text))


def _rule(table: dict, calendars: dict[str, Calendar], broken: set[str], problem: _Problems) -> Rule | None:
    if not isinstance(table, dict):
        problem("", "must be a table")
        return None
    _unknown(table, RULE_KEYS, "", problem)
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        problem("name", "every rule needs a name")
        name = "?"
    named = table.get("calendar", "always")
    calendar = calendars.get(named) if isinstance(named, str) else None
    if calendar is None and not (isinstance(named, str) and named in broken):  # a broken one is reported already
        problem("calendar", f"unknown calendar {named!r} (defined: {', '.join(sorted(calendars))})")
    elif calendar is None:
        problem.found = True  # the rule cannot be built without its calendar, and was reported with it
    levels = table.get("escalate", [])
    if not isinstance(levels, list):
        problem("escalate", "write escalation levels as [[rule.escalate]] tables")
        levels = []
    escalate = tuple(level for n, t in enumerate(levels, start=1) if (level := _level(n, t, problem)))
    for before, after in zip(escalate, escalate[1:]):
        if after.after < before.after:
            problem(f"escalate[{after.number}].after", f"level {after.number} comes before level {before.number}")
    return Rule(
        name=name,
        source=problem.source,
        match=Match.read(table.get("match", {}), problem),
        first_response=(first_response := _duration(table, "first_response", problem, required=True)),
        escalate=escalate,
        calendar=calendar or ALWAYS_OPEN,
        warning=_warning(table, first_response, problem),
        acknowledge=_template_name(table["acknowledge"], "acknowledge", problem) if "acknowledge" in table else None,
        acknowledge_every=_duration(table, "acknowledge_every", problem) if "acknowledge_every" in table
        else timedelta(days=1),
        next_response=_duration(table, "next_response", problem) if "next_response" in table else None,
    )


def _warning(table: dict, first_response: timedelta, problem: _Problems) -> EarlyWarning | None:
    if "warn_before" not in table:
        for key in ("notify", "warn_template"):
            if key in table:
                problem(key, "only means something with warn_before")
        return None
    notify = table.get("notify")
    if isinstance(notify, list) and any(isinstance(item, str) and item.startswith("webhook:") for item in notify):
        problem("notify", "the rule's notify lists the early warning's team addresses; a webhook is named in a "
                          'level\'s notify ([[rule.escalate]] notify = ["webhook:NAME"])')
        to: tuple[str, ...] = ()
    else:
        to = _addresses(notify, "notify", problem)
    template = _template_name(table.get("warn_template", "warning"), "warn_template", problem)
    text = str(table["warn_before"]).strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 < share < 1:
            problem("warn_before", f"{text!r}: a share of the deadline is between 0% and 100%, like \"80%\"")
        return EarlyWarning(to=to, share=share, template=template)
    before = _duration(table, "warn_before", problem, required=True)
    if not timedelta(0) < before < first_response:
        problem("warn_before", f"{text!r} must be shorter than first_response")
    return EarlyWarning(to=to, before=before, template=template)


def _level(number: int, table, problem: _Problems) -> Level | None:
    key = f"escalate[{number}]"
    if not isinstance(table, dict):
        problem(key, "must be a table")
        return None
    _unknown(table, LEVEL_KEYS, key + ".", problem)
    to = _addresses(table.get("to"), f"{key}.to", problem)
    template = _template_name(table.get("template", "escalation"), f"{key}.template", problem)
    after = _duration(table, "after", problem, prefix=key + ".", required=False)
    notify = _notifiers(table.get("notify", []), f"{key}.notify", problem)
    return Level(number=number, after=after, to=tuple(to), template=template, notify=notify)


def _notifiers(value, key: str, problem: _Problems) -> tuple[str, ...]:
    """A level's `notify`: a list of "KIND:NAME" like "webhook:ops". Whether the config defines the name is
    checked where the config is known (notifier_problems): `mailesc check`, and at start."""
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problem(key, 'must list notifiers like ["webhook:ops"]')
        return ()
    found = []
    for item in value:
        kind, colon, name = item.partition(":")
        if not colon or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            problem(key, f'{item!r}: a notifier is written KIND:NAME, like "webhook:ops"')
        elif kind not in NOTIFIER_KINDS:
            problem(key, f"{item!r}: unknown notifier kind {kind!r} (known: {', '.join(NOTIFIER_KINDS)})"
                    + ("" if "@" not in item else "; mail addresses go in `to`"))
        elif item in found:
            problem(key, f"{item!r} is listed twice")
        else:
            found.append(item)
    return tuple(found)


def _addresses(value, key: str, problem: _Problems) -> tuple[str, ...]:
    value = [value] if isinstance(value, str) else value
    if not value or not isinstance(value, list) or not all(isinstance(a, str) and "@" in a for a in value):
        problem(key, "must list at least one e-mail address")
        return ()
    return tuple(value)


def _template_name(value, key: str, problem: _Problems) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[\w.-]+", value):
        problem(key, f"must be a template name like 'escalation', not {value!r}")
        return "escalation"
    return value


def _duration(table: dict, key: str, problem: _Problems, prefix: str = "", required: bool = False) -> timedelta:
    if key not in table:
        if required:
            problem(prefix + key, "is required (e.g. \"4h\")")
        return timedelta(0)
    try:
        return parse_duration(table[key])
    except ValueError as error:
        problem(prefix + key, str(error))
        return timedelta(0)


def _unknown(table: dict, known: tuple[str, ...], prefix: str, problem: _Problems) -> None:
    for key in table:
        if key not in known:
            problem(prefix + key, f"unknown key (known: {', '.join(known)})")
