"""The daily digest on its own (mailesc.daily): when the day's digest is due, that a day gets exactly one queued
digest (a rerun resends the same Message-ID), what `waiting` says, and what the template is given; table-driven,
on a real file store, with a Maildir outbox as the transport (the mail is a file named by its Message-ID)."""

from __future__ import annotations

import email
import email.policy
import hashlib
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import mailesc
from mailesc.compose import daily_message_id
from mailesc.config import DailyDigestConfig
from mailesc.daily import LISTED, DailyDigest, _summary
from mailesc.model import Breach, Delivery, MailKind, QueuedMail, Status
from mailesc.render import Templates
from mailesc.reviews import ReviewEntry
from mailesc.store import Store
from mailesc.transports.maildir import MaildirOutbox

TEMPLATES = Templates(Path(mailesc.__file__).parent / "data" / "templates")
SENDER = "escalations@example.test"
BOSS = ("boss@example.test",)
BERLIN, AUCKLAND, LOS_ANGELES = ZoneInfo("Europe/Berlin"), ZoneInfo("Pacific/Auckland"), ZoneInfo("America/Los_Angeles")
UTC = timezone.utc
PERIOD = timedelta(days=7)


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def config(at: time | None = time(7, 30), zone=BERLIN, to=BOSS) -> DailyDigestConfig:
    return DailyDigestConfig(at=at, timezone=zone, to=tuple(to), template="daily")


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "mailesc.json") as opened:
        yield opened


def outbox_mails(folder: Path) -> dict[str, email.message.EmailMessage]:
    """The mails the outbox holds, by Message-ID."""
    found = {}
    for path in sorted((folder / "new").glob("*.eml")) if (folder / "new").exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert path.name == hashlib.sha256(message["Message-ID"].encode()).hexdigest()[:32] + ".eml"
        found[message["Message-ID"]] = message
    return found


def digest_of(store, tmp_path, the_config=None, transport=None, mail_zone=None) -> DailyDigest:
    return DailyDigest(the_config or config(), store, TEMPLATES, transport or MaildirOutbox(tmp_path / "outbox"),
                       SENDER, PERIOD, mail_zone=mail_zone)


def broken_outbox(tmp_path) -> MaildirOutbox:
    """An outbox whose folder cannot be made (a file is in the way): every send is a temporary failure."""
    (tmp_path / "in-the-way").write_text("")
    return MaildirOutbox(tmp_path / "in-the-way" / "outbox")


def record(store, day: str, delivery: Delivery, retry_at: datetime | None = None, error: str | None = None,
           to=BOSS) -> QueuedMail:
    mail = QueuedMail(kind=MailKind.DAILY, message_id=daily_message_id(date.fromisoformat(day), SENDER),
                      to=list(to), at=utc(2026, 1, 1), template="daily", day=day, delivery=delivery,
                      retry_at=retry_at, error=error)
    store.installation.enqueue(mail)
    return mail


def dailies(store) -> list[QueuedMail]:
    return [mail for mail in store.installation.outgoing.values() if mail.kind == MailKind.DAILY]


# -- due_at ---------------------------------------------------------------------------------------------------------

SENT, PENDING = Delivery.SENT, Delivery.PENDING
RETRY = utc(2026, 12, 21, 6, 31)

DUE_CASES = [
    # what, the config's time, its zone, the records on file (day, delivery, retry_at), now, expected
    ("no time configured: never due", None, BERLIN, [], utc(2026, 12, 21, 12), None),
    ("nothing sent, before the time: today's", time(7, 30), BERLIN, [], utc(2026, 12, 21, 5),
     datetime(2026, 12, 21, 7, 30, tzinfo=BERLIN)),
    ("nothing sent, after the time: today's, already passed", time(7, 30), BERLIN, [], utc(2026, 12, 21, 12),
     utc(2026, 12, 21, 6, 30)),
    ("the configured hour counts, not a default", time(18, 0), BERLIN, [], utc(2026, 12, 21, 5),
     utc(2026, 12, 21, 17)),
    ("yesterday's sent: today's", time(7, 30), BERLIN, [("2026-12-20", SENT, None)], utc(2026, 12, 21, 5),
     utc(2026, 12, 21, 6, 30)),
    ("today's sent: tomorrow's", time(7, 30), BERLIN, [("2026-12-21", SENT, None)], utc(2026, 12, 21, 12),
     utc(2026, 12, 22, 6, 30)),
    ("today's sent, an older one on file too: tomorrow's", time(7, 30), BERLIN,
     [("2026-12-21", SENT, None), ("2026-12-19", SENT, None)], utc(2026, 12, 21, 12), utc(2026, 12, 22, 6, 30)),
    ("the local day, not UTC's: Auckland is a day ahead", time(7, 30), AUCKLAND, [("2026-12-20", SENT, None)],
     utc(2026, 12, 20, 20), datetime(2026, 12, 21, 7, 30, tzinfo=AUCKLAND)),
    ("the local day, not UTC's: Los Angeles is still on the day sent", time(7, 30), LOS_ANGELES,
     [("2026-12-20", SENT, None)], utc(2026, 12, 21, 3), datetime(2026, 12, 21, 7, 30, tzinfo=LOS_ANGELES)),
    ("the next day is the first of summer time: its own offset", time(7, 30), BERLIN, [("2026-03-28", SENT, None)],
     utc(2026, 3, 28, 12), utc(2026, 3, 29, 5, 30)),
    ("no skip rule: a Saturday is due like any day", time(7, 30), BERLIN, [("2026-12-18", SENT, None)],
     utc(2026, 12, 19, 5), utc(2026, 12, 19, 6, 30)),
    ("a pending one waits for its retry", time(7, 30), BERLIN, [("2026-12-21", PENDING, RETRY)],
     utc(2026, 12, 21, 6, 30, 30), RETRY),
    ("a pending one never tried is due now", time(7, 30), BERLIN, [("2026-12-21", PENDING, None)],
     utc(2026, 12, 21, 6, 45), utc(2026, 12, 21, 6, 45)),
    ("yesterday's still pending comes before today's", time(7, 30), BERLIN, [("2026-12-20", PENDING, RETRY)],
     utc(2026, 12, 21, 9), RETRY),
    ("a later day's sent (the zone moved west): not today's again, tomorrow's", time(7, 30), LOS_ANGELES,
     [("2026-12-21", SENT, None)], utc(2026, 12, 20, 20), datetime(2026, 12, 21, 7, 30, tzinfo=LOS_ANGELES)),
    ("two days ahead on record (`once --now` went back): the day after the one on record", time(7, 30), BERLIN,
     [("2026-12-23", SENT, None)], utc(2026, 12, 21, 12), utc(2026, 12, 22, 6, 30)),
]


@pytest.mark.parametrize("what, at, zone, records, now, expected", DUE_CASES, ids=[row[0] for row in DUE_CASES])
def test_when_the_digest_is_due(store, tmp_path, what, at, zone, records, now, expected):
    for day, delivery, retry_at in records:
        record(store, day, delivery, retry_at)
    due = digest_of(store, tmp_path, config(at, zone)).due_at(now)
    assert due == expected
    if expected is not None and not any(delivery is PENDING for _, delivery, _ in records):
        assert due.astimezone(zone).time() == at  # the local time people configured, whatever the offset


# -- run ------------------------------------------------------------------------------------------------------------

RUN_CASES = [
    # what, the config's zone, now, the day recorded (None: not yet due)
    ("before the time: nothing", BERLIN, utc(2026, 12, 21, 6, 29, 59), None),
    ("at the time: today's", BERLIN, utc(2026, 12, 21, 6, 30), "2026-12-21"),
    ("late in the day: still today's", BERLIN, utc(2026, 12, 21, 22, 59), "2026-12-21"),
    ("the local day names it, not UTC's (Auckland)", AUCKLAND, utc(2026, 12, 20, 19), "2026-12-21"),
    ("the local day names it, not UTC's (Los Angeles)", LOS_ANGELES, utc(2026, 12, 21, 3), "2026-12-20"),
]


@pytest.mark.parametrize("what, zone, now, day", RUN_CASES, ids=[row[0] for row in RUN_CASES])
def test_a_run_records_and_sends_the_day_s_digest_once(store, tmp_path, what, zone, now, day):
    daily = digest_of(store, tmp_path, config(time(7, 30), zone))
    daily.run(now)
    if day is None:
        assert dailies(store) == [] and outbox_mails(tmp_path / "outbox") == {}
        return
    message_id = daily_message_id(date.fromisoformat(day), SENDER)
    [mail] = dailies(store)
    assert (mail.day, mail.message_id, mail.delivery, mail.attempts, mail.to) == (day, message_id, SENT, 1, list(BOSS))
    sent = outbox_mails(tmp_path / "outbox")
    assert list(sent) == [message_id]
    assert sent[message_id]["To"] == BOSS[0] and sent[message_id]["Auto-Submitted"] == "auto-generated"
    assert daily.waiting() is None

    daily.run(now + timedelta(minutes=30))  # the same day again: nothing recorded, nothing sent
    assert dailies(store) == [mail] and mail.attempts == 1 and list(outbox_mails(tmp_path / "outbox")) == [message_id]


def test_each_day_gets_its_own_digest(store, tmp_path):
    daily = digest_of(store, tmp_path)
    for hour in (6, 7, 12):
        daily.run(utc(2026, 12, 21, hour, 30))
        daily.run(utc(2026, 12, 22, hour, 30))
    days = sorted(mail.day for mail in dailies(store))
    assert days == ["2026-12-21", "2026-12-22"]
    assert sorted(outbox_mails(tmp_path / "outbox")) == sorted(
        daily_message_id(date.fromisoformat(day), SENDER) for day in days)


def test_a_digest_of_a_later_day_on_record_is_not_sent_again_after_the_zone_moved_west(store, tmp_path):
    """Recorded under Auckland (a day ahead), then run under Los Angeles: runs all through the Los Angeles day
    record and send nothing (they recorded the same Message-ID anew and sent it again at every run)."""
    digest_of(store, tmp_path, config(time(7, 30), AUCKLAND)).run(utc(2026, 12, 20, 19))
    [first] = dailies(store)
    assert first.day == "2026-12-21" and len(outbox_mails(tmp_path / "outbox")) == 1
    west = digest_of(store, tmp_path, config(time(7, 30), LOS_ANGELES))
    for minutes in (0, 1, 2, 600):  # 20 Dec, 11:00 Los Angeles, then later that day
        west.run(utc(2026, 12, 20, 19) + timedelta(minutes=minutes))
    assert dailies(store) == [first] and first.attempts == 1 and len(outbox_mails(tmp_path / "outbox")) == 1
    west.run(utc(2026, 12, 21, 15, 30))  # 21 Dec, 07:30 in Los Angeles: the day on record, done already
    west.run(utc(2026, 12, 22, 15, 30))  # 22 Dec, 07:30 in Los Angeles: a new day, its own digest
    assert sorted(mail.day for mail in dailies(store)) == ["2026-12-21", "2026-12-22"]
    assert len(outbox_mails(tmp_path / "outbox")) == 2


def test_a_refused_digest_waits_and_a_rerun_resends_the_same_message_id(tmp_path):
    now = utc(2026, 12, 21, 6, 30)
    with Store(tmp_path / "mailesc.json") as store:
        daily = digest_of(store, tmp_path, transport=broken_outbox(tmp_path))
        daily.run(now)
        [mail] = dailies(store)
        assert (mail.delivery, mail.attempts) == (PENDING, 1) and mail.retry_at > now
        assert "cannot write to the outbox" in daily.waiting()
        daily.run(mail.retry_at - timedelta(seconds=1))  # not before its pause is over
        assert mail.attempts == 1 and dailies(store) == [mail]
        retry_at = mail.retry_at
    with Store(tmp_path / "mailesc.json") as store:  # a new process, a writable outbox
        daily = digest_of(store, tmp_path)
        assert daily.due_at(now) == retry_at
        daily.run(retry_at)
        [mail] = dailies(store)
        assert (mail.delivery, mail.attempts, mail.day) == (SENT, 2, "2026-12-21")
        assert list(outbox_mails(tmp_path / "outbox")) == [daily_message_id(date(2026, 12, 21), SENDER)]
        assert daily.waiting() is None


def test_a_digest_recorded_before_a_crash_is_sent_as_recorded(tmp_path):
    """The write-ahead record is on disk, the process died before the send: the next run sends that mail."""
    message_id = daily_message_id(date(2026, 12, 21), SENDER)
    with Store(tmp_path / "mailesc.json") as store:
        record(store, "2026-12-21", PENDING)
        store.flush()  # the record is committed; the store is closed without a send
    with Store(tmp_path / "mailesc.json") as store:
        daily = digest_of(store, tmp_path)
        assert daily.waiting() == "not sent yet"
        daily.run(utc(2026, 12, 21, 6, 40))
        [mail] = dailies(store)
        assert (mail.message_id, mail.delivery) == (message_id, SENT)
        assert list(outbox_mails(tmp_path / "outbox")) == [message_id]


def test_a_taken_over_digest_without_recipients_goes_to_the_configured_ones(store, tmp_path):
    mail = record(store, "2026-12-21", PENDING, to=())
    digest_of(store, tmp_path, config(to=("chief@example.test", "deputy@example.test"))).run(utc(2026, 12, 21, 7))
    assert mail.to == ["chief@example.test", "deputy@example.test"] and mail.delivery is SENT
    [sent] = outbox_mails(tmp_path / "outbox").values()
    assert sent["To"] == "chief@example.test, deputy@example.test"


WAITING_CASES = [
    ("nothing on record", [], None),
    ("sent", [("2026-12-21", SENT, None)], None),
    ("pending, never tried", [("2026-12-21", PENDING, None)], "not sent yet"),
    ("pending after an error", [("2026-12-21", PENDING, "451 try again later")], "451 try again later"),
    ("the latest day decides", [("2026-12-20", PENDING, "old"), ("2026-12-21", SENT, None)], None),
]


@pytest.mark.parametrize("what, records, expected", WAITING_CASES, ids=[row[0] for row in WAITING_CASES])
def test_what_waiting_says(store, tmp_path, what, records, expected):
    for day, delivery, error in records:
        record(store, day, delivery, error=error)
    assert digest_of(store, tmp_path).waiting() == expected


# -- context ----------------------------------------------------------------------------------------------------------

NOW = utc(2026, 12, 21, 8)
# (name, due at, mailbox, status, acknowledged, review entries (action) in order)
BREACHES = [
    ("old-reopened", utc(2026, 12, 10, 12), "default", Status.OPEN, False, ["review", "reopen"]),
    ("late-on-the-19th", utc(2026, 12, 19, 22, 59), "default", Status.OPEN, False, []),  # Berlin: 19th 23:59
    ("first-of-the-20th", utc(2026, 12, 19, 23), "default", Status.RESPONDED_LATE, False, ["review"]),  # 20th 00:00
    ("last-of-the-20th", utc(2026, 12, 20, 22, 59), "sales", Status.OPEN, True, []),  # 20th 23:59, acknowledged
    ("first-of-the-21st", utc(2026, 12, 20, 23), "default", Status.OPEN, False, []),  # Berlin: 21st 00:00
]


def put_breaches(store, rows) -> dict[str, int]:
    ids = {}
    for name, due_at, mailbox, status, acknowledged, actions in rows:
        breach = store.box(mailbox).new_breach(thread=f"<{name}@customer.test>", customer="pat@customer.test",
                                               subject=name, policy="standard", received_at=due_at - timedelta(hours=1),
                                               due_at=due_at, status=status)
        if acknowledged:
            breach.acknowledged_by, breach.acknowledged_at = "boss@example.test", due_at + timedelta(minutes=5)
        for number, action in enumerate(actions):
            store.record_review(ReviewEntry(breach=breach.id, at=due_at + timedelta(hours=number + 1),
                                            by="boss@example.test", action=action,
                                            cause="staffing" if action == "review" else None))
        ids[name] = breach.id
    return ids


CONTEXT_CASES = [
    # the digest's day, the breaches it lists as yesterday's (Berlin local days)
    (date(2026, 12, 21), ["first-of-the-20th", "last-of-the-20th"]),
    (date(2026, 12, 20), ["late-on-the-19th"]),
    (date(2026, 12, 22), ["first-of-the-21st"]),
    (date(2026, 12, 11), ["old-reopened"]),
    (date(2026, 12, 15), []),
]


@pytest.mark.parametrize("day, listed", CONTEXT_CASES, ids=[str(row[0]) for row in CONTEXT_CASES])
def test_the_context_lists_yesterday_s_breaches_and_every_unreviewed_one(store, tmp_path, day, listed):
    ids = put_breaches(store, BREACHES)
    context = digest_of(store, tmp_path).context(day, NOW)
    assert (context["date"], context["yesterday"]) == (day.isoformat(), (day - timedelta(days=1)).isoformat())
    assert [b["subject"] for b in context["breaches"]] == listed
    assert [b["id"] for b in context["breaches"]] == [ids[name] for name in listed]
    # unreviewed: never reviewed, or reopened; acknowledged or answered late makes no difference; by deadline
    assert [b["subject"] for b in context["unreviewed"]] == [
        "old-reopened", "late-on-the-19th", "last-of-the-20th", "first-of-the-21st"]
    assert (context["unreviewed_count"], context["overdue_count"]) == (4, 1)  # only the reopened one: > 7 days
    assert (context["now"], context["review_period_days"]) == ("2026-12-21T08:00:00+00:00", 7)


def test_the_context_names_the_oldest_unreviewed_and_counts_the_rest(store, tmp_path):
    rows = [(f"b{n:03d}", utc(2026, 11, 1) + timedelta(hours=n), "default", Status.OPEN, False, [])
            for n in range(LISTED + 3)]
    put_breaches(store, reversed(rows))  # ids in the opposite order of the deadlines
    context = digest_of(store, tmp_path).context(date(2026, 12, 21), NOW)
    assert [b["subject"] for b in context["unreviewed"]] == [row[0] for row in rows[:LISTED]]
    assert (context["unreviewed_count"], context["overdue_count"]) == (LISTED + 3, LISTED + 3)


def test_the_digest_mail_says_what_the_context_holds(store, tmp_path):
    put_breaches(store, BREACHES)
    digest_of(store, tmp_path).run(utc(2026, 12, 21, 6, 30))
    [sent] = outbox_mails(tmp_path / "outbox").values()
    assert sent["Subject"] == "[SLA daily] 2 breach(es) on 2026-12-20, 4 awaiting review"
    text = sent.get_content()
    assert "first-of-the-20th" in text and "4 breach(es) still have no recorded cause, 1 of them" in text


def test_the_window_is_the_digest_s_zone_and_times_are_in_the_mail_zone(store, tmp_path):
    """[templates] timezone only changes how times read, not which breaches were yesterday's."""
    put_breaches(store, BREACHES)
    context = digest_of(store, tmp_path, mail_zone=UTC).context(date(2026, 12, 21), NOW)
    assert [(b["subject"], b["due"]) for b in context["breaches"]] == [
        ("first-of-the-20th", "Sat 19 Dec 23:00 UTC"), ("last-of-the-20th", "Sun 20 Dec 22:59 UTC")]


# -- _summary --------------------------------------------------------------------------------------------------------

def a_breach(due_at: datetime, status=Status.OPEN, levels=()) -> Breach:
    breach = Breach(id=7, thread="<t@customer.test>", customer="pat@customer.test", subject="Cannot log in",
                    policy="standard", received_at=due_at - timedelta(hours=1, minutes=15), due_at=due_at,
                    status=status, mailbox="sales")
    breach.escalations = [QueuedMail(kind=MailKind.ESCALATION, message_id=f"<e{level}@x>", to=list(BOSS), at=due_at,
                                     template="escalation", level=level) for level in levels]
    return breach


SUMMARY_CASES = [
    # what, due at, status, levels, zone, now, expected (due, received, levels, age_days, status)
    ("local time in Berlin", utc(2026, 12, 20, 10), Status.OPEN, (1,), BERLIN, NOW,
     ("Sun 20 Dec 11:00 CET", "Sun 20 Dec 09:45 CET", [1], 0, "open")),
    ("UTC when asked, two levels", utc(2026, 12, 18, 10), Status.OPEN, (1, 2), UTC, NOW,
     ("Fri 18 Dec 10:00 UTC", "Fri 18 Dec 08:45 UTC", [1, 2], 2, "open")),
    ("summer time", utc(2026, 7, 1, 10), Status.RESPONDED_LATE, (), BERLIN, NOW,
     ("Wed 1 Jul 12:00 CEST", "Wed 1 Jul 10:45 CEST", [], 172, "responded_late")),
    ("another year is written out", utc(2026, 12, 30, 10), Status.OPEN, (), UTC, utc(2027, 1, 2, 9),
     ("Wed 30 Dec 2026 10:00 UTC", "Wed 30 Dec 2026 08:45 UTC", [], 2, "open")),
]


@pytest.mark.parametrize("what, due_at, status, levels, zone, now, expected", SUMMARY_CASES,
                         ids=[row[0] for row in SUMMARY_CASES])
def test_a_breach_as_the_digest_lists_it(what, due_at, status, levels, zone, now, expected):
    summary = _summary(a_breach(due_at, status, levels), now, zone)
    assert (summary["due"], summary["received"], summary["levels"], summary["age_days"], summary["status"]) == expected
    assert (summary["id"], summary["mailbox"], summary["customer"], summary["subject"], summary["policy"]) == (
        7, "sales", "pat@customer.test", "Cannot log in", "standard")
    assert summary["due_iso"] == due_at.isoformat(timespec="seconds")
    assert summary["received_iso"] == (due_at - timedelta(hours=1, minutes=15)).isoformat(timespec="seconds")
