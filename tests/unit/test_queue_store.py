"""The outgoing-mail queue in both stores: mails of no single thread (storm-control and daily digests) in a
box's `outgoing` table, the pending index, the daily digest's record taken over from an older store's health
table, and PostgreSQL's schema v1 → v2 migration (the `escalations` table moved into `outgoing`)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from mailesc.model import Breach, Delivery, MailKind, QueuedMail
from mailesc.queue import MailIndex, daily_from_health, daily_state, latest_daily
from mailesc.store import INSTALLATION, Store
from tests.unit.test_store_contract import T0, add_breach, backend, make_thread  # noqa: F401 (backend: a fixture)

DIGEST_ID = "<mailesc.digest.0123456789abcdef0123@example.test>"
DAILY_STATE = {"date": "2024-03-05", "message_id": "<mailesc.daily.2024-03-05@example.test>", "delivery": "pending",
               "attempts": 1, "retry_at": "2024-03-05T07:31:30+00:00", "error": "451 try again later"}


def _digest(**values) -> QueuedMail:
    return QueuedMail(**{"kind": MailKind.DIGEST, "message_id": DIGEST_ID, "to": ["manager@example.test"],
                         "at": T0, "template": "digest", "covers": ["<a@x>", "<b@x>"], **values})


def test_a_digest_is_queued_in_the_box_and_survives_a_reopen(backend):  # noqa: F811
    box = backend.box("support")
    box.enqueue(_digest())
    assert [item.mail.message_id for item in box.pending_mails()] == [DIGEST_ID]
    box.flush()
    box = backend.reopen().box("support")
    assert box.outgoing[DIGEST_ID] == _digest()
    [item] = box.pending_mails()
    assert (item.thread, item.breach, item.mail.covers) == (None, None, ["<a@x>", "<b@x>"])
    item.mail.delivery, item.mail.sent_at, item.mail.attempts = Delivery.SENT, T0 + timedelta(minutes=1), 1
    box.put_mail(item.mail)
    box.flush()
    box = backend.reopen().box("support")
    assert box.pending_mails() == []


def test_pending_mails_come_from_the_index_escalations_first(backend):  # noqa: F811
    box = backend.box()
    thread, other = make_thread(1), make_thread(2)
    breach = add_breach(box, thread)
    box.enqueue(QueuedMail(kind=MailKind.WARNING, message_id="<w@x>", to=["team@example.test"], at=T0,
                           template="warning"), thread=other)
    box.enqueue(QueuedMail(kind=MailKind.ESCALATION, message_id="<l1@x>", to=["manager@example.test"], at=T0,
                           template="escalation", level=1), thread=thread, breach=breach)
    box.enqueue(_digest())
    assert [(i.mail.message_id, i.breach is not None) for i in box.pending_mails()] == [
        ("<l1@x>", True), ("<w@x>", False), (DIGEST_ID, False)]
    box.flush()
    box = backend.reopen().box()
    assert [i.mail.kind for i in box.pending_mails()] == ["escalation", "warning", "digest"]


@pytest.mark.parametrize("deliveries, expected", [
    ([Delivery.PENDING, Delivery.SENT], ["<m0@x>"]),
    ([Delivery.SENT, Delivery.FAILED], []),
    ([Delivery.PENDING, Delivery.PENDING], ["<m0@x>", "<m1@x>"]),
], ids=["one-pending", "none-pending", "both-pending"])
def test_the_index_finds_pending_mails_and_forgets_settled_places(deliveries, expected):
    thread = make_thread()
    for number, delivery in enumerate(deliveries):
        thread.notices.append(QueuedMail(kind="warning", message_id=f"<m{number}@x>", to=["t@x"], at=T0,
                                         template="warning", delivery=delivery))
    index = MailIndex()
    assert [i.mail.message_id for i in index.pending({thread.id: thread}, {})] == expected
    for mail in thread.notices:
        mail.delivery = Delivery.SENT
    assert index.pending({thread.id: thread}, {}) == []
    thread.notices[0].delivery = Delivery.PENDING  # put back behind the index's back: found after a rebuild only
    assert index.pending({thread.id: thread}, {}) == []
    index.rebuild({thread.id: thread}, {})
    assert [i.mail.message_id for i in index.pending({thread.id: thread}, {})] == ["<m0@x>"]


@pytest.mark.parametrize("state, expected", [
    (DAILY_STATE, ("pending", 1, "2024-03-05", "451 try again later")),
    ({**DAILY_STATE, "delivery": "sent", "sent_at": "2024-03-05T07:32:00+00:00", "retry_at": None, "error": None},
     ("sent", 1, "2024-03-05", None)),
    ({"sent_on": "2024-03-04"}, None),
    ({**DAILY_STATE, "delivery": "lost"}, None),
], ids=["pending", "sent", "unknown-shape", "unknown-delivery"])
def test_an_older_daily_digest_record_becomes_a_queued_mail_and_reads_back_the_same(state, expected):
    mail = daily_from_health(state)
    if expected is None:
        assert mail is None
        return
    assert (str(mail.delivery), mail.attempts, mail.day, mail.error) == expected
    assert mail.kind == "daily" and mail.message_id == state["message_id"]
    assert daily_state(mail) == state  # `status` shows the same JSON keys and values as before


def test_the_file_store_takes_the_daily_digest_over_from_health_on_load(tmp_path):
    path = tmp_path / "mailesc.json"
    with Store(path) as store:  # as an older mailesc left it
        store.installation.health["daily_digest"] = dict(DAILY_STATE)
        store.flush()
    assert "outgoing" not in json.loads(path.read_text()) or not json.loads(path.read_text())["outgoing"]
    with Store(path) as store:
        mail = latest_daily(store.installation.outgoing)
        assert mail is not None and mail.delivery is Delivery.PENDING and mail.day == "2024-03-05"
        assert [i.mail.message_id for i in store.installation.pending_mails()] == [DAILY_STATE["message_id"]]
        store.flush()  # the new record is written at the next flush
    doc = json.loads(path.read_text())
    [written] = doc["outgoing"].values()
    assert (written["kind"], written["day"], written["mailbox"], written["message_id"]) == (
        "daily", "2024-03-05", INSTALLATION, DAILY_STATE["message_id"])
    with Store(path, readonly=True) as store:
        assert daily_state(latest_daily(store.installation.outgoing)) == DAILY_STATE


# -- PostgreSQL: schema v1 -> v2 ----------------------------------------------------------------------------------


def test_a_v1_database_is_migrated_to_v2_and_keeps_its_rows(pg_database):
    psycopg = pytest.importorskip("psycopg")
    from psycopg.types.json import Jsonb

    from mailesc.store import _breach_doc, _thread_doc
    from mailesc.stores.postgres import SCHEMA_V1, SCHEMA_VERSION, PostgresStore

    thread = make_thread()
    breach = Breach(id=1, thread=thread.id, customer="alice@customer.example", subject="Login problem",
                    policy="default", received_at=T0, due_at=T0 + timedelta(hours=4), mailbox="support")
    thread.breach_ids[0], thread.mailbox = 1, "support"
    escalate_v1 = [QueuedMail(kind="escalation", level=level, message_id=f"<mailesc.1.L{level}@example.test>",
                              to=["manager@example.test"], at=T0 + timedelta(hours=3 + level), template="escalation",
                              delivery=delivery, attempts=1) for level, delivery in ((1, Delivery.SENT),
                                                                                     (2, Delivery.PENDING))]
    breach.escalations.extend(escalate_v1)
    with psycopg.connect(pg_database.url, password=pg_database.password, autocommit=True) as connection:
        for statement in SCHEMA_V1:  # the database exactly as mailesc's schema v1 made it
            connection.execute(statement)
        connection.execute("INSERT INTO mailesc_schema (version) VALUES (1)")
        connection.execute("INSERT INTO threads (mailbox, id, doc) VALUES ('support', %s, %s)",
                           (thread.id, Jsonb(_thread_doc(thread))))
        connection.execute("INSERT INTO breaches (id, mailbox, thread, clock, customer, policy, status, received_at, "
                           "due_at, doc) VALUES (1, 'support', %s, 0, 'alice@customer.example', 'default', 'open', "
                           "%s, %s, %s)", (thread.id, T0, T0 + timedelta(hours=4), Jsonb(_breach_doc(breach))))
        for e in escalate_v1:
            connection.execute("INSERT INTO escalations (mailbox, thread, clock, level, breach, message_id, "
                               "recipients, delivery, at, attempts) VALUES ('support', %s, 0, %s, 1, %s, %s, %s, %s, "
                               "1)", (thread.id, e.level, e.message_id, e.to, str(e.delivery), e.at))
        connection.execute("INSERT INTO health (mailbox, name, state) VALUES ('', 'daily_digest', %s)",
                           (Jsonb(DAILY_STATE),))

    with PostgresStore(pg_database.url, pg_database.password, security="plain") as store:
        assert store.describe()["schema"] == SCHEMA_VERSION == 3  # v1, then v2 (the queue) and v3 (reports)
        box = store.box("support")
        assert [(e.level, e.delivery) for e in box.breaches[1].escalations] == [(1, Delivery.SENT),
                                                                                (2, Delivery.PENDING)]
        assert [i.mail.message_id for i in box.pending_mails()] == ["<mailesc.1.L2@example.test>"]
        assert daily_state(latest_daily(store.installation.outgoing)) == DAILY_STATE  # taken over on load
        store.installation.flush()

    with psycopg.connect(pg_database.url, password=pg_database.password, autocommit=True) as connection:
        def rows(statement):
            return connection.execute(statement).fetchall()

        assert rows("SELECT version FROM mailesc_schema ORDER BY version") == [(1,), (2,), (3,)]
        assert rows("SELECT kind, level, message_id, delivery, breach FROM outgoing WHERE kind = 'escalation' "
                    "ORDER BY level") == [("escalation", 1, "<mailesc.1.L1@example.test>", "sent", 1),
                                          ("escalation", 2, "<mailesc.1.L2@example.test>", "pending", 1)]
        assert rows("SELECT level, message_id FROM escalations ORDER BY level") == [
            (1, "<mailesc.1.L1@example.test>"), (2, "<mailesc.1.L2@example.test>")]  # the v1 name, now a view
        assert rows("SELECT mailbox, kind, doc->>'day', delivery FROM outgoing WHERE kind = 'daily'") == [
            ("", "daily", "2024-03-05", "pending")]
        with pytest.raises(psycopg.errors.UniqueViolation):  # the exactly-once key of a level stays
            connection.execute("INSERT INTO outgoing (message_id, mailbox, kind, thread, clock, level, breach, "
                               "recipients, delivery, at) VALUES ('<other@x>', 'support', 'escalation', %s, 0, 1, 1, "
                               "'{}', 'pending', now())", (thread.id,))


class _CountedWalks(dict):
    """A box's `outgoing` that counts the walks over all of it."""

    walks = 0

    def values(self):
        self.walks += 1
        return super().values()

    def items(self):
        self.walks += 1
        return super().items()

    def __iter__(self):
        self.walks += 1
        return super().__iter__()


def _digest_numbered(number: int, delivery: Delivery = Delivery.SENT) -> QueuedMail:
    return _digest(message_id=f"<mailesc.digest.{number:020d}@example.test>", delivery=delivery)


def test_listing_pending_mails_does_not_walk_the_sent_digests():
    """A replay or a long-running daemon keeps every digest it sent in `outgoing`: listing the pending mails
    (several times a cycle) must not cost a walk over them, or a long replay grows quadratic."""
    outgoing = _CountedWalks({mail.message_id: mail for mail in map(_digest_numbered, range(1000))})
    index = MailIndex()
    assert index.pending({}, {}, outgoing) == []
    assert outgoing.walks == 1  # the first listing builds the index
    fresh = _digest_numbered(1000, Delivery.PENDING)
    outgoing[fresh.message_id] = fresh
    index.add_outgoing(fresh)
    for _ in range(5):
        assert [item.mail for item in index.pending({}, {}, outgoing)] == [fresh]
    fresh.delivery = Delivery.SENT
    assert index.pending({}, {}, outgoing) == []
    assert outgoing.walks == 1


def test_pending_digests_keep_the_order_of_outgoing_and_a_rebuild_finds_those_put_back():
    first, second, sent = (_digest_numbered(1, Delivery.PENDING), _digest_numbered(2, Delivery.PENDING),
                           _digest_numbered(3))
    outgoing = {mail.message_id: mail for mail in (first, second, sent)}
    index = MailIndex()
    assert [item.mail for item in index.pending({}, {}, outgoing)] == [first, second]
    index.add_outgoing(second)  # put again: still in the order outgoing keeps them
    assert [item.mail for item in index.pending({}, {}, outgoing)] == [first, second]
    first.delivery = second.delivery = Delivery.SENT
    assert index.pending({}, {}, outgoing) == []
    sent.delivery = Delivery.PENDING  # put back behind the index's back: found after a rebuild only
    assert index.pending({}, {}, outgoing) == []
    index.rebuild({}, {}, outgoing)
    assert [item.mail for item in index.pending({}, {}, outgoing)] == [sent]


def test_a_digest_put_back_to_pending_through_the_box_is_listed_again(backend):  # noqa: F811
    box = backend.box("support")
    box.enqueue(_digest())
    [item] = box.pending_mails()
    item.mail.delivery = Delivery.SENT
    box.put_mail(item.mail)
    assert box.pending_mails() == []
    item.mail.delivery = Delivery.PENDING  # what the outbox does to a digest whose escalation was resent
    box.put_mail(item.mail)
    assert [i.mail.message_id for i in box.pending_mails()] == [DIGEST_ID]
