"""Fault injection for `mailesc run`: SIGKILL at random points while mail flows, then check the promise.

Shared by ``tests/integration/test_crash_safety.py`` (>= 50 rounds in CI) and ``benchmarks/soak_kill.py``
(200+ rounds); ``mailesc.testing.workers_soak`` runs it with several workers on PostgreSQL. The promise under
test (mailesc/cycle.py, outbox.py, store.py): a breach and its escalation record are flushed to the store
before the mail is sent and marked sent after; the escalation Message-ID is stable per thread and level; the
store file is replaced atomically. So however often the daemon dies,

* every escalation that fell due is delivered (nothing lost),
* a (thread, level) is never delivered under two different Message-IDs (a resend after a crash between the
  server's 250 and the local commit repeats the SAME Message-ID, which is the only duplicate allowed),
* no answered thread is ever escalated,
* the store still loads, with one breach per unanswered thread and every escalation marked sent.

One round: append 0-2 new customer threads (unique subjects; some answered from the team in ``Sent`` a second
later, so they must never be escalated) either before the daemon starts or while it runs, start
``python -m mailesc -c CONFIG run``, kill it with SIGKILL at a random moment 0.05-1.5 s after the start (in about
half the rounds the moment is drawn from the 0.1 s just after a deadline that falls in that span, where the daemon
records, sends and commits; uniform kills almost never land between an SMTP 250 and the store commit). After the
rounds one last daemon runs until every due level is delivered, then gets SIGTERM.

Nothing here is a mock: the daemon is a real process, the mailbox a real Dovecot, the SMTP server aiosmtpd.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from mailesc.testing.backend import Backend
from mailesc.testing.configs import imap_section, smtp_section, write_config
from mailesc.testing.mail import make_mail

MANAGER, DIRECTOR = "manager@example.test", "director@example.test"
RECIPIENT = {1: MANAGER, 2: DIRECTOR}
LEVELS = (1, 2)
FIRST_RESPONSE = 2.0  # seconds
LEVEL_2_AFTER = 3.0  # seconds after the deadline
RULES = f"""
[[rule]]
name = "crash"
first_response = "{FIRST_RESPONSE:g}s"
[[rule.escalate]]
after = "0m"
to = ["{MANAGER}"]
[[rule.escalate]]
after = "{LEVEL_2_AFTER:g}s"
to = ["{DIRECTOR}"]
"""
# Storm control would bundle a backlog of more than `digest_after` escalations into one digest mail (with its
# own Message-ID); this scenario checks the one-mail-per-thread-and-level promise, so bundling is switched off.
DAEMON = "[daemon]\npoll_seconds = 1\ndigest_after = 100000"
X_MAILESC = re.compile(r"escalation;\s*level=(\d+);\s*breach=(\d+)(?:;\s*sig=[0-9a-f]+)?")
KILL_AFTER = (0.05, 1.5)  # seconds after the start
# An aimed kill lands this long after a deadline (L1 or L2) that falls within KILL_AFTER: the daemon wakes for it,
# records the level (~5 ms), sends the mail (~50 ms) and marks it sent (a few ms more).
AIM_JITTER = (0.0, 0.1)
TEAM = "Alex Support <alex@example.test>"


@dataclass
class Run:
    """One daemon process: a killed round, or the final run."""

    name: str
    log: Path
    started_at: datetime
    kill_after: float | None = None  # None: the final run (SIGTERM)
    ended_at: datetime | None = None
    alive_at_signal: bool = False  # the process was still running when the signal came
    returncode: int | None = None
    new_threads: list[str] = field(default_factory=list)
    appended_while_running: bool = False
    aimed: bool = False  # the kill was aimed just after a deadline

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Delivery:
    """One mail the SMTP sink accepted, attributed to a thread and level of the scenario where it can be."""

    message_id: str
    thread: str | None  # None: not attributable to a thread of this scenario
    level: int | None  # None: not an escalation (a digest, a warning, ...)
    rcpt_tos: list[str]
    x_mailesc: str
    received_at: datetime
    run: str  # the daemon run during which the sink accepted it


@dataclass
class Outcome:
    """What a soak did and saw; ``problems()`` lists every broken promise (empty: the run is clean) and
    ``summary()`` the numbers for ``table()``."""

    seed: int
    rounds: list[Run]
    final: Run | None
    threads: list[str]  # customer Message-IDs, in order
    answered: set[str]
    deliveries: list[Delivery]
    breaches: list[dict] | None  # `mailesc breaches list --json`, None when it failed
    breaches_error: str | None
    store_file: Path
    seconds: float
    final_wait_timed_out: bool = False

    # -- what should have happened and what did ---------------------------------------------------------------

    @property
    def unanswered(self) -> list[str]:
        return [t for t in self.threads if t not in self.answered]

    @property
    def expected(self) -> set[tuple[str, int]]:
        return {(thread, level) for thread in self.unanswered for level in LEVELS}

    @property
    def delivered_pairs(self) -> set[tuple[str, int]]:
        return {(d.thread, d.level) for d in self.deliveries if d.thread and d.level}

    @property
    def lost(self) -> set[tuple[str, int]]:
        return self.expected - self.delivered_pairs

    @property
    def unexpected(self) -> list[Delivery]:
        return [d for d in self.deliveries if (d.thread, d.level) not in self.expected]

    @property
    def duplicates(self) -> int:
        """Extra copies of a Message-ID (each one a resend after a crash between acceptance and commit)."""
        return sum(count - 1 for count in Counter(d.message_id for d in self.deliveries).values())

    @property
    def duplicated_ids(self) -> dict[str, int]:
        return {mid: n for mid, n in Counter(d.message_id for d in self.deliveries).items() if n > 1}

    @property
    def id_conflicts(self) -> dict[tuple[str, int], set[str]]:
        """(thread, level) pairs delivered under more than one Message-ID: duplicates a reader cannot spot."""
        ids: dict[tuple[str, int], set[str]] = defaultdict(set)
        for d in self.deliveries:
            if d.thread and d.level:
                ids[(d.thread, d.level)].add(d.message_id)
        return {pair: mids for pair, mids in ids.items() if len(mids) > 1}

    @property
    def wrong_recipients(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.level in RECIPIENT and d.rcpt_tos != [RECIPIENT[d.level]]]

    @property
    def kills(self) -> int:
        return sum(1 for r in self.rounds if r.alive_at_signal)

    @property
    def kills_after_start(self) -> int:
        """Kills that hit a daemon which had already logged its start (the others died in interpreter start-up)."""
        return sum(1 for r in self.rounds if r.alive_at_signal and "mailesc started" in r.text())

    @property
    def kills_in_commit_window(self) -> int:
        """Kills after the SMTP server accepted a mail but before its cycle ended (the "sent" mark is flushed
        just before the cycle's closing log line): the store may not know the mail went out, so it must come
        back as a same-Message-ID resend, never as a loss and never under another Message-ID."""
        hits = 0
        for run in self.rounds:
            accepted = [d for d in self.deliveries if d.run == run.name]
            lines = run.text().splitlines()
            if accepted and (any(f"as {d.message_id}" not in run.text() for d in accepted)
                             or "mailesc.outbox: sent the" in (lines[-1] if lines else "")):
                hits += 1
        return hits

    @property
    def aimed(self) -> int:
        return sum(1 for r in self.rounds if r.aimed)

    @property
    def early_exits(self) -> list[Run]:
        """Daemons that were already gone when the SIGKILL came: they stopped on their own."""
        return [r for r in self.rounds if not r.alive_at_signal]

    def log_lines(self, pattern: str) -> list[str]:
        found = []
        for run in [*self.rounds, *([self.final] if self.final else [])]:
            found += [f"{run.name}: {line}" for line in run.text().splitlines() if pattern in line]
        return found

    @property
    def tracebacks(self) -> list[str]:
        return self.log_lines("Traceback") + self.log_lines("internal error")

    @property
    def leftover_temp_files(self) -> list[str]:
        """Temp files of a store write that a SIGKILL interrupted (the rename never happened)."""
        return sorted(p.name for p in self.store_file.parent.glob(f".{self.store_file.name}.*"))

    def store_problems(self) -> list[str]:
        if self.breaches is None:
            return [f"`mailesc breaches list --json` failed: {self.breaches_error}"]
        problems = []
        per_thread = Counter(b["thread"] for b in self.breaches)
        for thread in self.unanswered:
            if per_thread[thread] != 1:
                problems.append(f"{thread}: {per_thread[thread]} breach record(s), expected 1")
        for thread in sorted(set(per_thread) - set(self.unanswered)):
            problems.append(f"{thread}: breach record(s) for a thread that was answered in time "
                            f"or is unknown to the scenario")
        sent_ids = {(d.thread, d.level): d.message_id for d in self.deliveries if d.thread and d.level}
        for breach in self.breaches:
            levels = sorted(e["level"] for e in breach["escalations"])
            if levels != list(LEVELS):
                problems.append(f"breach {breach['id']} ({breach['thread']}): levels {levels}, expected {list(LEVELS)}")
            for e in breach["escalations"]:
                if e["delivery"] != "sent":
                    problems.append(f"breach {breach['id']} level {e['level']}: delivery {e['delivery']!r} "
                                    f"(error {e['error']!r})")
                delivered = sent_ids.get((breach["thread"], e["level"]))
                if delivered is not None and delivered != e["message_id"]:
                    problems.append(f"breach {breach['id']} level {e['level']}: the store says {e['message_id']}, "
                                    f"the SMTP server got {delivered}")
        return problems

    def problems(self) -> list[str]:
        """Everything that breaks the promise; empty when the run is clean."""
        problems = []
        for thread, level in sorted(self.lost):
            problems.append(f"LOST: level {level} for {thread} ({self.where(thread)}) was never delivered")
        for d in self.unexpected:
            what = f"level {d.level} for {d.thread}" if d.level else f"a mail with X-Mailesc {d.x_mailesc!r}"
            why = " (an ANSWERED thread)" if d.thread in self.answered else ""
            problems.append(f"UNEXPECTED: {what}{why} as {d.message_id}, during {d.run}")
        for (thread, level), mids in sorted(self.id_conflicts.items()):
            problems.append(f"DUPLICATE WITH A DIFFERENT Message-ID: level {level} for {thread}: {sorted(mids)}")
        for d in self.wrong_recipients:
            problems.append(f"WRONG RECIPIENTS: level {d.level} for {d.thread} went to {d.rcpt_tos}")
        problems += [f"STORE: {p}" for p in self.store_problems()]
        problems += [f"DAEMON OUTPUT: {line}" for line in self.tracebacks]
        for run in self.early_exits:
            problems.append(f"EARLY EXIT: {run.name} had already exited with status {run.returncode} before the "
                            f"SIGKILL: {run.text()[-500:]!r}")
        if self.final is not None and self.final.returncode != 0:
            problems.append(f"FINAL RUN: exit status {self.final.returncode} after SIGTERM: "
                            f"{self.final.text()[-800:]!r}")
        if self.final_wait_timed_out:
            problems.append("FINAL RUN: not every due escalation arrived within the timeout")
        return problems

    def where(self, thread: str) -> str:
        for run in self.rounds:
            if thread in run.new_threads:
                return f"appended in {run.name}"
        return "appended nowhere?"

    def summary(self) -> dict:
        return {
            "seed": self.seed,
            "rounds": len(self.rounds),
            "kills": self.kills,
            "kills_after_start": self.kills_after_start,
            "kills_aimed_at_a_deadline": self.aimed,
            "kills_in_commit_window": self.kills_in_commit_window,
            "threads": len(self.threads),
            "answered_in_time": len(self.answered),
            "expected_escalations": len(self.expected),
            "delivered": len(self.deliveries),
            "delivered_distinct": len(self.delivered_pairs & self.expected),
            "duplicates_same_message_id": self.duplicates,
            "duplicates_different_message_id": len(self.id_conflicts),
            "lost": len(self.lost),
            "unexpected": len(self.unexpected),
            "store_breaches": None if self.breaches is None else len(self.breaches),
            "store_problems": len(self.store_problems()),
            "tracebacks": len(self.tracebacks),
            "early_exits": len(self.early_exits),
            "leftover_temp_files": len(self.leftover_temp_files),
            "seconds": round(self.seconds, 1),
            "ok": not self.problems(),
        }


def table(summary: dict) -> str:
    """``Outcome.summary()`` as an aligned two-column text table."""
    rows = [
        ("rounds", summary["rounds"]),
        ("kills (SIGKILL to a live daemon)", summary["kills"]),
        ("  of which after 'mailesc started'", summary["kills_after_start"]),
        ("  aimed just after a deadline", summary["kills_aimed_at_a_deadline"]),
        ("  after an SMTP 250, before its cycle ended", summary["kills_in_commit_window"]),
        ("threads", summary["threads"]),
        ("  answered in time (must not escalate)", summary["answered_in_time"]),
        ("expected escalations", summary["expected_escalations"]),
        ("delivered (mails)", summary["delivered"]),
        ("  distinct (thread, level)", summary["delivered_distinct"]),
        ("duplicates by Message-ID (same ID)", summary["duplicates_same_message_id"]),
        ("duplicates with a DIFFERENT ID", summary["duplicates_different_message_id"]),
        ("lost", summary["lost"]),
        ("unexpected (e.g. answered thread)", summary["unexpected"]),
        ("breaches in the store", summary["store_breaches"]),
        ("store problems", summary["store_problems"]),
        ("tracebacks in daemon output", summary["tracebacks"]),
        ("daemons that exited on their own", summary["early_exits"]),
        ("leftover store temp files", summary["leftover_temp_files"]),
        ("seconds", summary["seconds"]),
        ("seed", summary["seed"]),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


class CrashSoak:
    """Runs the scenario against a mailbox (``mailesc.testing.Mailbox``) and an SMTP sink (``SmtpSink``)."""

    def __init__(self, workdir: Path, mailbox, sink, *, seed: int, rounds: int, aim: float = 0.5,
                 final_timeout: float = 90.0, pythonpath: Path | None = None, backend: Backend | None = None,
                 say: Callable[[str], None] = lambda line: None):
        """`aim`: the share of rounds whose kill moment is drawn just after a deadline that falls in the round
        (when one does), instead of uniformly from KILL_AFTER: uniform kills rarely hit the few milliseconds
        between the SMTP server's acceptance and the store commit, which are what crash safety is about.
        `pythonpath`: a folder holding the `mailesc` package the daemons import (a snapshot), instead of the
        installed one. `backend`: the store the daemons use (``mailesc.testing.backend.Backend``; the file store
        by default)."""
        self.workdir, self.mailbox, self.sink = Path(workdir), mailbox, sink
        self.backend = backend or Backend("file")
        self.seed, self.rounds, self.aim, self.final_timeout, self.say = seed, rounds, aim, final_timeout, say
        self.rng = random.Random(seed)
        self.config = write_config(self.workdir, mailbox=imap_section(mailbox), smtp=smtp_section(sink),
                                   rules=RULES, extra=DAEMON, store=self.backend.store_section)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.env = {**os.environ, "MAILESC_IMAP_PASSWORD": mailbox.password}
        if pythonpath is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))
        self.process: subprocess.Popen | None = None
        self.runs: list[Run] = []
        self.threads: list[str] = []
        self.answered: set[str] = set()
        self.thread_ids: set[str] = set()
        self.arrivals: dict[str, float] = {}  # thread -> INTERNALDATE (epoch seconds)

    # -- the mailbox --------------------------------------------------------------------------------------------

    def new_threads(self) -> list[str]:
        """0-2 new customer threads; about a third are answered from the team a second after they arrived."""
        return [self.add_thread(self.mailbox, "soak", "Crash soak")[0]
                for _ in range(self.rng.choice((0, 1, 1, 2)))]

    def add_thread(self, box, tag: str, title: str) -> tuple[str, bool]:
        """One customer thread in `box` (a ``Mailbox``), arrived a second ago; about a third answered from the team
        a second after it arrived (the answer's INTERNALDATE). Its Message-ID, and whether it was answered."""
        number = len(self.threads) + 1
        arrived = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        subject = f"{title} {self.seed} thread {number}: order {self.rng.randrange(10**6):06d} is stuck"
        message_id = f"<{tag}-{self.seed}-{number}@customer.example>"
        raw, _ = make_mail(sender=f"Customer {number} <customer{number}@customer.example>", subject=subject,
                           date=arrived, message_id=message_id)
        box.append("INBOX", raw, arrived)
        self.threads.append(message_id)
        self.thread_ids.add(message_id)
        self.arrivals[message_id] = arrived.timestamp()
        answered = self.rng.random() < 1 / 3
        if answered:  # before its 2 s deadline: INTERNALDATE one second later
            reply, _ = make_mail(sender=TEAM, to=f"customer{number}@customer.example", subject=f"Re: {subject}",
                                 date=arrived + timedelta(seconds=1), in_reply_to=message_id,
                                 references=[message_id], body="We are on it.")
            box.append("Sent", reply, arrived + timedelta(seconds=1))
            self.answered.add(message_id)
        return message_id, answered

    # -- the daemon ---------------------------------------------------------------------------------------------

    def start(self, name: str, kill_after: float | None = None) -> Run:
        """Start one `mailesc run` daemon, its output going to ``logs/<name>.log``."""
        self.expire_dead_leases()
        log = self.logs / f"{name}.log"
        with open(log, "wb") as handle:  # the child keeps its own descriptor
            self.process = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(self.config), "run"],
                                            env=self.env, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        run = Run(name=name, log=log, started_at=datetime.now(timezone.utc), kill_after=kill_after)
        self.runs.append(run)
        if self.backend.name == "postgresql" or kill_after is None:
            self.wait_until_started(run)
        return run

    def wait_until_started(self, run: Run, timeout: float = 30.0) -> None:
        """The final run, and every round on PostgreSQL, count from the daemon's logged start. On PostgreSQL,
        importing psycopg and connecting take longer than a whole round of KILL_AFTER, so counting from the exec
        would kill every daemon before its first cycle and test nothing but start-up (which the file store's
        rounds cover); and a final run with nothing left to send would get its SIGTERM before it can handle it."""
        deadline = time.monotonic() + timeout
        while "mailesc started" not in run.text():
            if time.monotonic() > deadline or self._daemon().poll() is not None:
                return  # the round goes on; an early exit or a hang shows in the outcome
            time.sleep(0.02)
        run.started_at = datetime.now(timezone.utc)

    def stop(self, run: Run, signum: int, timeout: float = 15.0) -> None:
        """Send ``signum`` to the running daemon and wait for it; records whether it was still alive."""
        process = self._daemon()
        run.alive_at_signal = process.poll() is None
        if run.alive_at_signal:
            process.send_signal(signum)
        try:
            run.returncode = process.wait(timeout=timeout)
        finally:
            self.kill_leftover()
        run.ended_at = datetime.now(timezone.utc)

    def expire_dead_leases(self) -> None:
        """PostgreSQL: let the lease of the daemon killed last run out now instead of `lease_seconds` later, so
        the next daemon works the mailbox from its first cycle. Only one daemon runs at a time and the last one
        was waited for, so nobody else can still write; lease expiry itself is tested in test_leases.py."""
        if self.backend.name != "postgresql":
            return
        with self.backend.open(self.workdir) as store:
            connection = store.connection()
            with connection.transaction():
                connection.execute("UPDATE leases SET expires_at = now() WHERE expires_at > now()")
                connection.execute("UPDATE workers SET expires_at = now() WHERE expires_at > now()")

    def _daemon(self) -> subprocess.Popen:
        """The daemon started last, while a round or the final run has one."""
        if self.process is None:
            raise RuntimeError("no daemon was started, or it was cleaned up already")
        return self.process

    def kill_leftover(self) -> None:
        """SIGKILL the daemon if it is still running (for `finally:` blocks of failed tests, too)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def one_round(self, number: int) -> Run:
        """New threads (before or while the daemon runs), a daemon, and a SIGKILL at a random or aimed moment."""
        kill_after = self.rng.uniform(*KILL_AFTER)
        aim, jitter = self.rng.random() < self.aim, self.rng.uniform(*AIM_JITTER)
        while_running = self.rng.random() < 0.5
        append_at = self.rng.uniform(0, kill_after)
        if while_running:  # the daemon may be polling while the mail lands
            run = self.start(f"round-{number:03d}", kill_after)
            run.appended_while_running = True
            time.sleep(append_at)
            run.new_threads = self.new_threads()
        else:
            new = self.new_threads()
            run = self.start(f"round-{number:03d}", kill_after)
            run.new_threads = new
        start = run.started_at.timestamp()
        if aim:  # just after the first deadline that falls within the round, if any
            due = sorted(self.arrivals[t] + offset - start for t in self.threads if t not in self.answered
                         for offset in (FIRST_RESPONSE, FIRST_RESPONSE + LEVEL_2_AFTER))
            aimed = [d + jitter for d in due if KILL_AFTER[0] <= d + jitter <= KILL_AFTER[1]]
            if aimed:
                kill_after, run.aimed = aimed[0], True
                run.kill_after = kill_after
        time.sleep(max(0.0, start + kill_after - time.time()))
        self.stop(run, signal.SIGKILL)
        return run

    # -- the whole scenario -------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        """The whole scenario: a first start, every round, the final run until all is delivered; then what the
        SMTP server and the store say. Never leaves a daemon running."""
        began = time.monotonic()
        timed_out = False
        final = None
        try:
            self.first_start()
            for number in range(1, self.rounds + 1):
                self.one_round(number)
                if number % 25 == 0:
                    self.say(f"  {number} rounds, {len(self.threads)} threads, {len(self.sink.messages)} mails")
            final = self.start("final")
            deadline = time.monotonic() + self.final_timeout
            while not self.expected() <= self.delivered_pairs():
                if time.monotonic() > deadline or self._daemon().poll() is not None:
                    timed_out = True
                    break
                time.sleep(0.1)
            if not timed_out:
                time.sleep(1.5)  # one more poll: a daemon that would send anything twice does it now
            self.stop(final, signal.SIGTERM)
        finally:
            self.kill_leftover()
        breaches, error = self.breaches()
        return Outcome(seed=self.seed, rounds=[r for r in self.runs if r.kill_after is not None], final=final,
                       threads=list(self.threads), answered=set(self.answered), deliveries=self.deliveries(),
                       breaches=breaches, breaches_error=error, store_file=self.workdir / "var" / "mailesc.json",
                       seconds=time.monotonic() - began, final_wait_timed_out=timed_out)

    def first_start(self) -> None:
        """One `mailesc once` on the empty mailbox, so that the store's first start is on record before any mail
        flows: a thread already overdue at a store's first start is escalated at its current level only (issue 11),
        and this scenario is about crashes, not about first starts (most kills land before a daemon's first cycle)."""
        subprocess.run([sys.executable, "-m", "mailesc", "-c", str(self.config), "once"], env=self.env,
                       cwd=self.workdir, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=True)

    def expected(self) -> set[tuple[str, int]]:
        return {(t, level) for t in self.threads if t not in self.answered for level in LEVELS}

    def delivered_pairs(self) -> set[tuple[str, int]]:
        return {(d.thread, d.level) for d in self.deliveries() if d.thread and d.level}

    def deliveries(self) -> list[Delivery]:
        """What the SMTP sink accepted, read through the X-Mailesc and References headers."""
        found = []
        for mail in self.sink.messages:
            header = str(mail.message.get("X-Mailesc", "")).strip()
            match = X_MAILESC.fullmatch(header)
            threads = [r for r in str(mail.message.get("References", "")).split() if r in self.thread_ids]
            found.append(Delivery(message_id=str(mail.message.get("Message-ID", "")).strip(),
                                  thread=threads[0] if len(threads) == 1 else None,
                                  level=int(match.group(1)) if match else None, rcpt_tos=list(mail.rcpt_tos),
                                  x_mailesc=header, received_at=mail.received_at,
                                  run=self.run_at(mail.received_at)))
        return found

    def run_at(self, when: datetime) -> str:
        for run in self.runs:
            if run.started_at <= when <= (run.ended_at or datetime.now(timezone.utc)):
                return run.name
        return "between runs"

    def breaches(self) -> tuple[list[dict] | None, str | None]:
        """(`mailesc breaches list --json`, None), or (None, why it failed)."""
        result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(self.config), "breaches", "list",
                                 "--json"], env=self.env, cwd=self.workdir, capture_output=True, text=True,
                                timeout=60)
        if result.returncode != 0:
            return None, f"exit status {result.returncode}: {result.stderr.strip()}"
        try:
            return json.loads(result.stdout), None
        except json.JSONDecodeError as error:
            return None, f"not JSON ({error}): {result.stdout[:500]!r}"


def report(outcome: Outcome, workdir: Path) -> str:
    """A failure report: the seed, what broke, where the logs and the store are."""
    lines = [f"seed={outcome.seed} (rerun with it to replay the same choices; timing still varies)",
             table(outcome.summary()), "", "problems:"]
    lines += [f"  {p}" for p in outcome.problems()[:60]]
    if outcome.duplicated_ids:
        lines.append("same-Message-ID resends:")
        for mid, n in sorted(outcome.duplicated_ids.items()):
            runs = [d.run for d in outcome.deliveries if d.message_id == mid]
            lines.append(f"  {mid} x{n}: {runs}")
    lines.append(f"daemon logs: {workdir / 'logs'}; store: {outcome.store_file}")
    return "\n".join(lines)
