"""Workers and mailbox leases against a real PostgreSQL (the throwaway cluster of tests/conftest.py).

Short leases (1-2 s) keep the tests quick; nothing asserts a duration: each test waits for a condition with a
generous deadline, and the failover checks compare what two workers believe at the moment one of them takes over
(the one cut off must have stopped before the other could start)."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailesc.errors import LeaseLost, StoreError, StoreUnavailable
from mailesc.stores.leases import Membership, leases_status, workers_status
from mailesc.stores.postgres import PostgresStore

MAILBOXES = [f"box{n:02}" for n in range(12)]
PATIENCE = 60.0  # seconds: how long a test waits for a condition before it fails


def open_store(db, port: int | None = None) -> PostgresStore:
    url = db.url if port is None else db.url.replace(db.url.split("@")[1].split("/")[0], f"127.0.0.1:{port}")
    return PostgresStore(url, db.password, security="plain", connect_timeout=2)


def wait_for(condition, what: str, patience: float = PATIENCE, step: float = 0.05):
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"gave up waiting: {what}")


def sql(db, statement: str, *params) -> list[tuple]:
    import psycopg

    host, port = db.url.split("@")[1].split("/")[0].split(":")
    with psycopg.connect(host=host, port=int(port), dbname=db.url.rsplit("/", 1)[1], user="mailesc",
                         password=db.password, autocommit=True) as connection:
        return connection.execute(statement, params).fetchall()


def owners(db) -> dict[str, str | None]:
    return dict(sql(db, "SELECT mailbox, owner FROM leases"))


class Worker:
    """One worker as a `mailesc run` process has it: its own store (connection) and membership."""

    def __init__(self, db, lease_seconds: float, port: int | None = None):
        self.store = open_store(db, port)
        self.membership = Membership(self.store, lease_seconds)

    def close(self):
        self.membership.stop()
        self.store.close()


@pytest.fixture
def workers(pg_database):
    made: list[Worker] = []

    def make(lease_seconds: float = 30, port: int | None = None) -> Worker:
        made.append(Worker(pg_database, lease_seconds, port))
        return made[-1]

    yield make
    for worker in made:
        worker.close()


def balance_until_even(members: list[Membership], mailboxes=MAILBOXES, rounds: int = 10) -> None:
    """Balance round after round (each worker in turn) until every worker holds its fair share."""
    share = math.ceil(len(mailboxes) / len(members))
    even = sorted(min(share, max(0, len(mailboxes) - share * i)) for i in range(len(members)))
    for _ in range(rounds):
        for member in members:
            member.balance(mailboxes)
        if sorted(len(member.held()) for member in members) == even:
            return
    raise AssertionError(f"not even after {rounds} rounds: {[len(m.held()) for m in members]}")


# -- fair share ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count, share", [(1, 12), (2, 6), (3, 4)])
def test_twelve_mailboxes_are_spread_evenly_over_the_live_workers(pg_database, workers, count, share):
    members = [workers().membership for _ in range(count)]
    balance_until_even(members)
    held = [member.held() for member in members]
    assert [len(h) for h in held] == [share] * count
    assert set().union(*held) == set(MAILBOXES)
    assert sum(len(h) for h in held) == len(MAILBOXES)  # nobody holds a mailbox another holds
    assert owners(pg_database) == {mailbox: member.worker_id for member, h in zip(members, held) for mailbox in h}
    live = workers_status(members[0].store)
    assert sorted((w["id"], w["leases"]) for w in live) == sorted((m.worker_id, share) for m in members)
    status = leases_status(members[0].store)
    assert [row["mailbox"] for row in status] == MAILBOXES
    assert all(row["owner"] in {m.worker_id for m in members} and row["seconds_left"] > 0 for row in status)


def test_workers_that_join_later_get_their_share_as_the_first_gives_back(pg_database, workers):
    first = workers().membership
    taken, released = first.balance(MAILBOXES)
    assert taken == set(MAILBOXES) and released == set()
    second, third = workers().membership, workers().membership
    assert second.balance(MAILBOXES) == (set(), set())  # nothing free yet: the first holds all
    taken, released = first.balance(MAILBOXES)  # the first sees three live workers: share 4
    assert taken == set() and len(released) == 8 and len(first.held()) == 4
    assert not released & first.held()
    assert len(second.balance(MAILBOXES)[0]) == 4
    assert len(third.balance(MAILBOXES)[0]) == 4
    assert first.held() | second.held() | third.held() == set(MAILBOXES)
    assert first.balance(MAILBOXES) == (set(), set())  # even: nothing moves any more


def test_a_mailbox_no_longer_configured_is_given_back(pg_database, workers):
    member = workers().membership
    member.balance(MAILBOXES)
    taken, released = member.balance(MAILBOXES[:10])
    assert taken == set() and released == set(MAILBOXES[10:])
    assert owners(pg_database)["box11"] is None


# -- renewing, dying, leaving -------------------------------------------------------------------------------------

def test_the_background_thread_keeps_the_leases_alive(pg_database, workers):
    member = workers(lease_seconds=1).membership
    member.balance(MAILBOXES[:3])
    first = sql(pg_database, "SELECT max(expires_at) FROM leases")[0][0]
    member.start()
    # many lease lengths later the leases are still ours and their expiry has moved on
    wait_for(lambda: sql(pg_database, "SELECT min(expires_at) FROM leases")[0][0].timestamp() > first.timestamp() + 3,
             "the leases renewed past three lease lengths")
    assert member.held() == set(MAILBOXES[:3])
    assert set(owners(pg_database).values()) == {member.worker_id}


def test_a_store_made_from_the_config_renews_over_a_connection_of_its_own(pg_database, monkeypatch, tmp_path):
    from mailesc.config import Secret, StoreConfig

    monkeypatch.setenv("MAILESC_TEST_DB_PASSWORD", pg_database.password)
    config = StoreConfig(path=tmp_path / "mailesc.json", url=pg_database.url, security="plain",
                         password=Secret(env="MAILESC_TEST_DB_PASSWORD", section="store"))
    with PostgresStore.from_config(config) as store:
        member = Membership(store, lease_seconds=2)
        member.balance(MAILBOXES[:2])
        assert member.renew() == frozenset() and member.last_error is None
        sessions = dict(sql(pg_database, "SELECT application_name, count(*)::int FROM pg_stat_activity "
                                         "WHERE usename = 'mailesc' AND application_name LIKE 'mailesc%%' "
                                         "GROUP BY application_name"))
        assert sessions == {"mailesc": 1, "mailesc leases": 1}
        # the worker's own connection ends a transaction a frozen worker left open
        assert store.connection().execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("1s",)
        member.release_all()


def test_a_worker_whose_renewals_stop_loses_its_leases_and_another_takes_them(pg_database, workers):
    stalled = workers(lease_seconds=1).membership
    stalled.balance(MAILBOXES)
    stalled.start()
    stalled.stop()  # as if frozen (SIGSTOP) or killed: no more renewals
    survivor = workers(lease_seconds=1).membership
    survivor.start()

    def taken_over():
        survivor.balance(MAILBOXES)
        return survivor.held() == set(MAILBOXES)

    wait_for(taken_over, "the survivor holding every mailbox")
    assert stalled.held() == set()  # its own clock told it first: its leases may have expired
    assert set(owners(pg_database).values()) == {survivor.worker_id}
    # when it comes back it learns that they are gone, and does not take them back while the survivor renews
    assert stalled.renew() == frozenset(MAILBOXES)
    assert stalled.balance(MAILBOXES) == (set(), set())
    assert set(owners(pg_database).values()) == {survivor.worker_id}


def test_a_worker_whose_connection_is_closed_loses_its_leases(pg_database, workers):
    cut = workers(lease_seconds=1)
    cut.membership.balance(MAILBOXES[:4])
    cut.membership.start()
    cut.membership.stop()
    cut.store.close()
    other = workers(lease_seconds=1).membership
    wait_for(lambda: other.balance(MAILBOXES[:4]) and other.held() == set(MAILBOXES[:4]),
             "another worker holding the mailboxes")
    assert cut.membership.held() == set()


def test_release_all_hands_every_mailbox_over_at_once(pg_database, workers):
    leaving = workers(lease_seconds=600).membership  # its leases would last ten minutes
    leaving.balance(MAILBOXES)
    staying = workers(lease_seconds=600).membership
    assert staying.balance(MAILBOXES) == (set(), set())
    leaving.release_all()
    assert leaving.held() == set() and not leaving.holds("box00")
    assert sql(pg_database, "SELECT count(*) FROM workers WHERE id = %s", leaving.worker_id) == [(0,)]
    taken, _ = staying.balance(MAILBOXES)  # the very next balance, not ten minutes later
    assert taken == set(MAILBOXES)
    assert [w["id"] for w in workers_status(staying.store)] == [staying.worker_id]


def test_rows_of_workers_gone_long_ago_are_forgotten(pg_database, workers):
    member = workers(lease_seconds=1).membership
    sql(pg_database, "INSERT INTO workers (id, host, pid, started_at, renewed_at, expires_at) VALUES "
                     "('gone:1:x', 'gone', 1, now() - interval '1 hour', now() - interval '1 hour', "
                     "now() - interval '1 hour'), ('frozen:2:y', 'frozen', 2, now(), now(), now() - interval '1 s') "
                     "RETURNING id")
    member.balance(MAILBOXES)
    assert sorted(row[0] for row in sql(pg_database, "SELECT id FROM workers")) == sorted(
        ["frozen:2:y", member.worker_id])
    assert [w["id"] for w in workers_status(member.store)] == [member.worker_id]
    assert member.held() == set(MAILBOXES)  # the expired ones are not counted in the fair share


# -- fencing ------------------------------------------------------------------------------------------------------

def test_a_held_mailbox_flushes_and_the_installation_box_needs_no_lease(pg_database, workers):
    member = workers().membership
    member.balance(["support"])
    box = member.store.box("support")
    box.sync["imap:INBOX"] = {"last_uid": 7}
    box.flush()
    member.store.installation.health["daily_digest"] = {"sent_on": "2024-03-04"}
    member.store.installation.flush()
    assert sql(pg_database, "SELECT mailbox, state FROM bookmarks") == [("support", {"last_uid": 7})]
    assert sql(pg_database, "SELECT count(*) FROM health WHERE mailbox = ''") == [(1,)]


def test_a_worker_taking_a_mailbox_over_sees_what_the_last_holder_wrote(pg_database, workers):
    before, after = workers().membership, workers().membership
    assert dict(after.store.installation.health) == {}  # loaded while the other worked the mailbox
    before.balance(["support"])
    before.store.box("support").sync["imap:INBOX"] = {"last_uid": 5}
    before.store.box("support").flush()
    before.store.installation.health["daily_digest"] = {"sent_on": "2024-03-04"}
    before.store.installation.flush()
    after.store.box("support")  # loaded too early, as an admin command or an earlier lease might have
    before.release_all()
    assert after.balance(["support"])[0] == {"support"}
    assert after.store.box("support").sync["imap:INBOX"] == {"last_uid": 5}
    assert after.store.installation.health["daily_digest"] == {"sent_on": "2024-03-04"}  # not sent twice


def test_a_box_of_a_mailbox_not_held_cannot_write(pg_database, workers):
    member = workers().membership
    member.balance(["support"])
    box = member.store.box("billing")
    box.sync["imap:INBOX"] = {"last_uid": 1}
    with pytest.raises(LeaseLost) as refused:
        box.flush()
    assert not isinstance(refused.value, StoreError)
    assert sql(pg_database, "SELECT count(*) FROM bookmarks") == [(0,)]


def test_the_fence_refuses_a_flush_after_another_worker_took_the_lease(pg_database, workers):
    stalled = workers(lease_seconds=1).membership
    stalled.balance(["support"])
    box = stalled.store.box("support")
    box.sync["imap:INBOX"] = {"last_uid": 3}
    box.flush()  # still ours: written
    box.sync["imap:INBOX"] = {"last_uid": 9}  # ...then the worker stalls before its next flush
    other = workers(lease_seconds=1).membership
    wait_for(lambda: other.balance(["support"])[0], "the other worker taking the expired lease")
    with pytest.raises(LeaseLost):
        box.flush()
    assert sql(pg_database, "SELECT state FROM bookmarks WHERE mailbox = 'support'") == [({"last_uid": 3},)]
    assert not stalled.holds("support")
    # the new holder loads what was committed, and writes
    taken_box = other.store.box("support")
    assert taken_box.sync["imap:INBOX"] == {"last_uid": 3}
    taken_box.sync["imap:INBOX"] = {"last_uid": 4}
    taken_box.flush()
    assert sql(pg_database, "SELECT state FROM bookmarks WHERE mailbox = 'support'") == [({"last_uid": 4},)]


def test_a_worker_frozen_in_the_middle_of_a_flush_does_not_keep_its_mailbox_locked(pg_database, workers):
    frozen = workers(lease_seconds=1).membership
    frozen.balance(["support"])
    connection = frozen.store.connection()
    connection.execute("BEGIN")
    frozen.fence(connection.cursor(), "support")  # the lease row is locked... and the worker freezes (SIGSTOP)
    other = workers(lease_seconds=1).membership
    wait_for(lambda: other.balance(["support"])[0], "the other worker taking the lease of the frozen one")
    assert owners(pg_database) == {"support": other.worker_id}
    # woken: the server ended its session (retryable, like a restart of the server); then the flush is refused
    with pytest.raises(StoreUnavailable):
        frozen.store.box("support")
    box = frozen.store.box("support")
    box.meta["note"] = {"n": 1}
    with pytest.raises(LeaseLost):
        box.flush()


def test_the_fence_refuses_an_expired_lease_nobody_took_yet(pg_database, workers):
    member = workers(lease_seconds=1).membership
    member.balance(["support"])
    box = member.store.box("support")
    box.meta["note"] = {"n": 1}
    wait_for(lambda: sql(pg_database, "SELECT expires_at <= now() FROM leases")[0][0], "the lease expiring")
    with pytest.raises(LeaseLost):
        box.flush()
    assert sql(pg_database, "SELECT count(*) FROM meta WHERE mailbox = 'support'") == [(0,)]


# -- racing -------------------------------------------------------------------------------------------------------

def test_workers_balancing_at_the_same_time_never_hold_the_same_mailbox(pg_database, workers):
    """Rounds of two to four workers balancing at once; between rounds workers leave (release_all) and join, so
    the fair share changes and several workers take from the same free leases in the same round. After each
    round no two workers hold one mailbox, each holds exactly what the database says it owns, and no more than
    its share."""
    rng = random.Random(12)
    slots = [workers() for _ in range(3)]
    moved = 0
    for round_ in range(80):
        barrier = threading.Barrier(len(slots))
        errors: list[BaseException] = []
        results: list[tuple[set, set]] = []

        def run(worker):
            try:
                barrier.wait()
                results.append(worker.membership.balance(MAILBOXES))
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(worker,)) for worker in slots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        moved += sum(len(taken) for taken, _ in results)
        held = [worker.membership.held() for worker in slots]
        for i, one in enumerate(held):
            for other in held[i + 1:]:
                assert not one & other, f"round {round_}: two workers hold {sorted(one & other)}"
        in_database = owners(pg_database)
        for worker, mine in zip(slots, held):
            assert {m for m, owner in in_database.items() if owner == worker.membership.worker_id} == mine
        assert all(len(mine) <= math.ceil(len(MAILBOXES) / len(slots)) for mine in held)
        change = rng.choice(["join", "leave", "both"])
        if change in ("leave", "both") and len(slots) > 2:
            slots.pop(rng.randrange(len(slots))).membership.release_all()
        if change in ("join", "both") and len(slots) < 4:
            slots.append(workers())
    assert moved > 100  # the rounds really moved leases around
    balance_until_even([worker.membership for worker in slots])
    assert set().union(*(worker.membership.held() for worker in slots)) == set(MAILBOXES)


# -- losing the database ------------------------------------------------------------------------------------------

class Cable:
    """A TCP relay between a worker and the database that a test can cut (every connection reset, new ones
    refused), as a network cut or a database host that went away looks to the worker."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.is_cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut.is_set():
                client.close()
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.is_cut.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (a close alone would not)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for end in self.sockets:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()


def test_a_worker_that_cannot_reach_the_database_stops_before_another_takes_over(pg_database, workers):
    host, port = pg_database.url.split("@")[1].split("/")[0].split(":")
    cable = Cable(host, int(port))
    cut_off = workers(lease_seconds=2, port=cable.port).membership
    cut_off.balance(MAILBOXES[:6])
    cut_off.start()
    assert cut_off.renew() == frozenset()  # renewing over the cable works
    assert cut_off.held() == set(MAILBOXES[:6])
    cable.cut()
    wait_for(lambda: not cut_off.held(), "the cut-off worker giving up its mailboxes")
    assert cut_off.last_error and "cannot reach the PostgreSQL database" in cut_off.last_error
    assert pg_database.password not in cut_off.last_error
    # the other worker can take them only after they expired in the database; by then the cut-off one had stopped
    other = workers(lease_seconds=2).membership

    def taken_over():
        other.balance(MAILBOXES[:6])
        assert not cut_off.held() & other.held()
        return other.held() == set(MAILBOXES[:6])

    wait_for(taken_over, "the other worker holding the mailboxes")
    status = {row["mailbox"]: row for row in leases_status(other.store)}
    assert {row["owner"] for row in status.values()} == {other.worker_id}
    assert all(row["seconds_left"] > 0 and row["pid"] and row["host"] for row in status.values())


# -- worker processes: SIGKILL, SIGSTOP, SIGTERM ------------------------------------------------------------------

class WorkerProcess:
    """tests/integration/lease_worker.py as a process; its JSON lines are collected as they come."""

    def __init__(self, db, lease_seconds: float, balance_seconds: float, mailboxes=MAILBOXES):
        env = {**os.environ, "MAILESC_TEST_PASSWORD": db.password}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("lease_worker.py")), db.url, str(lease_seconds),
             str(balance_seconds), *mailboxes], env=env, stdout=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.worker_id = wait_for(lambda: next((line["worker"] for line in self.lines if "worker" in line), None),
                                  "the worker process starting")

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def said(self, key: str) -> list:
        return [line[key] for line in list(self.lines) if key in line]

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def processes(pg_database):
    made: list[WorkerProcess] = []

    def make(lease_seconds: float, balance_seconds: float) -> WorkerProcess:
        made.append(WorkerProcess(pg_database, lease_seconds, balance_seconds))
        return made[-1]

    yield make
    for process in made:
        if process.process.poll() is None:
            process.signal(signal.SIGCONT)
        process.stop()


def counts(db) -> dict[str, int]:
    return dict(sql(db, "SELECT owner, count(*)::int FROM leases WHERE owner IS NOT NULL AND expires_at > now() "
                        "GROUP BY owner"))


def spread_as(db, shares: dict[str, int]):
    return lambda: counts(db) == shares


def test_a_killed_worker_process_loses_its_mailboxes_to_the_others(pg_database, processes):
    trio = [processes(lease_seconds=1.5, balance_seconds=0.5) for _ in range(3)]
    wait_for(spread_as(pg_database, {p.worker_id: 4 for p in trio}), "four mailboxes for each of three workers")
    trio[0].signal(signal.SIGKILL)
    trio[0].process.wait()
    wait_for(spread_as(pg_database, {p.worker_id: 6 for p in trio[1:]}), "six mailboxes for each survivor")
    # every mailbox is worked again, each by the survivor that holds it
    wait_for(lambda: dict(sql(pg_database, "SELECT mailbox, state->>'by' FROM meta WHERE name = 'beat'"))
             == owners(pg_database), "the survivors writing the mailboxes they hold")
    assert set(owners(pg_database).values()) == {p.worker_id for p in trio[1:]}


def test_a_frozen_worker_process_is_taken_over_and_gets_its_share_back_when_it_wakes(pg_database, processes):
    frozen, other = processes(lease_seconds=1.5, balance_seconds=0.3), processes(lease_seconds=1.5,
                                                                                 balance_seconds=0.3)
    wait_for(spread_as(pg_database, {frozen.worker_id: 6, other.worker_id: 6}), "six mailboxes each")
    frozen.signal(signal.SIGSTOP)
    wait_for(spread_as(pg_database, {other.worker_id: 12}), "the other worker holding all twelve")
    frozen.signal(signal.SIGCONT)
    # it wakes, learns its leases are gone (its own clock already told it to stop), and gets its share back as the
    # other gives back what is above the share
    wait_for(spread_as(pg_database, {frozen.worker_id: 6, other.worker_id: 6}), "six each again")
    wait_for(lambda: frozen.said("held") and len(frozen.said("held")[-1]) == 6, "the woken worker working six")
    assert not set(frozen.said("held")[-1]) & set(other.said("held")[-1])


def test_a_worker_process_stopped_with_sigterm_hands_over_at_once(pg_database, processes):
    # leases of ten minutes: only a hand-over, not an expiry, can move them within the test
    leaving = processes(lease_seconds=600, balance_seconds=0.2)
    wait_for(spread_as(pg_database, {leaving.worker_id: 12}), "the first worker holding all twelve")
    staying = processes(lease_seconds=600, balance_seconds=0.2)
    wait_for(spread_as(pg_database, {leaving.worker_id: 6, staying.worker_id: 6}), "six each")
    leaving.signal(signal.SIGTERM)
    assert leaving.process.wait(timeout=PATIENCE) == 0
    assert leaving.said("released") == [True]
    wait_for(spread_as(pg_database, {staying.worker_id: 12}), "the staying worker holding all twelve")
    assert sql(pg_database, "SELECT count(*) FROM workers WHERE id = %s", leaving.worker_id) == [(0,)]


def test_a_mailbox_may_send_only_while_its_lease_cannot_have_run_out(workers):
    """The outbox asks may_send() after its fenced commit and right before the send: a worker frozen in between
    whose lease ran out meanwhile sends nothing (the new holder sends, with the same Message-IDs)."""
    worker = workers(lease_seconds=1)  # no renewing thread: the lease runs out a second after the balance
    worker.membership.balance(["support"])
    box = worker.store.box("support")
    assert box.may_send() and worker.store.box("billing").may_send() is False
    wait_for(lambda: not box.may_send(), "the lease's local deadline to pass")
    assert worker.store.installation.may_send()  # the installation's records have no lease


def test_a_poll_and_the_installation_records_are_written_only_under_their_lease(workers):
    """A worker that does not hold a mailbox does not record polls of it; the installation's records (the daily
    digest's delivery) are written only by the holder of the mailbox whose worker sends the digest."""
    holder, other = workers(), workers()
    holder.membership.balance(["support"])
    for worker in (holder, other):
        worker.store.daily_mailbox = "support"
    holder.store.box("support").record_poll(datetime.now(timezone.utc))
    with pytest.raises(LeaseLost):
        other.store.box("support").record_poll(datetime.now(timezone.utc))
    other.store.installation.health["daily_digest"] = {"delivery": "pending"}
    with pytest.raises(LeaseLost):
        other.store.installation.flush()
    holder.store.installation.health["daily_digest"] = {"delivery": "sent"}
    holder.store.installation.flush()
