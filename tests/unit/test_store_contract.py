"""The store contract, run against BOTH backends: the embedded file store and PostgreSQL.

Whatever the engine and the admin commands do with one backend must hold with the other: records survive a
flush and a reopen exactly, archiving moves them out of the live set but keeps them on record, breach ids are
never reused, and a store that is damaged or not mailesc's is refused and left untouched.

The adapters below give both the same few verbs for what is not (yet) one API: reopening, the history, reviews,
and spoiling a store.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from mailesc import reviews
from mailesc.errors import StoreError
from mailesc.history import load_history, thread_key
from mailesc.model import Delivery, EscalationRecord, Kind, Quarantined, Status, Thread, ThreadMessage
from mailesc.store import Store, find_breach

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)
CET = timezone(timedelta(hours=1))
CAUSES = ("staffing", "tooling")


class FileBackend:
    """mailesc.store.Store behind the contract's surface."""

    name = "file"

    def __init__(self, tmp_path):
        self.path = tmp_path / "state" / "mailesc.json"
        self.store = None

    def open(self):
        self.store = Store(self.path)
        return self

    def box(self, name: str = "default"):
        return self.store.box(name)

    def reopen(self):
        self.close()
        return self.open()

    def history(self):
        return load_history(self.path)

    def find_breach(self, breach_id: int):
        return find_breach(self.path, breach_id)

    def record_review(self, entry):
        reviews.record_review(self.path, entry, CAUSES)

    def spoil(self):
        """Make the store something mailesc must refuse; returns a fingerprint of what is there."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text('{"threads": {"1": {"id": "<x>"}}, "breaches": ')  # cut short
        return self.fingerprint()

    def fingerprint(self):
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def close(self):
        if self.store is not None:
            self.store.close()
            self.store = None


class PostgresBackend:
    """mailesc.stores.postgres.PostgresStore on a fresh database of the throwaway cluster."""

    name = "postgresql"

    def __init__(self, database, cluster):
        self.url, self.password, self.cluster = database.url, database.password, cluster
        self.database = database.url.rpartition("/")[2]
        self.store = None

    def open(self):
        from mailesc.stores.postgres import PostgresStore

        self.store = PostgresStore(self.url, self.password, security="plain")
        return self

    def box(self, name: str = "default"):
        return self.store.box(name)

    def reopen(self):
        self.close()
        return self.open()

    def history(self):
        return self.store.history()

    def find_breach(self, breach_id: int):
        return self.store.find_breach(breach_id)

    def record_review(self, entry):
        reviews.check_cause(entry, CAUSES)
        self.store.record_review(entry)

    def spoil(self):
        """A mailesc database that lost its schema version (a botched restore)."""
        self.close()
        self.cluster.admin_sql("DELETE FROM mailesc_schema", database=self.database)
        return self.fingerprint()

    def fingerprint(self):
        return self.cluster.admin_sql(
            "SELECT (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
            "        WHERE relnamespace = 'public'::regnamespace), "
            "(SELECT count(*) FROM mailesc_schema), (SELECT string_agg(doc::text, ',' ORDER BY id) FROM breaches), "
            "(SELECT string_agg(doc::text, ',' ORDER BY id) FROM threads)", database=self.database)

    def close(self):
        if self.store is not None:
            self.store.close()
            self.store = None


@pytest.fixture(params=["file", "postgresql"])
def backend(request, tmp_path):
    if request.param == "file":
        made = FileBackend(tmp_path)
    else:
        made = PostgresBackend(request.getfixturevalue("pg_database"), request.getfixturevalue("postgres"))
    made.open()
    yield made
    made.close()


def make_thread(n: int = 1) -> Thread:
    root = f"<root{n}@customer.example>"
    return Thread(
        id=root, subject="login problem", ids={root, f"<reply{n}@example.test>", "<missing-parent@x>"},
        messages=[
            ThreadMessage(key=f"INBOX/{n}", folder="INBOX", message_id=root, kind=Kind.CUSTOMER,
                          sender="alice@customer.example", arrived=T0, subject="Login problem", name="Alice Müller"),
            ThreadMessage(key=f"Sent/{n}", folder="Sent", message_id=f"<reply{n}@example.test>", kind=Kind.TEAM,
                          sender="bob@example.test", arrived=datetime(2024, 3, 4, 15, 0, tzinfo=CET),
                          subject="Re: Login problem", size=1234),
        ],
        policy="default", due_at=T0 + timedelta(hours=4))


def add_breach(box, thread: Thread, clock: int = 0, **values):
    breach = box.new_breach(**{"thread": thread.id, "customer": "alice@customer.example", "subject": "Login problem",
                               "policy": "default", "received_at": T0, "due_at": T0 + timedelta(hours=4),
                               "clock": clock, **values})
    thread.breach_ids[clock] = breach.id
    box.put_thread(thread)
    return breach


def escalate(box, breach, level: int, **values):
    breach.escalations.append(EscalationRecord(
        level=level, at=breach.due_at + timedelta(hours=level - 1), to=["manager@example.test"],
        message_id=f"<mailesc.{breach.id}.L{level}@example.test>", **values))
    box.put_breach(breach)


def test_threads_and_breaches_with_escalations_survive_a_flush_and_a_reopen(backend):
    box = backend.box()
    thread = make_thread()
    breach = add_breach(box, thread)
    escalate(box, breach, 1, delivery=Delivery.SENT, sent_at=T0 + timedelta(hours=4, seconds=3))
    escalate(box, breach, 2, delivery=Delivery.FAILED, error="550 no such user", attempts=3, template="urgent")
    late = add_breach(box, make_thread(2), status=Status.RESPONDED_LATE, responded_at=T0 + timedelta(hours=5))
    box.flush()

    box = backend.reopen().box()
    assert set(box.threads) == {thread.id, "<root2@customer.example>"}
    assert box.threads[thread.id] == thread
    assert box.breaches[breach.id] == breach
    assert box.breaches[late.id] == late
    assert [e.delivery for e in box.breaches[breach.id].escalations] == [Delivery.SENT, Delivery.FAILED]


def test_a_change_after_a_flush_is_written_by_the_next_flush_and_nothing_unflushed_survives(backend):
    box = backend.box()
    thread = make_thread()
    breach = add_breach(box, thread)
    box.flush()
    breach.status, breach.responded_at = Status.RESPONDED_LATE, T0 + timedelta(hours=6)
    box.put_breach(breach)
    box.flush()
    escalate(box, breach, 1)  # never flushed: a crash here loses it, as it must (it was never sent)
    box.put_thread(make_thread(3))

    box = backend.reopen().box()
    assert box.breaches[breach.id].status == Status.RESPONDED_LATE
    assert box.breaches[breach.id].escalations == []
    assert "<root3@customer.example>" not in box.threads


def test_quarantine_in_and_out(backend):
    box = backend.box()
    box.put_quarantined(Quarantined(key="INBOX/99", folder="INBOX", reason="the message is empty", at=T0))
    box.put_quarantined(Quarantined(key="INBOX/100", folder="INBOX", reason="not a message", at=T0,
                                    arrived=T0 - timedelta(days=1), retry=True))
    box.flush()
    box = backend.reopen().box()
    assert set(box.quarantine) == {"INBOX/99", "INBOX/100"}
    assert box.quarantine["INBOX/100"].retry and box.quarantine["INBOX/100"].arrived == T0 - timedelta(days=1)
    box.drop_quarantined("INBOX/99")
    box.flush()
    assert set(backend.reopen().box().quarantine) == {"INBOX/100"}


def test_bookmarks_health_and_meta_survive(backend):
    box = backend.box()
    box.sync["imap:INBOX"] = {"uidvalidity": 1700000000, "last_uid": 42}
    box.sync["maildir:new"] = {"seen": ["1.a", "2.b"]}
    box.health["mailbox"] = {"ok_at": "2024-03-04T09:00:00+00:00", "error": None}
    start = box.first_start(T0)
    box.flush()
    box.sync["imap:INBOX"] = {"uidvalidity": 1700000000, "last_uid": 43}
    box.flush()
    box = backend.reopen().box()
    assert dict(box.sync) == {"imap:INBOX": {"uidvalidity": 1700000000, "last_uid": 43},
                              "maildir:new": {"seen": ["1.a", "2.b"]}}
    assert box.health["mailbox"] == {"ok_at": "2024-03-04T09:00:00+00:00", "error": None}
    assert start == T0 and box.first_start(T0 + timedelta(days=9)) == T0
    with pytest.raises(StoreError):
        del box.sync["imap:INBOX"]


def test_archive_takes_threads_out_of_the_live_set_but_keeps_them_on_record(backend):
    box = backend.box()
    old, live = make_thread(1), make_thread(2)
    old_breach = add_breach(box, old)
    escalate(box, old_breach, 1, delivery=Delivery.SENT, sent_at=T0 + timedelta(hours=4))
    live_breach = add_breach(box, live)
    box.flush()
    box.archive([box.threads[old.id]])
    assert old.id not in box.threads and old_breach.id not in box.breaches
    box.flush()

    box = backend.reopen().box()
    assert set(box.threads) == {live.id} and set(box.breaches) == {live_breach.id}
    history = backend.history()
    assert history.threads[thread_key(old)] == old and history.threads[thread_key(live)] == live
    assert history.breaches[old_breach.id] == old_breach and history.breaches[live_breach.id] == live_breach
    assert backend.find_breach(old_breach.id) == (old, old_breach)
    assert backend.find_breach(live_breach.id) == (live, live_breach)
    assert backend.find_breach(10_000) == (None, None)


def test_breach_ids_are_never_reused_not_even_after_archiving_and_reopening(backend):
    box = backend.box()
    first = add_breach(box, make_thread(1))
    second = add_breach(box, make_thread(2))
    box.flush()
    box.archive([box.threads[make_thread(2).id]])
    box.flush()
    box = backend.reopen().box()
    third = add_breach(box, make_thread(3))
    box.flush()
    assert first.id < second.id < third.id
    assert len({first.id, second.id, third.id}) == 3


def test_reviews_are_on_record_in_order(backend):
    box = backend.box()
    breach = add_breach(box, make_thread())
    box.flush()
    backend.record_review(reviews.ReviewEntry(breach=breach.id, at=T0 + timedelta(days=1), by="ops",
                                              action="review", cause="staffing", note="holiday"))
    backend.record_review(reviews.ReviewEntry(breach=breach.id, at=T0 + timedelta(days=2), by="lead",
                                              action="reopen"))
    with pytest.raises(Exception, match="unknown cause"):
        backend.record_review(reviews.ReviewEntry(breach=breach.id, at=T0, by="x", action="review", cause="luck"))
    found = backend.history().reviews
    assert [(e.by, e.action, e.cause, e.note) for e in found.history(breach.id)] == [
        ("ops", "review", "staffing", "holiday"), ("lead", "reopen", None, None)]
    assert found.state(breach.id) == reviews.REOPENED


def test_mailboxes_are_apart_and_a_thread_id_may_repeat_across_them(backend):
    support, billing = backend.box("support"), backend.box("billing")
    same = make_thread(1)
    add_breach(support, same)
    billing.put_thread(make_thread(1))
    billing.sync["imap:INBOX"] = {"last_uid": 7}
    support.flush()
    billing.flush()
    backend.reopen()
    support, billing = backend.box("support"), backend.box("billing")
    assert set(support.threads) == set(billing.threads) == {same.id}
    assert support.threads[same.id].mailbox == "support" and billing.threads[same.id].mailbox == "billing"
    assert [b.mailbox for b in support.breaches.values()] == ["support"]
    assert {thread_key(t) for t in backend.history().threads.values()} == {("support", same.id), ("billing", same.id)}
    assert {box.name for box in backend.store.mailboxes()} - {"default"} == {"billing", "support"}
    assert len(support.breaches) == 1 and len(billing.breaches) == 0
    assert dict(billing.sync) == {"imap:INBOX": {"last_uid": 7}} and dict(support.sync) == {}


def test_a_store_that_is_damaged_or_not_mailescs_is_refused_and_left_untouched(backend):
    box = backend.box()
    add_breach(box, make_thread())
    box.flush()
    before = backend.spoil()
    with pytest.raises(StoreError, match="left untouched"):
        backend.open()
    assert backend.fingerprint() == before


def _report_case(backend):
    """Threads over three weeks in two mailboxes, answered or not, with the business hours the engine keeps or
    without (written before they were kept), one of a policy no longer configured; breaches acknowledged or
    not, reviewed, reopened or not. Returns (policies, threads, breaches, reviews) as objects."""
    from mailesc.hours import make_calendar
    from mailesc.policies import Policies, Rule
    from mailesc.reviews import ReviewEntry, Reviews
    from mailesc.sla import response_hours

    berlin = make_calendar("office", "Europe/Berlin", {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")})
    rules = tuple(Rule(name=name, source="test", match=None, first_response=timedelta(hours=4), calendar=calendar,
                       escalate=()) for name, calendar in (("gold", berlin), ("basic", make_calendar("always", "UTC",
                                                                                                       None))))
    policies = Policies(rules=rules, calendars={"office": berlin})
    threads, breaches, entries = [], [], []
    for n in range(1, 25):
        mailbox = "support" if n % 3 else "billing"
        policy = ("gold", "basic", "retired")[n % 3 if n % 5 else 2]
        received = T0 + timedelta(days=n // 2, hours=7 * n % 13, minutes=17 * n % 60)
        messages = [ThreadMessage(key=f"c{n}", folder="INBOX", message_id=f"<c{n}@x>", kind=Kind.CUSTOMER,
                                  sender=f"user{n % 4}@acme{n % 2}.example", arrived=received)]
        if n % 4:
            messages.append(ThreadMessage(key=f"t{n}", folder="Sent", message_id=f"<t{n}@x>", kind=Kind.TEAM,
                                          sender="agent@example.test",
                                          arrived=received + timedelta(hours=n % 7 + 0.25, minutes=n)))
        thread = Thread(id=f"<c{n}@x>", subject=f"case {n}", ids={f"<c{n}@x>"}, messages=messages, policy=policy,
                        due_at=received + timedelta(hours=4))
        if n % 4 and n % 6:  # the engine kept its hours (the others: written before, counted by the report)
            thread.response_hours = response_hours(thread, policies.get(policy))
        box = backend.box(mailbox)
        box.put_thread(thread)
        if n % 2:
            reply = thread.first_response_after(received)
            breach = add_breach(box, thread, customer=messages[0].sender, policy=policy, received_at=received,
                                due_at=received + timedelta(hours=4), status=Status.RESPONDED_LATE if reply
                                else Status.OPEN, responded_at=reply.arrived if reply else None)
            if n % 5 == 1:
                breach.acknowledged_by, breach.acknowledged_at = "boss@x", breach.due_at + timedelta(minutes=37 * n)
                box.put_breach(breach)
            breaches.append(breach)
            if n % 3 == 0:
                entries.append(ReviewEntry(breach=breach.id, at=T0, by="alice", action="review", cause="staffing"))
            if n % 7 == 0:
                entries += [ReviewEntry(breach=breach.id, at=T0, by="alice", action="review", cause="tooling"),
                            ReviewEntry(breach=breach.id, at=T0, by="bob", action="reopen")]
        threads.append(thread)
        box.flush()
    for entry in entries:
        backend.record_review(entry)
    return policies, threads, breaches, Reviews(entries)


@pytest.mark.parametrize("by", [None, "policy", "cause", "customer", "mailbox", "weekday", "week"])
def test_a_report_counted_by_the_store_is_the_report_of_its_records(backend, by):
    """The file store counts in Python over the summaries it keeps with each thread, PostgreSQL in SQL; both
    must give the report that the records themselves give (statistics over the objects)."""
    from mailesc.reporting.queries import ReportRecords
    from mailesc.reporting.statistics import assemble, build_report

    policies, threads, breaches, reviews = _report_case(backend)
    now = T0 + timedelta(days=40)
    for since, until in ((None, None), (T0 + timedelta(days=3), T0 + timedelta(days=9, hours=5))):
        options = {"now": now, "review_period": timedelta(days=30), "since": since, "until": until, "by": by}
        expected = build_report(ReportRecords.of(threads, breaches, reviews), policies, **options)
        counted = backend.store.count_report(policies, **options)
        assert assemble(counted, **options) == expected
        assert expected["totals"]["threads"] and expected["totals"]["first_response_p90_hours"] is not None


def test_a_database_before_the_report_step_gains_the_report_columns_from_its_records(pg_database, postgres):
    """Schema step 3 fills the report columns of records written before it: a thread's from its summary when it
    has one, else from its messages (its business hours are then counted by the report with the calendar)."""
    from mailesc.reporting.queries import ReportRecords
    from mailesc.reporting.statistics import assemble, build_report

    backend = PostgresBackend(pg_database, postgres).open()
    try:
        policies, threads, breaches, reviews = _report_case(backend)
        backend.close()
        database = backend.database
        postgres.admin_sql("UPDATE threads SET doc = doc - 'report' WHERE id LIKE '<c1%'", database=database)
        postgres.admin_sql("ALTER TABLE threads DROP COLUMN received_at, DROP COLUMN customer, DROP COLUMN policy, "
                           "DROP COLUMN first_breach, DROP COLUMN responded_at, DROP COLUMN response_hours",
                           database=database)
        postgres.admin_sql("ALTER TABLE breaches DROP COLUMN acknowledged_at", database=database)
        postgres.admin_sql("DROP INDEX IF EXISTS breaches_report", database=database)
        postgres.admin_sql("DELETE FROM mailesc_schema WHERE version = 3", database=database)
        backend.open()  # migrates
        assert backend.store.schema_version == 3
        assert postgres.admin_sql("SELECT count(*) FROM threads WHERE received_at IS NULL OR customer IS NULL",
                                  database=database)[0][0] == 0
        options = {"now": T0 + timedelta(days=40), "review_period": timedelta(days=30), "since": None, "until": None}
        for by in (None, "customer", "cause"):
            expected = build_report(ReportRecords.of(threads, breaches, reviews), policies, **options, by=by)
            assert assemble(backend.store.count_report(policies, **options, by=by), **options, by=by) == expected
    finally:
        backend.close()


def test_a_levels_webhook_posts_are_kept_with_their_breach_apart_from_its_mails(backend):
    """A post (notify = ["webhook:ops"]) is queued with its breach like the level's mail, written at the same
    flush, survives a reopen, is found pending until settled, and counts as no escalation mail."""
    from mailesc.model import MailKind, QueuedMail

    box = backend.box()
    thread = make_thread()
    breach = add_breach(box, thread)
    box.flush()
    mail = EscalationRecord(level=1, at=breach.due_at, to=["manager@example.test"],
                            message_id=f"<mailesc.{breach.id}.L1@example.test>")
    post = QueuedMail(kind=MailKind.WEBHOOK, level=1, at=breach.due_at, to=["webhook:ops"], template="",
                      message_id=f"<mailesc.{breach.id}.L1Pops@example.test>")
    box.enqueue(mail, thread=thread, breach=breach)
    box.enqueue(post, thread=thread, breach=breach)
    box.flush()

    box = backend.reopen().box()
    again = box.breaches[breach.id]
    assert (again.escalations, again.notifications, again.escalated_levels()) == ([mail], [post], {1})
    assert sorted(item.mail.message_id for item in box.pending_mails()) == sorted([mail.message_id, post.message_id])
    kept = again.notifications[0]
    kept.delivery, kept.sent_at, kept.attempts = Delivery.SENT, breach.due_at + timedelta(seconds=2), 1
    box.put_mail(kept, thread=box.threads[thread.id], breach=again)
    box.flush()

    box = backend.reopen().box()
    assert [item.mail.message_id for item in box.pending_mails()] == [mail.message_id]
    assert box.breaches[breach.id].notifications[0].delivery is Delivery.SENT
    if backend.name == "postgresql":  # its own row by id; the escalations (one per level) are the mails only
        connection = backend.store.connection()
        assert connection.execute("SELECT kind, level, breach, recipients, delivery FROM outgoing WHERE message_id "
                                  "= %s", (post.message_id,)).fetchall() == [("webhook", 1, breach.id, ["webhook:ops"],
                                                                              "sent")]
        assert connection.execute("SELECT message_id FROM escalations").fetchall() == [(mail.message_id,)]
