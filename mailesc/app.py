"""What each command does, wired from config to engine. cli.py parses arguments and prints; this does the work."""

from __future__ import annotations

import email.policy
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

from mailesc import defaults, sla
from mailesc.classify import auto_generated_reason, classify, spam_reason
from mailesc.clock import SimulatedClock, SystemClock, isoformat, parse_iso
from mailesc.durations import format_duration
from mailesc.config import Config, MailboxConfig, credential_problems
from mailesc.cycle import CycleReport, Engine, who_is_who
from mailesc.daily import DailyDigest
from mailesc.errors import ConfigError, MessageFileError, ParseError, SourceError, StoreBusy, UsageError, did_you_mean
from mailesc.model import Delivery, Kind, MailKind, RawMessage, Status
from mailesc.notifiers import Notifier, ReplayNotifier
from mailesc.queue import daily_state, latest_daily
from mailesc.records import breach, open_records, store_path  # noqa: F401  (app.breach, app.open_records too)
from mailesc.parse import parse_message
from mailesc.policies import Policies, load_policies, mailbox_problems, notifier_problems
from mailesc.render import Templates
from mailesc.reviews import ReviewEntry, check_cause, reviews_path
from mailesc.sources import open_source
from mailesc.sources.files import FileMailbox
from mailesc.sources.replay import ReplaySource
from mailesc.store import DryRunStore, Store, archive_folder
from mailesc.transports import open_transport
from mailesc.transports.maildir import MaildirOutbox
from mailesc.worker import Worker

if TYPE_CHECKING:
    from mailesc import repository
    from mailesc.sources import Source
    from mailesc.notifiers.webhook import WebhookNotifier
    from mailesc.stores.copy import CopyResult
    from mailesc.stores.postgres import PostgresStore
    from mailesc.transports import Transport

log = logging.getLogger("mailesc")
_UNKNOWN = datetime(9999, 1, 1, tzinfo=timezone.utc)  # "no time known" while parsing for explain

SAMPLE_CONTEXT: dict[str, Any] = {
    "customer": "customer@example.com", "customer_name": "Pat Customer", "subject": "Cannot log in",
    "policy": "default", "received": "2026-01-05T09:00:00+00:00", "due": "2026-01-05T13:00:00+00:00",
    "overdue_by": "1h", "level": 1, "recipients": ["manager@example.com"], "excerpt": "Hello, I cannot log in.",
    "defects": [], "thread": "<sample@example.com>", "breach_id": 1, "now": "2026-01-05T14:00:00+00:00",
    "messages": [{"from": "customer@example.com", "subject": "Cannot log in",
                  "arrived": "2026-01-05T09:00:00+00:00", "kind": "customer"}],
    "omitted": [], "time_left": "15m",
    "clock": "first_response", "first_received": "2026-01-05T09:00:00+00:00", "waiting_for": "5h 00m",
    "received_iso": "2026-01-05T09:00:00+00:00", "due_iso": "2026-01-05T13:00:00+00:00",
    "now_iso": "2026-01-05T14:00:00+00:00", "timezone": "UTC", "answers": [], "last_answer_excerpt": None,
}
SAMPLE_CONTEXT["messages"][0]["arrived_iso"] = SAMPLE_CONTEXT["messages"][0]["arrived"]
SAMPLE_CONTEXT["escalations"], SAMPLE_CONTEXT["count"] = [dict(SAMPLE_CONTEXT)], 1
# The same for a next-response breach: the customer wrote again after the team's answer.
NEXT_RESPONSE_SAMPLE = {**SAMPLE_CONTEXT, "clock": "next_response", "received": "Tue 6 Jan 10:00 UTC",
                        "answers": [{"from": "agent@example.com", "name": "Sam Agent", "arrived": "Mon 5 Jan 15:00 UTC",
                                     "subject": "Re: Cannot log in"}],
                        "last_answer_excerpt": "Please try again now."}
NEXT_RESPONSE_SAMPLE["escalations"] = [dict(NEXT_RESPONSE_SAMPLE, escalations=None)]
_SAMPLE_BREACH = {"id": 1, "mailbox": "default", "customer": "customer@example.com", "subject": "Cannot log in",
                  "policy": "default",
                  "status": "open", "due": "2026-01-05T13:00:00+00:00", "received": "2026-01-05T09:00:00+00:00",
                  "levels": [1], "age_days": 1, "due_iso": "2026-01-05T13:00:00+00:00",
                  "received_iso": "2026-01-05T09:00:00+00:00"}
DAILY_SAMPLE = {"date": "2026-01-06", "yesterday": "2026-01-05", "now": "2026-01-06T08:00:00+00:00",
                "breaches": [_SAMPLE_BREACH], "unreviewed": [_SAMPLE_BREACH], "unreviewed_count": 1,
                "overdue_count": 0, "review_period_days": 30}


@dataclass(frozen=True)
class Setup:
    """Config, policies and templates, loaded and checked together."""

    config: Config
    policies: Policies
    templates: Templates
    policies_path: Path | None = None  # the folder the policies came from: the configured one or the shipped one
    own_policies: dict[str, Policies] = field(default_factory=dict)  # mailbox name -> its own `policies` folder's

    def policies_of(self, mailbox: str) -> Policies:
        """The policies a mailbox's messages are timed by: its own folder's, else the common ones."""
        return self.own_policies.get(mailbox, self.policies)


def load_setup(config: Config, *, starting: bool = False) -> Setup:
    """Policies (the common ones and each mailbox's own) and templates for `config`, each problem found (all of
    them, one per line) in one ConfigError.

    A policies or templates folder that does not exist is replaced by the ones shipped in the package.
    `starting` (run, once, check) also looks for everything else that would stop the daemon later: passwords
    and tokens that cannot be read, and policies without any rule."""
    problems: list = []
    templates = Templates(config.templates_path, fallback=defaults.TEMPLATES)
    wanted = {"escalation", "digest"}
    escalations = {"escalation"}
    policies_path = defaults.policies_folder(config.policies_path)
    names = [mailbox.name for mailbox in config.mailboxes]
    policies = _policies_in(policies_path, templates, wanted, escalations, problems, starting, names, config)
    own = {}
    for mailbox in config.mailboxes:
        if mailbox.policies_path is not None:  # its own folder, which must exist (no shipped stand-in)
            own[mailbox.name] = _policies_in(mailbox.policies_path, templates, wanted, escalations, problems, starting,
                                             names, config)
    for name in sorted(wanted):  # a template that fails the first sample is not tried with the second
        problems += (templates.problems({name}, SAMPLE_CONTEXT)
                     or (templates.problems({name}, NEXT_RESPONSE_SAMPLE) if name in escalations | {"digest"} else []))
    if config.daily_digest.at is not None:
        if templates.home(config.daily_digest.template) is None:
            problems.append((str(config.file), "digest.template", _no_template(config.daily_digest.template,
                                                                               templates)))
        else:
            problems += templates.problems({config.daily_digest.template}, DAILY_SAMPLE)
    if starting:
        problems += credential_problems(config)
    if problems or policies is None:  # _policies_in gives None only after adding why
        raise ConfigError.many(problems)
    return Setup(config, policies, templates, policies_path,
                 {name: mine for name, mine in own.items() if mine is not None})


def _policies_in(folder: Path, templates: Templates, wanted: set, escalations: set, problems: list,
                 starting: bool, mailboxes: list[str], config: Config) -> Policies | None:
    """The policies in `folder` (None when they have problems, which are added to `problems`); the templates
    its rules name are added to `wanted` (those of escalation levels also to `escalations`), each missing one
    is a problem, and so is a `match.mailbox` naming none of `mailboxes` and a level's `notify` naming a webhook
    the config does not define."""
    checked: Policies | None
    try:
        policies = checked = load_policies(folder)
    except ConfigError as error:
        problems += error.problems
        policies, checked = None, getattr(error, "partial", None)  # the rules that are fine are checked on
    for name, source, key in checked.template_uses() if checked else ():
        if templates.home(name) is None:
            problems.append((str(folder / source), key, _no_template(name, templates)))
        else:
            wanted.add(name)
    if checked:
        escalations |= _escalation_templates(checked)
        problems += mailbox_problems(checked, folder, mailboxes)
        problems += notifier_problems(checked, folder, [webhook.name for webhook in config.webhooks], config.file)
    if starting and policies is not None and not policies.rules:
        problems.append((str(folder), "", "no [[rule]] in any policy file: no message would ever get a "
                                          "deadline (policies/default.toml is an example)"))
    return policies


def _no_template(name: str, templates: Templates) -> str:
    return (f"no template {name!r}: {templates.folder / (name + '.txt.j2')} does not exist and mailesc ships none "
            f"by that name" + did_you_mean(name, sorted(templates.names())))


def _escalation_templates(policies: Policies) -> set[str]:
    return {level.template for rule in policies.rules for level in rule.escalate} | {"escalation"}


def reload(config: Config, worker: Worker) -> str:
    """SIGHUP: load the policies and templates again, checked as at start, and put them in use only when they
    are valid: otherwise this raises (a ConfigError naming file, key and problem) and the engines keep what they
    have. The config file itself is read at start only. Returns what is in use now."""
    fresh = load_setup(config)
    worker.use(fresh)
    own = "".join(f"; mailbox {name}: {len(policies.rules)} rule(s) of its own"
                  for name, policies in fresh.own_policies.items())
    return (f"{len(fresh.policies.rules)} rule(s) from {fresh.policies_path}: "
            + ", ".join(rule.name for rule in fresh.policies.rules) + own + f"; templates from {config.templates_path}")


def build_engine(setup: Setup, store: repository.Store, source: Source, transport: Transport, durable: bool = True,
                 mailbox: MailboxConfig | None = None) -> Engine:
    """The engine of one mailbox (the first configured one unless given) for `run` and `once`; a replay (not
    durable) keeps everything live and counts all of its mail (no `since`). With a DryRunTransport (and a
    DryRunStore) it is a dry run: it does not archive, and after each cycle says what it recorded and would send."""
    config = setup.config
    mailbox = mailbox or config.mailbox
    dry_run = isinstance(transport, DryRunTransport)
    engine: Callable[..., Engine] = DryRunEngine if dry_run else Engine  # DryRunEngine: with its DryRunTransport
    # a dry run says what it would post, a replay posts nothing (as its mails go to a Maildir only)
    notifier: Notifier = (cast(Notifier, transport) if dry_run else open_notifier(config) if durable
                          else ReplayNotifier())
    return engine(policies=setup.policies_of(mailbox.name), team=config.team_of(mailbox), store=store.box(mailbox.name),
                  source=source, transport=transport, notifier=notifier, templates=setup.templates,
                  sender=config.smtp.from_address,
                  reply_to=config.smtp.reply_to, digest_after=config.digest_after, durable=durable and not dry_run,
                  archive_after=config.archive_after if durable and not dry_run else None,
                  secret=store.installation_secret(), mail_zone=config.templates_timezone,
                  since=mailbox.since if durable else None, spam=config.spam, subject_window=config.subject_window)


def open_notifier(config: Config) -> WebhookNotifier:
    """What posts a level's `notify` entries: the configured webhooks (their URLs are read at each post)."""
    from mailesc.notifiers.webhook import WebhookNotifier

    return WebhookNotifier(config.webhooks)


def build_worker(setup: Setup, store: repository.Store, transport: Transport,
                 sources: dict[str, Source] | None = None) -> Worker:
    """Every configured mailbox's engine and the daily digest, as one Worker for the daemon and for `once`.

    On PostgreSQL (not in a dry run) the worker works the mailboxes it holds the leases of (stores/leases.py),
    taking its fair share at once. `sources` (mailbox name -> an open source) stand in for the ones the config
    names (tests). A dry run sends no daily digest."""
    config = setup.config
    dry_run = isinstance(transport, DryRunTransport)
    daily = None
    if not dry_run and config.daily_digest.at is not None:
        daily = DailyDigest(config.daily_digest, store, setup.templates, transport, config.smtp.from_address,
                            config.review.period, config.templates_timezone)

    membership = None
    if store.shared and not dry_run:  # PostgreSQL: several workers may share the mailboxes
        from mailesc.stores.leases import Membership

        membership = Membership(cast("PostgresStore", store), config.lease_seconds).start()  # the shared kind
    return Worker([mailbox.name for mailbox in config.mailboxes], EngineFactory(setup, store, transport, sources),
                  daily=daily, membership=membership, poll_every=timedelta(seconds=config.poll_seconds))


class EngineFactory:
    """Makes a mailbox's engine when a worker starts working it (at start, or when it takes the mailbox's lease),
    with the setup in use then (`setup` is replaced on reload)."""

    def __init__(self, setup: Setup, store: repository.Store, transport: Transport,
                 sources: dict[str, Source] | None = None):
        self.setup, self.store, self.transport, self.sources = setup, store, transport, sources

    def __call__(self, name: str) -> Engine:
        mailbox = self.setup.config.find_mailbox(name)
        source = self.sources[name] if self.sources is not None else open_source(mailbox)
        return build_engine(self.setup, self.store, source, self.transport, mailbox=mailbox)


def run_once(setup: Setup, now: datetime, dry_run: "DryRunTransport | None" = None) -> CycleReport:
    """One cycle of every mailbox (on PostgreSQL: of those this process can take the leases of, given back at
    the end). With `dry_run` (a DryRunTransport, which collects the mails instead of sending them) the store is
    read but never written, and nothing is sent."""
    with working(setup, dry_run) as worker:
        worker.poll_every = None  # once: every mailbox it works is read
        return worker.cycle(now)


def run_daemon(setup: Setup, dry_run: "DryRunTransport | None" = None) -> None:
    """`mailesc run`: every mailbox of the config as one worker, driven by the daemon until SIGTERM or SIGINT
    (SIGHUP reloads the policies and templates). With `dry_run`, as for run_once: nothing written or sent."""
    from mailesc.daemon import Daemon

    with working(setup, dry_run) as worker:
        if dry_run is not None:
            dry_run.say("dry run: nothing is written to the store and no mail is sent")
        Daemon(worker, SystemClock(), setup.config.poll_seconds, reload=lambda: reload(setup.config, worker)).run()


@contextmanager
def working(setup: Setup, dry_run: "DryRunTransport | None" = None) -> Iterator[Worker]:
    """The worker of every mailbox of the config, on its store and transport (with `dry_run`, which collects
    the mails instead of sending them, the store is read but never written); closed (its leases given back on
    PostgreSQL) at the end."""
    with open_store(setup.config, dry_run is not None) as store:
        worker = build_worker(setup, store, dry_run if dry_run is not None else open_transport(setup.config.smtp))
        try:
            yield worker
        finally:
            worker.close()


class DryRunEngine(Engine):
    """The engine of a dry run: after each cycle it says what the cycle recorded (in memory only) and would send."""

    def __init__(self, *, transport: DryRunTransport, **everything_else):
        super().__init__(transport=transport, **everything_else)
        self.dry_run = transport

    def cycle(self, now: datetime, report: CycleReport | None = None) -> CycleReport:
        report = super().cycle(now, report)
        self.dry_run.tell(recorded_at(self.store, now))  # this mailbox's
        return report


def recorded_at(store: repository.MailboxStore, now: datetime) -> list[str]:
    """What a cycle at `now` recorded (for a dry run, which keeps it in memory only): one line per escalation
    level, warning and acknowledgement."""
    return [f"would record breach {breach.id} (policy {breach.policy}, due {isoformat(breach.due_at)}): level "
            f"{record.level} escalation to {', '.join(record.to)}"
            for breach in sorted(store.breaches.values(), key=lambda b: b.id) for record in breach.escalations
            if record.at == now] + [
        f"would record breach {breach.id}: level {record.level} post to {', '.join(record.to)}"
        for breach in sorted(store.breaches.values(), key=lambda b: b.id) for record in breach.notifications
        if record.at == now] + [
        f"would record a {_notice_text(notice)} for a thread of policy {thread.policy}"
        for thread in store.threads.values() for notice in thread.notices if notice.at == now]


def _notice_text(notice) -> str:
    return "acknowledgement to the customer" if notice.kind == "ack" else f"{notice.kind} to {', '.join(notice.to)}"


def open_store(config: Config, dry_run: bool = False):
    """The store the config names for the daemon and once: PostgreSQL when `[store] url` is set, else the
    embedded file (locked for this process's life). A dry run reads it and never writes."""
    if config.store.url:
        from mailesc.stores.postgres import PostgresStore

        return PostgresStore.from_config(config.store, dry_run=dry_run)
    return DryRunStore(config.store_path) if dry_run else Store(config.store_path)


class DryRunTransport:
    """--dry-run: the mails a cycle would send are counted as accepted (so the cycle goes on as it would) and
    described to `say` after the cycle, with what it recorded (see DryRunEngine); none is sent."""

    def __init__(self, say):
        self.say, self.mails = say, []

    def check(self) -> dict:
        """What it is, for a Transport's `check`: nothing to connect to, nothing sent."""
        return {"kind": "dry run", "sends": "nothing"}

    def post(self, post) -> None:
        """A webhook post it would make (the Notifier of a dry run): named, never its URL or text."""
        self.mails.append(f"would post webhook {post.name}, level={post.level}, breach={post.breach}")
        return None

    def send(self, mails, settle=None) -> dict:
        for mail in mails:
            self.mails.append(describe_mail(mail))
            if settle:
                settle(mail.message_id, None)
        return {mail.message_id: None for mail in mails}

    def tell(self, recorded: list[str]) -> None:
        for line in recorded + self.mails:
            self.say(line)
        self.mails = []

    def describe(self) -> dict:
        return {"kind": "dry run: nothing is sent"}


def describe_mail(mail) -> str:
    """One line for a mail a dry run would send: what it is, to whom, its subject and Message-ID."""
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(mail.data)
    what = str(headers.get("X-Mailesc", "mail")).partition("; sig=")[0].replace("; ", ", ")  # without its HMAC
    return (f"would send {what} to {', '.join(mail.recipients)}: {str(headers.get('Subject', ''))!r} "
            f"{mail.message_id}")


# -- replay ---------------------------------------------------------------------------------------------------


@dataclass
class ReplaySummary:
    messages: int
    threads: int
    responded: int
    responded_on_time: int
    responded_late: int
    unanswered: int
    breaches: int
    escalations: int  # escalation levels that went out (alone or in a digest)
    mails: int  # mails written to the outbox: escalations, digests, warnings, acknowledgements
    ignored_auto: int
    ignored_spam: int
    quarantined: int
    duplicates: int
    start: str  # a replay has at least one dated message: it starts and ends at a time
    end: str
    store: str
    outbox: str

    def as_json(self) -> dict:
        return dict(self.__dict__)


def replay(setup: Setup, mailbox: Path, *, store_path: Path | None = None, outbox_path: Path | None = None,
           until: datetime | None = None, progress=lambda items, total, label: items) -> ReplaySummary:
    """Play `mailbox` through the policies in arrival order on a simulated clock; never sends real mail.

    Its store (default: the config's replay store) and outbox folder (default: `replay-outbox` beside the
    store) are emptied first, so the live store is refused as one (a UsageError, before anything is touched).

    The replay drives the very cycle the daemon runs: one at each moment mail arrives (its source hands over
    what has arrived by then) and one at each deadline in between, up to `until` (default: the last message).
    Messages without any time are played last, at the end of the replay. Its store is throwaway: the engine
    does not write it at each cycle (durable=False); it is written once, at the end."""
    config = setup.config
    store_path = store_path or config.replay_store_path
    outbox_path = outbox_path or config.store_path.parent / "replay-outbox"
    if store_path.resolve() == config.store_path.resolve():
        raise UsageError(f"--store {store_path} is the live store: a replay starts afresh and would erase it")
    files = FileMailbox(mailbox)
    dated = sorted(raw.arrived for raw in files.messages if raw.arrived)
    if not dated:
        raise SourceError(f"no message in {mailbox} carries a date: there is nothing to replay")
    end = until or dated[-1]
    forget_everything(store_path)  # a backtest starts from nothing: no records, no mails of an earlier one
    MaildirOutbox(outbox_path).clear()
    report = CycleReport()
    clock = SimulatedClock(dated[0])
    source = ReplaySource(files, clock, end)
    raws = source.messages
    with Store(store_path) as store:
        engine = build_engine(setup, store, source, MaildirOutbox(outbox_path, durable=False), durable=False)
        for position, raw in enumerate(progress(raws, len(raws), "replaying")):
            moment = source.arrival(raw)
            if position + 1 < len(raws) and source.arrival(raws[position + 1]) == moment:
                continue  # more mail at this moment: one cycle takes it all
            _advance(engine, clock, moment, report, inclusive=False)
            engine.cycle(clock.now(), report)
        _advance(engine, clock, end, report, inclusive=True)
        store.flush()
        return _summarise(store, report, dated[0], end, store_path, outbox_path)


def forget_everything(store_path: Path) -> None:
    """Remove a store with its reviews and archive (only ever done to a replay's own store)."""
    for path in (store_path, reviews_path(store_path)):
        path.unlink(missing_ok=True)
    shutil.rmtree(archive_folder(store_path), ignore_errors=True)


def _advance(engine: Engine, clock: SimulatedClock, until: datetime, report: CycleReport, inclusive: bool) -> None:
    """A cycle at every deadline up to `until`, each at its own simulated moment, in order; then the clock
    stands at `until`."""
    while (when := engine.next_deadline(clock.now())) and (when < until or (inclusive and when == until)):
        clock.advance_to(when)
        engine.cycle(when, report)
    clock.advance_to(until)


def _summarise(store: Store, report: CycleReport, start: datetime, end: datetime, store_path: Path,
               outbox_path: Path) -> ReplaySummary:
    clocked = [t for t in store.threads.values() if t.first_customer_message()]
    responded = [t for t in clocked if t.first_response_after(t.first_customer_message().arrived)]
    late = sum(1 for b in store.breaches.values() if b.status is Status.RESPONDED_LATE)
    return ReplaySummary(
        messages=report.fetched, threads=len(clocked), responded=len(responded),
        responded_on_time=len(responded) - late, responded_late=late, unanswered=len(clocked) - len(responded),
        breaches=len(store.breaches), mails=report.mails_sent,
        escalations=sum(1 for b in store.breaches.values() for e in b.escalations if e.delivery is Delivery.SENT),
        ignored_auto=report.ignored_auto, ignored_spam=report.ignored_spam, quarantined=report.quarantined,
        duplicates=report.duplicates,
        start=start.isoformat(), end=end.isoformat(),
        store=str(store_path), outbox=str(outbox_path))


# -- explain --------------------------------------------------------------------------------------------------


def explain(setup: Setup, eml: Path, received: datetime | None, mailbox: str | None = None) -> dict:
    """What mailesc would do with a message read from `mailbox` (the first configured one unless named): why it
    starts no clock, or which rule it gets (every rule tried) with every deadline it would have. A message that
    starts no clock gets no rule, deadline or ladder."""
    config = setup.config
    box = config.mailbox if mailbox is None else config.find_mailbox(mailbox)
    if box is None:
        raise UsageError(f"no mailbox is named {mailbox!r}; the configured ones are: "
                         + ", ".join(m.name for m in config.mailboxes))
    policies = setup.policies_of(box.name)
    try:
        data = eml.read_bytes()
    except OSError as error:
        raise MessageFileError(f"cannot read {eml}: {error.strerror}") from None
    try:
        message = parse_message(RawMessage(key=str(eml), folder="INBOX", data=data, arrived=received), _UNKNOWN,
                                box.name)
    except ParseError as error:
        raise MessageFileError(f"{eml} is not a readable message: {error}") from None
    people = who_is_who(policies, config.team_of(box), config.smtp.from_address)
    kind = classify(message, people, setup.config.spam, data)
    arrived = None if message.arrived == _UNKNOWN else message.arrived
    result = {
        "kind": str(kind), "opens_thread": kind is Kind.CUSTOMER,
        "reason": _no_clock_reason(kind, message, setup, data),
        "auto_generated": auto_generated_reason(message, data) if kind is Kind.AUTO else None,
        "spam": spam_reason(message, setup.config.spam) if kind is Kind.SPAM else None,
        "rule": None, "calendar": None, "received": isoformat(arrived), "first_response": None,
        "first_response_due": None, "warn_at": None, "warn_to": [], "next_response": None, "acknowledge": None,
        "escalations": [], "contract": None, "tried": [],
    }
    if kind is not Kind.CUSTOMER:
        return result
    if arrived is None:
        raise UsageError(f"{eml} has no usable Date header: give the time with --received")
    tried = list(policies.tried(message))
    rule = tried[-1][0] if tried and not tried[-1][1] else None
    result["contract"] = policies.contracts.of(message.sender)
    result["tried"] = [{"rule": r.name, "source": r.source, "matched": not failed, "failed": failed}
                       for r, failed in tried]
    if rule is None:
        return result
    due = rule.calendar.add(arrived, rule.first_response)
    return {**result,
            "rule": rule.name, "calendar": rule.calendar.name, "first_response": format_duration(rule.first_response),
            "first_response_due": isoformat(due), "warn_at": isoformat(rule.warn_at(arrived)),
            "warn_to": list(rule.warning.to) if rule.warning else [],
            "next_response": format_duration(rule.next_response) if rule.next_response else None,
            "acknowledge": rule.acknowledge,
            "escalations": [{"level": step.level.number, "at": isoformat(step.at), "to": list(step.level.to),
                             "template": step.level.template} for step in sla.ladder(rule, due)]}


def _no_clock_reason(kind: Kind, message, setup: Setup, data: bytes) -> str | None:
    """Why a message starts no clock, in words; None for a customer message (it does)."""
    if kind is Kind.OWN:
        return "it is mailesc's own mail"
    if kind is Kind.SPAM:
        return f"the spam filter tagged it ({spam_reason(message, setup.config.spam)})"
    if kind is Kind.AUTO:
        return f"a machine wrote it ({auto_generated_reason(message, data)})"
    if kind is Kind.INTERNAL:
        return "it goes only to the team and the managers it escalates to"
    if kind is Kind.TEAM:
        return f"it comes from the team ({message.sender}): in a thread it is a response"
    return None


# -- the records admin commands read and write -------------------------------------------------------------


# -- resend ---------------------------------------------------------------------------------------------------


def resend(config: Config, breach_id: int, level: int | None, to: list[str] | None = None,
           now: datetime | None = None, wait=None) -> list[str]:
    """Put escalations that failed for good back into the outbox (the operator fixed the cause), or, with `to`,
    send one elsewhere: the failed ones (or the one at `level`, whatever became of it) go to these addresses
    instead. Each resend is kept in the escalation's history. Returns their Message-IDs; they keep them, and
    the next cycle sends them.

    With the file store the daemon must be stopped (it holds the store); with PostgreSQL this is a request the
    worker holding the breach's mailbox applies (see mailesc.requests), waited for up to `wait` seconds."""
    addresses = list(dict.fromkeys(_address(text) for text in to or []))
    now = now or datetime.now(timezone.utc)
    if config.store.url:
        from mailesc import requests

        return requests.resend(config, breach_id, level, addresses, now, wait)
    with _store_for_writing(config) as store:
        box = next((box for box in store.mailboxes() if breach_id in box.breaches), None)
        if box is None:
            raise UsageError(f"no breach with id {breach_id}")
        from mailesc.requests import resend_records

        breach = box.breaches[breach_id]
        again = resend_records(breach, level, addresses, now)
        box.put_breach(breach)
        box.flush()
        return [record.message_id for record in again]


def _store_for_writing(config: Config) -> Store:
    """The file store, locked: a write other than a review needs the daemon to let go of it."""
    try:
        return Store(config.store_path)
    except StoreBusy:
        raise StoreBusy(f"another mailesc process is using {config.store_path} (mailesc run, or another command): "
                        f"with the file store, breaches resend and quarantine retry need the daemon stopped; stop "
                        f"it, run this again, then start it (breaches review, list, show, report, status and "
                        f"quarantine work while it runs; with a PostgreSQL store ([store] url) this works while "
                        f"workers run)") from None


def _address(text: str) -> str:
    address = parseaddr(text)[1]
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or any(c.isspace() for c in address):
        raise UsageError(f"--to wants a mail address like manager@example.com, not {text!r}")
    return address.lower()


# -- quarantine -----------------------------------------------------------------------------------------------


def quarantined(config: Config) -> list:
    """Every quarantined message, of every mailbox, oldest first."""
    with open_records(config, threads=False) as records:
        return sorted((item for box in records.mailboxes() for item in box.quarantine.values()), key=lambda q: q.at)


def quarantine_retry(config: Config, keys: list[str] | None, wait=None) -> list[str]:
    """Mark quarantined messages (these keys, or all with None) to be read again at the next cycle, which takes
    them in like new mail; those that fail again are quarantined again. Returns the keys marked. With
    PostgreSQL, a request per mailbox that its worker applies (see mailesc.requests)."""
    from mailesc import requests

    if config.store.url:
        return requests.quarantine_retry(config, keys, wait)
    with _store_for_writing(config) as store:
        held = [(box, item) for box in store.mailboxes() for item in box.quarantine.values()]
        requests.check_quarantined(keys, {item.key for _, item in held})
        for box in store.mailboxes():
            requests.mark_for_retry(box, keys)
        store.flush()
        return sorted({item.key for _, item in held}) if keys is None else list(dict.fromkeys(keys))


# -- breach review and reports -----------------------------------------------------------------------------


def review(config: Config, breach_id: int, *, by: str, now: datetime, cause: str | None = None,
           note: str | None = None, reopen: bool = False, replay: bool = False) -> ReviewEntry:
    """Record a root cause for a breach (or reopen its review); works while the daemon or the workers run."""
    with open_records(config, replay, live=False) as records:
        if records.find_breach(breach_id)[1] is None:
            raise UsageError(f"no breach with id {breach_id}")
        if reopen and records.reviews(of=[breach_id]).current(breach_id) is None:
            raise UsageError(f"breach {breach_id} has no recorded cause to reopen")
        if not reopen and not cause:
            raise UsageError("give the cause with --cause (or --reopen to take a recorded cause back)")
        entry = ReviewEntry(breach=breach_id, at=now, by=by, action="reopen" if reopen else "review",
                            cause=None if reopen else cause, note=note)
        check_cause(entry, config.review.causes)
        return records.record_review(entry)


def report(setup: Setup, now: datetime, *, since: datetime | None = None, until: datetime | None = None,
           by: str | None = None, replay: bool = False, store: Path | None = None) -> dict:
    """`mailesc report`: the configured store's numbers (or the replay's, or the file store at `store`: a
    replay's own, for `replay --report`)."""
    from mailesc.reporting.statistics import assemble

    period = setup.config.review.period
    records = Store(store, readonly=True, live=False) if store else open_records(setup.config, replay, live=False)
    with records:  # each store counts its way: the file store in Python, PostgreSQL in SQL
        counts = records.count_report(setup.policies, now=now, review_period=period, since=since, until=until, by=by)
    return assemble(counts, now=now, review_period=period, since=since, until=until, by=by)


# -- store copy -----------------------------------------------------------------------------------------------


def copy_store(config: Config, url: str, *, password_env: str | None = None, password_file: str | None = None,
               security: str | None = None, ca_file: str | None = None) -> CopyResult:
    """`store copy`: the embedded store the config names copied into the PostgreSQL database at `url`, with the
    password and TLS settings the flags give, else the config's [store] (see stores/copy.py)."""
    from mailesc.stores.copy import copy_store, target_config

    target = target_config(config, url, password_env=password_env, password_file=password_file,
                           security=security, ca_file=ca_file)
    return copy_store(config.store_path, target)


# -- status ---------------------------------------------------------------------------------------------------


def status(config: Config, now: datetime, *, replay: bool = False) -> dict:
    """How the watch is going, from the store and its heartbeat alone (the daemon need not be asked).

    Healthy means: no problem listed. A daemon that stopped, was killed or never started shows as a last
    successful poll older than `daemon.stale_after` (or none at all). With PostgreSQL, also the workers and who
    holds which mailbox."""
    with open_records(config, replay) as store:
        postgres = store.shared
        where = store.where if postgres else str(store_path(config, replay))
        configured = [mailbox.name for mailbox in config.mailboxes]  # first, in the config's order; then any other
        boxes = [store.box(name) for name in configured] + [b for b in store.mailboxes() if b.name not in configured]
        mailboxes = [_mailbox_status(box) for box in boxes]
        mailbox = dict(boxes[0].health.get("mailbox", {}))
        threads = [thread for box in boxes for thread in box.threads.values()]
        breaches = [breach for box in boxes for breach in box.breaches.values()]
        records = [r for b in breaches for r in b.escalations] + [n for t in threads for n in t.notices] + [
            m for box in boxes for m in box.outgoing.values() if m.kind != MailKind.DIGEST]  # a digest: its members
        pending = [r for r in records if r.delivery is Delivery.PENDING]
        failed = [r for r in records if r.delivery is Delivery.FAILED]
        posts = [n for b in breaches for n in b.notifications]  # webhook posts: counted apart from the mails
        failed_posts = [n for n in posts if n.delivery is Delivery.FAILED]
        result: dict[str, Any] = {
            "store": where,
            "mailbox": {key: mailbox.get(key) for key in _HEALTH_KEYS},
            "mailboxes": mailboxes,
            "threads": len(threads),
            "open_breaches": sum(1 for b in breaches if b.status is Status.OPEN),
            "breaches": len(breaches),
            "pending_mails": len(pending),
            "oldest_pending": isoformat(min((r.at for r in pending), default=None)),
            "last_pending_error": next((r.error for r in pending if r.error), None),
            "failed_mails": len(failed),
            "last_failed_error": max(failed, key=lambda r: r.at).error if failed else None,
            "pending_posts": sum(1 for n in posts if n.delivery is Delivery.PENDING),
            "failed_posts": len(failed_posts),
            "last_failed_post_error": max(failed_posts, key=lambda n: n.at).error if failed_posts else None,
            "quarantined": sum(len(box.quarantine) for box in boxes),
            "untimed_threads": sum(1 for t in threads if t.clock_error),
            "untimed_reason": next((t.clock_error for t in threads if t.clock_error), None),
            "daily_digest": daily_state(latest_daily(store.installation.outgoing)),
        }
        if postgres:
            _workers_status(store, result)
        result["last_poll_at"] = None  # a replay has no daemon: its liveness is not judged
        problems = [] if replay else _liveness(config, store.last_polls(), mailbox.get("ok_at"), now, result)
    result["stale_after_seconds"] = int(config.stale_after.total_seconds())
    for box in mailboxes:
        if box["error"]:
            which = "the mailbox" if len(mailboxes) == 1 else f"mailbox {box['name']}"
            problems.append(f"{which} is failing since {box['failing_since']}: {box['error']}")
    if failed:
        problems.append(f"{len(failed)} mail(s) refused for good (last: {result['last_failed_error']}; see mailesc "
                        f"breaches list)")
    if failed_posts:
        problems.append(f"{len(failed_posts)} webhook post(s) refused for good (last: "
                        f"{result['last_failed_post_error']}; see mailesc breaches show)")
    if result["last_pending_error"]:
        problems.append(f"{len(pending)} mail(s) waiting for a retry: {result['last_pending_error']}")
    digest = result["daily_digest"] or {}
    if digest.get("delivery") == "failed":
        problems.append(f"the daily digest of {digest.get('date')} was refused for good: {digest.get('error')}")
    if result["untimed_threads"]:
        problems.append(f"{result['untimed_threads']} thread(s) without a clock: a policy cannot time them "
                        f"({result['untimed_reason']}); fix it (mailesc policies check), then the next start or "
                        f"reload times them")
    for box in mailboxes:  # PostgreSQL: a configured mailbox no worker holds, and none polled lately (once from
        # cron holds it only while it runs), is watched by nobody
        last = box["last_poll_at"] or box["ok_at"]
        if ("worker" in box and box["worker"] is None and box["name"] in configured
                and (last is None or now - parse_iso(last) > config.stale_after)):
            problems.append(f"mailbox {box['name']} is held by no live worker and was not polled within "
                            f"daemon.stale_after (is mailesc run running?)")
    result["problems"] = problems
    result["healthy"] = not problems
    return result


_HEALTH_KEYS = ("ok_at", "error", "error_at", "failing_since")


def _mailbox_status(box) -> dict:
    """One mailbox's part of `status`: its last poll and failure, its live threads, breaches and quarantine."""
    health = box.health.get("mailbox", {})
    return {"name": box.name, **{key: health.get(key) for key in _HEALTH_KEYS},
            "last_poll_at": box.health.get("poll", {}).get("last_poll_at"), "threads": len(box.threads),
            "open_breaches": sum(1 for b in box.breaches.values() if b.status is Status.OPEN),
            "quarantined": len(box.quarantine)}


def _workers_status(store, result: dict) -> None:
    """PostgreSQL: who holds which mailbox (`leases`) and the live workers (`workers`), with the database's
    clock; each mailbox's entry in `mailboxes` also names its holder (`worker`, None when nobody holds it)."""
    from mailesc.stores.leases import leases_status, workers_status

    result["leases"], result["workers"] = leases_status(store), workers_status(store)
    holders = {lease["mailbox"]: lease["owner"] for lease in result["leases"]
               if lease["owner"] and (lease["seconds_left"] or 0) > 0}
    for box in result["mailboxes"]:
        box["worker"] = holders.get(box["name"])


def _liveness(config: Config, last_polls: tuple, store_ok_at: str | None, now: datetime, result: dict) -> list[str]:
    """Sets result["last_poll_at"]; the problems if the daemon has not polled successfully for too long.
    `last_polls`: (the store's own record of the last poll (the heartbeat file, the database's), why it cannot
    be read)."""
    beat, unreadable = last_polls
    known = [when for when in (beat, parse_iso(store_ok_at) if store_ok_at else None) if when is not None]
    last = max(known, default=None)
    result["last_poll_at"] = isoformat(last)
    problems = [unreadable] if unreadable else []
    if last is None:
        problems.append("no successful poll on record: mailesc run has not polled the mailbox yet (is it running?)")
    elif now - last > config.stale_after:
        problems.append(f"no successful poll since {isoformat(last)} ({format_duration(now - last)} ago, longer "
                        f"than daemon.stale_after {format_duration(config.stale_after)}): is mailesc run running?")
    return problems


# -- check ----------------------------------------------------------------------------------------------------


def check(setup: Setup, offline: bool) -> list[str]:
    """Lines describing what was checked; raises a MailescError on the first thing that is wrong."""
    config, policies = setup.config, setup.policies
    names = sorted(policies.templates() | {"escalation", "digest"})
    lines = [f"config     {config.file}",
             f"policies   {setup.policies_path or config.policies_path}: {len(policies.rules)} rule(s): "
             + ", ".join(rule.name for rule in policies.rules),
             f"templates  {config.templates_path}: " + ", ".join(
                 name + ("" if setup.templates.home(name) == config.templates_path else " (shipped)") for name in names)
             + " render",
             f"store      {config.store.where if config.store.url else config.store_path}",
             "mailboxes  " + ", ".join(f"{m.name} ({m.kind})" for m in config.mailboxes)]
    if config.webhooks:  # their URLs were read and checked at load_setup; none is printed, nothing is posted
        lines.append("webhooks   " + "; ".join(f"{name}: {where}" for name, where in
                                              open_notifier(config).check().items()) + " (nothing posted)")
    lines += setup_notes(setup)
    if offline:
        return lines + ["servers    not contacted (--offline)"]
    if config.store.url:
        from mailesc.stores.postgres import PostgresStore

        with PostgresStore.from_config(config.store) as store:  # creates or migrates the schema, as a start would
            lines.append(f"database   {_describe(store.describe())}")
    for mailbox in config.mailboxes:
        source = open_source(mailbox)
        try:
            label = "mailbox" if len(config.mailboxes) == 1 else f"mailbox {mailbox.name}:"
            lines.append(f"{label:<10} {_describe(source.describe())}")
        finally:
            source.close()
    transport = open_transport(config.smtp)
    lines.append(f"sending    {_describe(transport.check())}")
    return lines


def setup_notes(setup: Setup) -> list[str]:
    """What is taken from the package because the configured folder does not exist, and what the config says
    that works but should change (an old name): for check and run."""
    config = setup.config
    notes = [f"note: {note}" for note in config.notes]
    if setup.policies_path is not None and setup.policies_path != config.policies_path:
        notes.append(f"note: policies.path {config.policies_path} does not exist: using the example policy shipped "
                     f"with mailesc (mailesc init writes a copy to edit)")
    if not config.templates_path.is_dir():
        notes.append(f"note: templates.path {config.templates_path} does not exist: using the templates shipped "
                     f"with mailesc")
    return notes


def _describe(info: dict) -> str:
    return "; ".join(f"{key}: {value}" for key, value in info.items())
