"""Intake that is safe to leave running: a policy that cannot time a thread never quarantines the customer's
message, quarantined messages can be read again, `since` keeps history from starting clocks, a thread overdue
at the first start gets its current level only, and a dry run changes nothing.

The engine runs on a local Maildir and writes to an outbox Maildir (no wire is crossed); policies are built
in code, so that a calendar that never opens reaches the engine whatever `check` would say of it."""

from __future__ import annotations

import mailbox
import os
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from mailesc.app import DryRunEngine, DryRunTransport
from mailesc.cycle import Engine, history_cutoff, is_message_problem
from mailesc.hours import Calendar, ClosedDays
from mailesc.model import Quarantined
from mailesc.policies import Level, Match, Policies, Rule
from mailesc.render import Templates
from mailesc.sources.maildir import MaildirSource
from mailesc.store import DryRunStore, Store
from mailesc.transports.maildir import MaildirOutbox
from tests.support import TEMPLATES, make_mail, outbox_mails

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)
NEVER_OPEN = Calendar(name="closed", hours={})
LADDER = (Level(1, timedelta(0), ("manager@example.test",)), Level(2, 2 * H, ("director@example.test",)))


def policies(calendar: Calendar = Calendar(), name: str = "standard") -> Policies:
    return Policies(rules=(Rule(name=name, source="test", match=Match(), first_response=H, escalate=LADDER,
                                calendar=calendar),))


class World:
    """A Maildir, an outbox and a store in `folder`; `engine()` builds the engine a start would build."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.inbox = mailbox.Maildir(folder / "Maildir", create=True)
        self.store_path, self.outbox = folder / "var" / "mailesc.json", folder / "outbox"
        self.store: Store | None = None

    def deliver(self, arrived: datetime, subject: str = "Cannot log in", raw: bytes | None = None) -> str:
        raw = raw or make_mail(sender="pat@customer.example", subject=subject, date=arrived)[0]
        key = self.inbox.add(raw)
        path = Path(self.inbox._path) / self.inbox._lookup(key)
        os.utime(path, (arrived.timestamp(), arrived.timestamp()))
        return key

    def engine(self, rules: Policies, since=None, store: Store | None = None, transport=None,
               kind: type[Engine] = Engine) -> Engine:
        if self.store is not None:
            self.store.close()
        self.store = store or Store(self.store_path)
        return kind(policies=rules, team=("*@example.test",), store=self.store,
                      source=MaildirSource(self.folder / "Maildir", sent_folder=""),
                      transport=transport or MaildirOutbox(self.outbox), templates=Templates(TEMPLATES),
                      sender="Escalations <escalations@example.test>", since=since, secret=b"test secret")

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


@pytest.fixture
def world(tmp_path):
    made = World(tmp_path)
    yield made
    made.close()


def only_thread(store: Store):
    [thread] = store.threads.values()
    return thread


# -- a policy that cannot time a thread ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["restart", "reload", "rule-renamed"])
def test_a_calendar_that_never_opens_keeps_the_message_and_the_fixed_policy_times_it(world, how):
    world.deliver(T0)
    engine = world.engine(policies(NEVER_OPEN))
    report = engine.cycle(T0 + timedelta(minutes=1))
    assert (report.quarantined, report.messages, report.untimed) == (0, 1, 1)
    thread = only_thread(world.store)
    assert world.store.quarantine == {} and thread.due_at is None and "no open time" in thread.clock_error
    assert engine.cycle(T0 + 3 * H).escalations_recorded == 0  # no clock, no ladder, and no crash

    fixed = policies(name="renamed" if how == "rule-renamed" else "standard")
    if how == "reload":
        engine.policies = fixed
    else:
        world.store.flush()
        engine = world.engine(fixed)
    report = engine.cycle(T0 + 4 * H)
    thread = only_thread(world.store)
    assert thread.clock_error is None and thread.due_at == T0 + H and thread.policy == fixed.rules[0].name
    assert report.breaches == 1  # both levels fell due while mailesc watched the thread: both are owed
    assert [e.level for e in world.store.breaches[1].escalations] == [1, 2]
    assert sorted(m["X-Mailesc"].partition("; sig=")[0] for m in outbox_mails(world.outbox)) == [
        "escalation; level=1; breach=1", "escalation; level=2; breach=1"]


def test_a_thread_flagged_by_a_policy_is_written_and_read_back(world):
    world.deliver(T0)
    world.engine(policies(NEVER_OPEN)).cycle(T0)
    world.store.close()
    with Store(world.store_path, readonly=True) as again:
        assert "no open time" in only_thread(again).clock_error


def test_a_ladder_level_that_cannot_be_timed_flags_the_thread_instead_of_stopping_the_cycle(world):
    """Open on Mondays, and every Monday after the first one is a holiday: level 2 (20 open hours after the
    deadline) never comes. Before, the ValueError stopped every cycle."""
    mondays = frozenset((T0 + timedelta(weeks=n)).date() for n in range(1, 200))
    ends = Calendar(name="ends", hours={0: ((time(0), None),)}, closed=ClosedDays(once=mondays))
    rule = Rule(name="standard", source="test", match=Match(), first_response=H, calendar=ends,
                escalate=(Level(1, timedelta(0), ("manager@example.test",)),
                          Level(2, 20 * H, ("director@example.test",))))
    world.deliver(T0)
    engine = world.engine(Policies(rules=(rule,)))
    report = engine.cycle(T0 + 2 * H)
    assert report.untimed == 1 and report.escalations_recorded == 0
    assert "no open time" in only_thread(world.store).clock_error
    engine.policies = policies()  # fixed: always open
    report = engine.cycle(T0 + 2 * H)
    assert report.escalations_recorded == 1 and only_thread(world.store).clock_error is None


# -- quarantine ---------------------------------------------------------------------------------------------------


def test_quarantine_retry_reads_a_message_again_and_keeps_its_arrival_time(world):
    key = world.deliver(T0, raw=b"\x00\x01 not a message")
    engine = world.engine(policies())
    engine.cycle(T0 + timedelta(minutes=1))
    [item] = world.store.quarantine.values()
    assert item.arrived == T0 and not item.retry
    good, _ = make_mail(sender="pat@customer.example", subject="Readable now", date=T0)
    Path(world.inbox._path, world.inbox._lookup(key)).write_bytes(good)  # the same message, repaired in place

    assert engine.cycle(T0 + timedelta(minutes=2)).reread == 0  # nothing is read again unless asked
    item.retry = True
    world.store.put_quarantined(item)
    report = engine.cycle(T0 + timedelta(minutes=3))
    assert (report.reread, report.quarantined, report.messages) == (1, 0, 1)
    assert world.store.quarantine == {} and only_thread(world.store).messages[0].arrived == T0


def test_a_message_that_fails_again_goes_back_to_quarantine_unmarked(world):
    world.deliver(T0, raw=b"\x00\x01 not a message")
    engine = world.engine(policies())
    engine.cycle(T0)
    [item] = world.store.quarantine.values()
    item.retry = True
    world.store.put_quarantined(item)
    report = engine.cycle(T0 + timedelta(minutes=1))
    assert (report.reread, report.quarantined) == (1, 1)
    [again] = world.store.quarantine.values()
    assert not again.retry and again.key == item.key


def test_a_start_reads_again_what_an_error_of_mailesc_or_its_policies_quarantined(world):
    """A store from an older mailesc holds messages quarantined by a calendar that never opened."""
    key = world.deliver(T0)
    with Store(world.store_path) as old:
        old.put_quarantined(Quarantined(key=f"maildir:INBOX:{key}", folder="INBOX", at=T0,
                                        reason="ValueError: calendar 'closed' has no open time within 1098 days"))
        old.sync["maildir:INBOX"] = {"seen": [key]}  # the old version read it, and never again
        old.flush()
    report = world.engine(policies()).cycle(T0 + 2 * H)
    assert (report.reread, report.messages, report.breaches) == (1, 1, 1)
    assert world.store.quarantine == {}


@pytest.mark.parametrize("reason, message_problem", [
    ("no RFC 5322 header found", True),
    ("the message is empty", True),
    ("ValueError: calendar 'closed' has no open time within 1098 days after 2026-11-02T09:00:00+00:00", False),
    ("OverflowError: date value out of range", False),
    ("KeyError: 'x'", False),
    ("TypeError: unsupported operand", False),
])
def test_which_quarantine_reasons_are_worth_a_read_after_the_policies_change(reason, message_problem):
    assert is_message_problem(reason) is message_problem


# -- since and the first start ------------------------------------------------------------------------------------


@pytest.mark.parametrize("since, first_start, cutoff", [
    (timedelta(days=7), T0, T0 - timedelta(days=7)),
    (timedelta(hours=12), T0, T0 - 12 * H),
    (datetime(2026, 10, 1, tzinfo=timezone.utc), T0, datetime(2026, 10, 1, tzinfo=timezone.utc)),
])
def test_the_history_cutoff(since, first_start, cutoff):
    assert history_cutoff(since, first_start) == cutoff


@pytest.mark.parametrize("arrived, levels, note", [
    (T0 - timedelta(days=8), [], "before since: history, no clock"),
    (T0 - 5 * H, [2], "overdue at both levels at the first start: the current level only"),
    (T0 - 2 * H, [1], "overdue at level 1 only"),
    (T0 - timedelta(minutes=30), [], "not due yet"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_first_start_on_a_mailbox_with_history(world, arrived, levels, note):
    world.deliver(arrived)
    engine = world.engine(policies(), since=timedelta(days=7))
    engine.cycle(T0)
    engine.cycle(T0 + timedelta(seconds=1))  # a second look sends no lower level late
    escalated = [e.level for b in world.store.breaches.values() for e in b.escalations]
    assert escalated == levels
    assert len(outbox_mails(world.outbox)) == len(levels)


def test_the_first_start_is_remembered_and_later_levels_climb_as_usual(world):
    world.deliver(T0 - 2 * H)  # level 1 due an hour before the first start, level 2 an hour after it
    engine = world.engine(policies(), since=timedelta(days=7))
    engine.cycle(T0)
    world.store.flush()
    engine = world.engine(policies(), since=timedelta(days=7))  # a restart
    engine.cycle(T0 + 2 * H)
    assert world.store.meta["first_start"] == {"at": T0.isoformat()}
    assert [e.level for e in world.store.breaches[1].escalations] == [1, 2]


def test_a_store_kept_by_an_older_mailesc_keeps_every_clock_it_had(world):
    """No first start on record, but threads: mailesc ran before, so nothing it tracks is history now."""
    world.deliver(T0 - timedelta(days=10))
    engine = world.engine(policies())  # an older mailesc: no `since`
    engine.cycle(T0 - timedelta(days=10) + 90 * timedelta(minutes=1))
    world.store.meta.data.pop("first_start", None)
    world.store.flush()
    engine = world.engine(policies(), since=timedelta(days=7))  # the upgrade
    engine.cycle(T0)
    assert world.store.meta["first_start"] == {"at": (T0 - timedelta(days=10)).isoformat()}
    assert [e.level for e in world.store.breaches[1].escalations] == [1, 2]


def test_a_level_owed_while_the_daemon_was_down_still_goes_out(world):
    engine = world.engine(policies(), since=timedelta(days=7))
    engine.cycle(T0)  # the first start, on an empty mailbox
    world.deliver(T0 + timedelta(minutes=1))
    world.store.flush()
    engine = world.engine(policies(), since=timedelta(days=7))  # back after both levels fell due
    engine.cycle(T0 + 5 * H)
    assert [e.level for e in world.store.breaches[1].escalations] == [1, 2]


def test_old_mail_still_answers_and_threads(world):
    """An old message still threads: the customer's follow-up joins it, and the thread's clock is history."""
    first, first_id = make_mail(sender="pat@customer.example", subject="Old question", date=T0 - timedelta(days=9))
    world.deliver(T0 - timedelta(days=9), raw=first)
    again, _ = make_mail(sender="pat@customer.example", subject="Re: Old question", date=T0 - 3 * H,
                         in_reply_to=first_id, references=[first_id])
    world.deliver(T0 - 3 * H, raw=again)
    engine = world.engine(policies(), since=timedelta(days=7))
    engine.cycle(T0)
    thread = only_thread(world.store)
    assert len(thread.messages) == 2 and world.store.breaches == {}  # one thread; its clock is history


# -- dry run ------------------------------------------------------------------------------------------------------


def test_a_dry_run_writes_nothing_and_sends_nothing(world):
    world.deliver(T0 - 5 * H)
    world.engine(policies(), since=timedelta(days=7)).cycle(T0 - 4 * H - timedelta(minutes=30))  # nothing due
    world.store.close()
    world.store = None
    before = world.store_path.read_bytes()
    files = {p.name: p.read_bytes() for p in world.store_path.parent.iterdir()}  # the store, heartbeat, lock
    world.deliver(T0 - 3 * H, subject="Second")
    said = []
    engine = world.engine(policies(), since=timedelta(days=7), store=DryRunStore(world.store_path),
                          transport=DryRunTransport(said.append), kind=DryRunEngine)
    report = engine.cycle(T0)
    assert report.escalations_recorded == 4 and report.mails_sent == 4  # both levels of both, in memory only
    assert sorted(line.split(" to ")[0] for line in said if line.startswith("would send")) == [
        f"would send escalation, level={level}, breach={breach}" for level in (1, 2) for breach in (1, 2)]
    assert len([line for line in said if line.startswith("would record breach")]) == 4
    assert world.store_path.read_bytes() == before and outbox_mails(world.outbox) == []
    assert {p.name: p.read_bytes() for p in world.store_path.parent.iterdir()} == files


# -- business hours kept for reports --------------------------------------------------------------------------------


def test_the_first_response_business_hours_are_kept_with_the_thread_when_it_is_answered(world):
    """Reports read them instead of running the calendar per thread: Mon 16:00 -> Tue 11:00 is 3 office hours
    (19 on the wall clock); kept across a reopen of the store, and None until the team answers."""
    from mailesc.hours import make_calendar

    office = make_calendar("office", "UTC", {day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")})
    asked = T0 + 7 * H  # Mon 16:00
    question, question_id = make_mail(sender="pat@customer.example", subject="Invoice", date=asked)
    world.deliver(asked, raw=question)
    engine = world.engine(policies(office))
    engine.cycle(asked + H)
    assert only_thread(world.store).response_hours is None
    answer, _ = make_mail(sender="agent@example.test", to="pat@customer.example", subject="Re: Invoice",
                          date=asked + 19 * H, in_reply_to=question_id, references=[question_id])
    world.deliver(asked + 19 * H, raw=answer)
    engine.cycle(asked + 20 * H)
    assert only_thread(world.store).response_hours == 3.0
    world.store.flush()
    world.engine(policies(office))  # reopens the store
    assert only_thread(world.store).response_hours == 3.0
