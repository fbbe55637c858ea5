"""Failover across workers: three `mailesc run` processes share twelve IMAP mailboxes through one PostgreSQL
database; one is SIGKILLed and another SIGSTOPped while escalations fall due, and still every due escalation
reaches the SMTP server exactly once (issue 12, "Exactly once, across workers").

Real parts only: the workers are `python -m mailesc run` processes, the mailboxes users of a private Dovecot, the
SMTP server aiosmtpd, the database a throwaway PostgreSQL cluster (tests/conftest.py).

The scenario, with `daemon.lease_seconds = 5` and a 24/7 calendar (the default "always"):

1. three workers start and split the twelve mailboxes (four each, read from the leases table);
2. wave 1: two customer threads per mailbox (a third answered by the team a second later, so they must never be
   escalated), first response 3 s, level 2 three seconds after that;
3. just after wave 1's first deadline (when the workers record and send), worker A gets SIGKILL and worker B
   SIGSTOP; wave 2 arrives while their mailboxes have no live holder; the survivor C takes A's and B's mailboxes
   when their leases expire;
4. B gets SIGCONT: it finds its leases gone and rejoins, and gets its share back from C (a mail B was about to
   send when it froze may still leave it, under the Message-ID recorded before the send: the same mail C resends
   after the takeover, the one duplicate the promise allows);
   wave 3 arrives and is worked by B and C;
5. every expected (thread, level) has arrived: B and C get SIGTERM and hand their leases back.

Checks, all counted by Message-ID at the sink: none missing, none for an answered thread, no (thread, level) under
two Message-IDs (the same Message-ID twice is allowed: a resend of the same mail after a takeover that found its
SMTP 250 unrecorded), each within `lease_seconds` + LATE_MARGIN of its recorded deadline (the breach's `due_at`
in the database, plus the ladder's offset, to the sink's arrival time). The margin is generous on purpose: a
takeover is due `lease_seconds` after the dead worker's last renewal plus one balance round
(`lease_seconds / 3`), then the new holder opens the mailboxes over IMAP and cycles them, sending the backlog that
piled up meanwhile one mail after another; one survivor taking eight mailboxes at once on a loaded two-core machine
took up to ~7 s for that in trial runs. The leases table (mailesc.stores.leases.leases_status) and `mailesc status --json`
must name who holds what: never the killed worker once its leases expired, B again after it rejoined, nobody after
SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support import TEMPLATES, make_mail

LEASE_SECONDS = 5
FIRST_RESPONSE = 3.0  # seconds
LEVEL_2_AFTER = 3.0  # seconds after the first-response deadline
LATE_MARGIN = 10.0  # seconds beyond lease_seconds an escalation may arrive after its deadline (see the docstring)
MAILBOXES = [f"box{n:02}" for n in range(12)]
MANAGER, DIRECTOR = "manager@example.test", "director@example.test"
RECIPIENT = {1: MANAGER, 2: DIRECTOR}
TEAM = "Alex Support <alex@example.test>"
X_MAILESC = re.compile(r"escalation;\s*level=(\d+);\s*breach=(\d+)(?:;\s*sig=[0-9a-f]+)?")
PATIENCE = 45.0  # seconds to wait for a condition before the test fails (not a timing assertion)

RULES = f"""
[[rule]]
name = "failover"
first_response = "{FIRST_RESPONSE:g}s"
[[rule.escalate]]
after = "0m"
to = ["{MANAGER}"]
[[rule.escalate]]
after = "{LEVEL_2_AFTER:g}s"
to = ["{DIRECTOR}"]
"""


def write_config(folder: Path, users: dict[str, str], db, sink) -> Path:
    """One config shared by the three workers: twelve IMAP mailboxes, the PostgreSQL store, short leases."""
    (folder / "policies").mkdir(parents=True, exist_ok=True)
    (folder / "policies" / "rules.toml").write_text(RULES)
    boxes = "".join(f"""
[[mailbox]]
name = "{name}"
kind = "imap"
host = "{sink_host}"
port = {port}
security = "plain"
username = "{user}"
password_env = "MAILESC_IMAP_PASSWORD"
folders = ["INBOX"]
sent_folder = "auto"
timeout_seconds = 10
""" for name, user, sink_host, port in ((name, users[name], db["imap_host"], db["imap_port"]) for name in MAILBOXES))
    path = folder / "mailesc.toml"
    path.write_text(f"""{boxes}
[smtp]
kind = "smtp"
host = "{sink.host}"
port = {sink.port}
security = "plain"
from = "Support Escalations <escalations@example.test>"
timeout_seconds = 10
[team]
addresses = ["*@example.test"]
[store]
url = "{db['url']}"
password_env = "MAILESC_DB_PASSWORD"
security = "plain"
[policies]
path = "policies"
[templates]
path = "{TEMPLATES}"
[daemon]
poll_seconds = 1
lease_seconds = {LEASE_SECONDS}
digest_after = 100000
""")
    return path


def sql(db, statement: str, *params) -> list[tuple]:
    import psycopg

    host, port = db.url.split("@")[1].split("/")[0].split(":")
    with psycopg.connect(host=host, port=int(port), dbname=db.url.rsplit("/", 1)[1], user="mailesc",
                         password=db.password, autocommit=True) as connection:
        return connection.execute(statement, params).fetchall()


class Leases:
    """What `mailesc status` shows about the leases (mailesc.stores.leases.leases_status), read over one
    connection kept for the test (opening a store per look would load the machine the workers run on)."""

    def __init__(self, db):
        from mailesc.stores.postgres import PostgresStore

        self.store = PostgresStore(db.url, db.password, security="plain", connect_timeout=5)

    def table(self) -> list[dict]:
        from mailesc.stores.leases import leases_status

        return leases_status(self.store)

    def holders(self) -> dict[str, int | None]:
        """mailbox -> the pid of the worker holding an unexpired lease, None when free or expired."""
        return {row["mailbox"]: (row["pid"] if row["owner"] and row["seconds_left"] > 0 else None)
                for row in self.table()}

    def close(self) -> None:
        self.store.close()


def wait_for(condition, what: str, patience: float = PATIENCE, step: float = 0.25):
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"gave up waiting {patience:g} s: {what}")


class Customers:
    """Writes customer threads into the mailboxes (and the team's answers to some, into Sent)."""

    def __init__(self, boxes: dict, seed: int):
        self.boxes, self.seed = boxes, seed
        self.threads: dict[str, str] = {}  # customer Message-ID -> mailbox
        self.answered: set[str] = set()

    def wave(self, number: int, per_mailbox: int) -> list[str]:
        new = []
        for index, name in enumerate(MAILBOXES):
            for k in range(per_mailbox):
                arrived = datetime.now(timezone.utc).replace(microsecond=0)
                n = len(self.threads) + 1
                subject = f"Failover {self.seed} wave {number} thread {n}: parcel {n:04d} is late"
                message_id = f"<failover-{self.seed}-{n}@customer.example>"
                raw, _ = make_mail(sender=f"Customer {n} <customer{n}@customer.example>", subject=subject,
                                   date=arrived, message_id=message_id)
                self.boxes[name].append("INBOX", raw, arrived)
                self.threads[message_id] = name
                new.append(message_id)
                if (index + k) % 3 == 0:  # answered within its 3 s: a second after it arrived
                    reply, _ = make_mail(sender=TEAM, to=f"customer{n}@customer.example", subject=f"Re: {subject}",
                                         date=arrived + timedelta(seconds=1), in_reply_to=message_id,
                                         references=[message_id], body="On its way.")
                    self.boxes[name].append("Sent", reply, arrived + timedelta(seconds=1))
                    self.answered.add(message_id)
        return new

    def expected(self) -> set[tuple[str, int]]:
        return {(t, level) for t in self.threads if t not in self.answered for level in RECIPIENT}


def deliveries(sink, threads) -> list[dict]:
    found = []
    for mail in sink.messages:
        header = str(mail.message.get("X-Mailesc", "")).strip()
        match = X_MAILESC.fullmatch(header)
        refs = [r for r in str(mail.message.get("References", "")).split() if r in threads]
        found.append({"message_id": str(mail.message.get("Message-ID", "")).strip(),
                      "thread": refs[0] if len(refs) == 1 else None, "level": int(match.group(1)) if match else None,
                      "breach": int(match.group(2)) if match else None, "rcpt_tos": list(mail.rcpt_tos),
                      "received_at": mail.received_at, "x_mailesc": header})
    return found


@pytest.fixture
def twelve_mailboxes(dovecot):
    """Twelve fresh IMAP users on the session's Dovecot, one password (one password_env for all)."""
    from mailesc.testing import Mailbox

    dovecot.start()
    password, tag = "pw-" + secrets.token_hex(8), secrets.token_hex(3)
    boxes = {}
    for name in MAILBOXES:
        username = f"failover-{tag}-{name}@example.test"
        dovecot.add_user(username, password)
        boxes[name] = Mailbox(dovecot.host, dovecot.port, username, password)
    return boxes, password


def test_a_killed_and_a_frozen_worker_lose_and_double_no_escalation(tmp_path, pg_database, smtp_sink,
                                                                    twelve_mailboxes):
    boxes, imap_password = twelve_mailboxes
    any_box = next(iter(boxes.values()))
    config = write_config(tmp_path, {name: box.username for name, box in boxes.items()},
                          {"url": pg_database.url, "imap_host": any_box.host, "imap_port": any_box.port}, smtp_sink)
    env = {**os.environ, "MAILESC_IMAP_PASSWORD": imap_password, "MAILESC_DB_PASSWORD": pg_database.password}
    customers = Customers(boxes, seed=secrets.randbelow(10**6))
    logs, processes = [], []
    leases = None

    def start(name: str) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        logs.append(log)
        with open(log, "wb") as handle:
            processes.append(subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], env=env,
                                              cwd=tmp_path, stdout=handle, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL))
        return processes[-1]

    try:
        workers = [start(name) for name in ("worker-a", "worker-b", "worker-c")]
        pids = {w.pid for w in workers}
        leases = Leases(pg_database)
        split = wait_for(lambda: (h := leases.holders()) and sorted(Counter(h.values()).values()) == [4, 4, 4]
                         and set(h.values()) == pids and h, "three workers holding four mailboxes each")
        a, b, c = workers
        a_boxes = {m for m, pid in split.items() if pid == a.pid}
        b_boxes = {m for m, pid in split.items() if pid == b.pid}

        wave_1 = customers.wave(1, per_mailbox=2)
        started = time.time()
        # Mid-cycle: just after wave 1's first-response deadlines, when the workers record and send level 1.
        time.sleep(max(0.0, started + FIRST_RESPONSE + 0.1 - time.time()))
        a.send_signal(signal.SIGKILL)
        b.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        customers.wave(2, per_mailbox=1)  # arrives while A's and B's mailboxes have no live worker

        # C takes over everything once A's and B's leases expire (it is the only live worker: fair share 12).
        taken = wait_for(lambda: (h := leases.holders()) and set(h.values()) == {c.pid} and h,
                         "the survivor holding every mailbox")
        assert set(taken) == set(MAILBOXES)
        takeover_seconds = time.time() - stopped_at
        b.send_signal(signal.SIGCONT)
        # B rejoins: C gives back above the fair share of two live workers, B takes it.
        rejoined = wait_for(lambda: (h := leases.holders()) and sorted(Counter(h.values()).values()) == [6, 6]
                            and set(h.values()) == {b.pid, c.pid} and h, "B and C holding six mailboxes each")
        assert a.pid not in rejoined.values()
        customers.wave(3, per_mailbox=1)

        wait_for(lambda: customers.expected() <= {(d["thread"], d["level"])
                                                  for d in deliveries(smtp_sink, customers.threads)},
                 "every due escalation at the SMTP server", patience=60)
        time.sleep(2)  # one more poll of every mailbox: a worker that would send anything twice does it now
        during = leases.table()
        status = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "status", "--json"], env=env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        for worker in (b, c):
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(timeout=20) for worker in (b, c)] == [0, 0]
        after = leases.table()
    finally:
        if leases is not None:
            leases.close()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(timeout=10)

    mails = deliveries(smtp_sink, customers.threads)
    expected = customers.expected()
    delivered = {(d["thread"], d["level"]) for d in mails}
    ids = defaultdict(set)
    for d in mails:
        ids[(d["thread"], d["level"])].add(d["message_id"])
    assert expected - delivered == set(), "lost escalations"
    assert [d for d in mails if (d["thread"], d["level"]) not in expected] == [], "mails nobody should get"
    assert {pair: mids for pair, mids in ids.items() if len(mids) > 1} == {}, "a level under two Message-IDs"
    assert all(d["rcpt_tos"] == [RECIPIENT[d["level"]]] for d in mails)
    resends = {mid: n for mid, n in Counter(d["message_id"] for d in mails).items() if n > 1}
    assert len(mails) == len(expected) + sum(n - 1 for n in resends.values())

    # Each within lease_seconds + LATE_MARGIN of its deadline as recorded in the database.
    due = {(thread, clock_mailbox): due_at for thread, clock_mailbox, due_at in
           sql(pg_database, "SELECT thread, mailbox, due_at FROM breaches")}
    assert len(due) == len({t for t, _ in expected})  # one breach per unanswered thread, none for answered ones
    lateness = {}
    for d in mails:
        deadline = due[(d["thread"], customers.threads[d["thread"]])] + timedelta(
            seconds=0 if d["level"] == 1 else LEVEL_2_AFTER)
        lateness[(d["thread"], d["level"])] = max(lateness.get((d["thread"], d["level"]), 0.0),
                                                  (d["received_at"] - deadline).total_seconds())
    assert min(lateness.values()) >= 0  # nothing before its deadline
    late = {pair: round(s, 1) for pair, s in lateness.items() if s > LEASE_SECONDS + LATE_MARGIN}
    assert late == {}, f"later than lease_seconds + {LATE_MARGIN:g} s (takeover took {takeover_seconds:.1f} s)"
    # The orphaned mailboxes' mail was due while nobody worked them, and still arrived.
    orphaned = {t for t, box in customers.threads.items() if box in a_boxes | b_boxes and t not in customers.answered}
    assert orphaned and {(t, 1) for t in orphaned} <= delivered
    assert any(t in wave_1 for t in orphaned)

    # Every escalation row settled as sent, under the Message-ID the sink got.
    rows = sql(pg_database, "SELECT b.thread, e.level, e.message_id, e.delivery FROM escalations e "
                            "JOIN breaches b ON b.id = e.breach")
    assert sorted((t, level) for t, level, _, _ in rows) == sorted(expected)
    assert {(t, level): {mid} for t, level, mid, _ in rows} == dict(ids)
    assert {delivery for *_, delivery in rows} == {"sent"}

    # Who held what: B and C, six each, while they ran (A never again); nobody after SIGTERM.
    assert sorted(Counter(row["pid"] for row in during).items()) == sorted({b.pid: 6, c.pid: 6}.items())
    assert all(row["seconds_left"] > 0 for row in during)
    assert [row["owner"] for row in after] == [None] * len(MAILBOXES)
    # `mailesc status --json` says the same while B and C run: two live workers (A's row expired), six mailboxes
    # each, every mailbox named with its worker, nothing waiting or failed.
    assert status.returncode == 0, status.stderr
    said = json.loads(status.stdout)
    assert sorted((w["pid"], w["leases"]) for w in said["workers"]) == sorted([(b.pid, 6), (c.pid, 6)])
    ids = {w["pid"]: w["id"] for w in said["workers"]}
    assert sorted(box["name"] for box in said["mailboxes"]) == MAILBOXES
    assert Counter(box["worker"] for box in said["mailboxes"]) == Counter({ids[b.pid]: 6, ids[c.pid]: 6})
    assert said["pending_mails"] == 0 and said["failed_mails"] == 0 and said["healthy"], said["problems"]
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and "internal error" not in text, f"{log.name}: {text[-2000:]}"
        assert imap_password not in text and pg_database.password not in text
