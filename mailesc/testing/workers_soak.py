"""The crash soak of ``mailesc.testing.soak`` against PostgreSQL and several `mailesc run` workers sharing the mailboxes.

Used by ``benchmarks/soak_kill.py --store postgresql --workers 3``. The promise is the same (issue 12, "Exactly
once, across workers"): however often a worker dies, every escalation that fell due is delivered, a (thread,
level) never goes out under two different Message-IDs (a takeover resends at most a mail whose SMTP 250 was not
yet recorded, under the same Message-ID), no answered thread is escalated, and the database holds one breach per
unanswered thread with every level settled as sent.

How it differs from the single-daemon soak: the workers (default 3) share several IMAP mailboxes (default 6)
through leases (`daemon.lease_seconds` = 5, the least allowed); they run all the time. One round appends 0-2 new
customer threads to random mailboxes (once every worker has logged its start), then SIGKILLs one worker at a random moment 0.05-1.5 s into the round (in
about half the rounds just after a deadline that falls in that span, and then the worker holding that thread's
mailbox, read from the leases table) and starts a new worker in its place at once. The killed worker's mailboxes
wait for its leases to expire, then a survivor takes them over. After the rounds the last three workers run until
every due level is delivered, and get SIGTERM.

Answers are appended early in a wall-clock second (the thread "arrived" a second before, so its deadline is at
least 0.8 s after the APPENDs begin); an answer whose APPEND still ended less than RACE_MARGIN before the deadline
(a loaded machine) may rightly be seen only after it, so that thread is left out of the checks and counted
(`answers_too_close_to_the_deadline_left_out`); a 100-round run first failed on two such threads.

What the database says replaces `mailesc breaches list --json` of the single-daemon soak (read with SQL in the
same shape). Deliveries cannot be told apart by worker at the SMTP server; "kills in the commit window" counts the
killed workers whose log ends with a "sent" line (killed after a 250, before the cycle that sent it ended).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from mailesc.testing.configs import imap_section, smtp_section, write_config
from mailesc.testing.dovecot import Mailbox
from mailesc.testing.soak import (AIM_JITTER, DAEMON, FIRST_RESPONSE, KILL_AFTER, LEVEL_2_AFTER, RULES,
                                  CrashSoak, Outcome, Run)

LEASE_SECONDS = 5
RACE_MARGIN = 0.3  # seconds: an answer appended later than this before its deadline may be seen after it


def mailbox_sections(mailboxes: dict) -> str:
    """`[[mailbox]]` tables for Mailbox objects by name; they share one password (MAILESC_IMAP_PASSWORD)."""
    return "".join(f"\n{imap_section(box, name)}\n" for name, box in mailboxes.items())


@dataclass
class WorkersOutcome(Outcome):
    """``Outcome`` of a workers soak: every worker alive at the end must stop cleanly on SIGTERM too."""

    finals: list[Run] = field(default_factory=list)  # the workers alive at the end (SIGTERM)
    workers: int = 3
    mailboxes: int = 1
    raced: int = 0  # answered threads left out: their answer landed too close to the deadline

    @property
    def kills_in_commit_window(self) -> int:
        hits = 0
        for run in self.rounds:
            lines = run.text().splitlines()
            if lines and "mailesc.outbox: sent the" in lines[-1]:
                hits += 1
        return hits

    def log_lines(self, pattern: str) -> list[str]:
        found = []
        for run in [*self.rounds, *self.finals]:
            found += [f"{run.name}: {line}" for line in run.text().splitlines() if pattern in line]
        return found

    def problems(self) -> list[str]:
        problems = super().problems()
        for run in self.finals:
            if run.returncode != 0:
                problems.append(f"FINAL WORKER {run.name}: exit status {run.returncode} after SIGTERM: "
                                f"{run.text()[-800:]!r}")
        return problems

    def summary(self) -> dict:
        return {**super().summary(), "store": "postgresql", "workers": self.workers, "mailboxes": self.mailboxes,
                "lease_seconds": LEASE_SECONDS,
                "answers_too_close_to_the_deadline_left_out": self.raced}


class WorkersCrashSoak(CrashSoak):
    """`mailboxes`: name -> Mailbox (one password for all); `db`: (url, password) of an empty database."""

    def __init__(self, workdir: Path, mailboxes: dict, sink, db: tuple[str, str], *, seed: int, rounds: int,
                 workers: int = 3, aim: float = 0.5, final_timeout: float = 120.0, pythonpath: Path | None = None,
                 say: Callable[[str], None] = lambda line: None):
        first = next(iter(mailboxes.values()))
        super().__init__(workdir, first, sink, seed=seed, rounds=rounds, aim=aim, final_timeout=final_timeout,
                         pythonpath=pythonpath, say=say)
        self.mailboxes, self.db, self.worker_count = dict(mailboxes), db, workers
        url, password = db
        self.config = write_config(self.workdir, mailbox=mailbox_sections(self.mailboxes), smtp=smtp_section(sink),
                                   rules=RULES, extra=f"{DAEMON}\nlease_seconds = {LEASE_SECONDS}")
        text = self.config.read_text().replace('[store]\npath = "var/mailesc.json"',
                                               f'[store]\npath = "var/mailesc.json"\nurl = "{url}"\n'
                                               f'password_env = "MAILESC_DB_PASSWORD"\nsecurity = "plain"')
        self.config.write_text(text)
        self.env["MAILESC_DB_PASSWORD"] = password
        self.live: list[tuple[subprocess.Popen, Run]] = []
        self.box_of: dict[str, str] = {}  # thread -> mailbox
        self.raced: set[str] = set()  # answered threads whose answer landed too close to the deadline
        self.started = 0

    # -- the mailboxes --------------------------------------------------------------------------------------------

    def new_threads(self) -> list[str]:
        """As in ``soak.CrashSoak`` (arrival a second ago, deadline FIRST_RESPONSE later, a third answered a second
        after arrival), started early in a wall-clock second so that the answer lands before the deadline. An
        answer whose APPEND still finished less than RACE_MARGIN before the deadline (a loaded machine) is not
        "answered in time" as a worker can see it: that thread is left out of the checks and counted apart."""
        new = []
        fraction = time.time() % 1
        if fraction > 0.2:
            time.sleep(1.02 - fraction)
        for _ in range(self.rng.choice((0, 1, 1, 2))):
            name = self.rng.choice(sorted(self.mailboxes))
            message_id, answered = self.add_thread(self.mailboxes[name], "wsoak", "Workers soak")
            self.box_of[message_id] = name
            new.append(message_id)
            if answered and time.time() > self.arrivals[message_id] + FIRST_RESPONSE - RACE_MARGIN:
                self.raced.add(message_id)
        return new

    def deliveries(self):
        """The sink's mails, less those for threads whose answer raced their deadline (see new_threads)."""
        raced = {str(mail.message.get("Message-ID", "")).strip() for mail in self.sink.messages
                 if any(r in self.raced for r in str(mail.message.get("References", "")).split())}
        return [d for d in super().deliveries() if d.message_id not in raced]

    # -- the workers ----------------------------------------------------------------------------------------------

    def start_worker(self) -> tuple[subprocess.Popen, Run]:
        self.started += 1
        name = f"worker-{self.started:03d}"
        log = self.logs / f"{name}.log"
        with open(log, "wb") as handle:
            process = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(self.config), "run"],
                                       env=self.env, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        run = Run(name=name, log=log, started_at=datetime.now(timezone.utc))
        self.runs.append(run)
        self.live.append((process, run))
        return process, run

    def connect(self, connect_timeout: int):
        """An autocommit psycopg connection to the soak's database (a context manager), to read what workers did."""
        import psycopg

        parts = urlsplit(self.db[0])
        return psycopg.connect(host=parts.hostname, port=parts.port, dbname=parts.path.lstrip("/"),
                               user=parts.username, password=self.db[1], autocommit=True,
                               connect_timeout=connect_timeout)

    def holder_pid(self, mailbox: str) -> int | None:
        """The pid of the worker holding `mailbox`'s unexpired lease (the leases table), None if nobody."""
        with self.connect(connect_timeout=5) as conn:
            row = conn.execute("SELECT w.pid FROM leases l JOIN workers w ON w.id = l.owner "
                               "WHERE l.mailbox = %s AND l.expires_at > now()", (mailbox,)).fetchone()
        return row[0] if row else None

    def kill(self, index: int, kill_after: float, aimed: bool) -> Run:
        process, run = self.live.pop(index)
        run.kill_after, run.aimed = kill_after, aimed
        run.alive_at_signal = process.poll() is None
        if run.alive_at_signal:
            process.send_signal(signal.SIGKILL)
        run.returncode = process.wait(timeout=15)
        run.ended_at = datetime.now(timezone.utc)
        return run

    def expected(self) -> set[tuple[str, int]]:
        return {pair for pair in super().expected() if pair[0] not in self.raced}

    def wait_started(self, patience: float = 20.0) -> None:
        """Until every live worker has logged its start: a kill during the interpreter's start-up tests nothing."""
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline and not all("mailesc started" in run.text() for _, run in self.live):
            time.sleep(0.05)

    def one_round(self, number: int) -> Run:
        self.wait_started()
        began = time.time()
        kill_after = self.rng.uniform(*KILL_AFTER)
        aim, jitter = self.rng.random() < self.aim, self.rng.uniform(*AIM_JITTER)
        victim = self.rng.randrange(len(self.live))
        new = self.new_threads()
        aimed = False
        if aim:  # just after the first deadline that falls within the round, at the worker holding its mailbox
            due = sorted((self.arrivals[t] + offset - began, t) for t in self.threads if t not in self.answered
                         for offset in (FIRST_RESPONSE, FIRST_RESPONSE + LEVEL_2_AFTER))
            hits = [(d + jitter, t) for d, t in due if KILL_AFTER[0] <= d + jitter <= KILL_AFTER[1]]
            if hits:
                kill_after, aimed = hits[0][0], True
                pid = self.holder_pid(self.box_of[hits[0][1]])
                victim = next((i for i, (p, _) in enumerate(self.live) if p.pid == pid), victim)
        time.sleep(max(0.0, began + kill_after - time.time()))
        run = self.kill(victim, kill_after, aimed)
        run.new_threads = new
        self.start_worker()
        return run

    def run(self) -> WorkersOutcome:
        """As ``CrashSoak.run``, with the workers running side by side all the time; one SIGKILLed per round."""
        began = time.monotonic()
        timed_out = False
        finals: list[Run] = []
        try:
            self.first_start()
            for _ in range(self.worker_count):
                self.start_worker()
            for number in range(1, self.rounds + 1):
                self.one_round(number)
                if number % 25 == 0:
                    self.say(f"  {number} rounds, {len(self.threads)} threads, {len(self.sink.messages)} mails")
            self.wait_started()  # a worker still starting would die of the SIGTERM at the end, not stop
            deadline = time.monotonic() + self.final_timeout
            while not self.expected() <= self.delivered_pairs():
                if time.monotonic() > deadline or all(p.poll() is not None for p, _ in self.live):
                    timed_out = True
                    break
                time.sleep(0.2)
            if not timed_out:
                time.sleep(2.0)  # one more poll of every mailbox: a worker that would send anything twice does it now
            for process, run in self.live:
                process.send_signal(signal.SIGTERM)
            for process, run in self.live:
                try:
                    run.returncode = process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    run.returncode = process.wait(timeout=10)
                run.ended_at = datetime.now(timezone.utc)
                finals.append(run)
            self.live = []
        finally:
            self.kill_leftover()
        breaches, error = self.breaches()
        return WorkersOutcome(seed=self.seed, rounds=[r for r in self.runs if r.kill_after is not None],
                              final=None, threads=[t for t in self.threads if t not in self.raced],
                              answered=self.answered - self.raced, raced=len(self.raced),
                              deliveries=self.deliveries(), breaches=breaches, breaches_error=error,
                              store_file=self.workdir / "var" / "mailesc.json", seconds=time.monotonic() - began,
                              final_wait_timed_out=timed_out, finals=finals, workers=self.worker_count,
                              mailboxes=len(self.mailboxes))

    def kill_leftover(self) -> None:
        for process, _ in self.live:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.live = []

    def run_at(self, when: datetime) -> str:
        return "a worker"  # the SMTP server cannot tell which of the concurrent workers sent a mail

    def breaches(self) -> tuple[list[dict] | None, str | None]:
        """The breaches and their escalation rows in the database, in the shape of `breaches list --json`."""
        import psycopg

        try:
            with self.connect(connect_timeout=10) as conn:
                breaches = conn.execute("SELECT id, mailbox, thread FROM breaches ORDER BY id").fetchall()
                levels = conn.execute("SELECT breach, level, message_id, delivery, error FROM escalations "
                                      "ORDER BY breach, level").fetchall()
        except psycopg.Error as error:
            return None, f"reading the database failed: {type(error).__name__}"
        found = {bid: {"id": bid, "mailbox": mailbox, "thread": thread, "escalations": []}
                 for bid, mailbox, thread in breaches}
        for bid, level, message_id, delivery, failure in levels:
            found[bid]["escalations"].append({"level": level, "message_id": message_id, "delivery": delivery,
                                              "error": failure})
        return [b for b in found.values() if b["thread"] not in self.raced], None


def shared_password_mailboxes(dovecot, count: int, tag: str, password: str) -> dict:
    """`count` fresh IMAP users on `dovecot` with one password: name -> Mailbox."""
    boxes = {}
    for n in range(count):
        name = f"box{n:02}"
        username = f"{tag}-{name}@example.test"
        dovecot.add_user(username, password)
        boxes[name] = Mailbox(dovecot.host, dovecot.port, username, password)
    return boxes
