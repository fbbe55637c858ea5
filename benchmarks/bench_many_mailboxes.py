#!/usr/bin/env python3
"""Benchmark: many mailboxes on one worker. One `mailesc run` on PostgreSQL (a throwaway cluster) works
--mailboxes Maildir mailboxes (default 200), each with --messages messages already in it; the baseline in the same
run is the same worker with 1 mailbox. Measured per size:

  * start_s: from the start to the first cycle's log line (every mailbox read once, its lease taken);
  * idle CPU: the worker's user+system CPU time (/proc/PID/stat) over --idle seconds with no new mail, as a share
    of one core, and per mailbox;
  * RSS: the worker's resident memory (/proc/PID/status VmRSS) at the end of the idle window;
  * wake-up latency: from delivering a new customer message into a random mailbox to the log line saying a
    cycle took it (--samples deliveries, one at a time).

Why Maildir and not 200 IMAP users: one IMAP connection is one Dovecot `imap` process (and mailesc keeps one
IDLE connection per mailbox), so 200 IMAP mailboxes are 200 Dovecot processes beside the worker on this 2-core
machine, and Dovecot's default process_limit (100) would refuse half of them; the numbers would mostly be
Dovecot's. A Maildir has no IDLE: mailesc reads it every `poll_seconds` (--poll-seconds, default 5), so the
wake-up latency here is the polling's (at most poll_seconds plus a cycle), at both sizes alike; what it shows
is whether 200 mailboxes delay a poll.

    python3 benchmarks/bench_many_mailboxes.py [--mailboxes 200] [--messages 20] [--idle 30] [--samples 10]
                                              [--poll-seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import mailbox as maildir
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import REPO, median, percentile, save, table
from mailesc.testing.configs import OUTBOX, write_config
from mailesc.testing.wait import wait_until
from mailesc.testing.mail import deliver, make_mail

RULES = """
[[rule]]
name = "standard"
first_response = "8h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""
CYCLE = re.compile(r"cycle: (\d+) new message")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

PATIENCE, STEP = 600.0, 0.02  # seconds: how long to wait for a worker's cycle, and how often to look


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def new_mail_cycles(log: Path) -> int:
    return sum(1 for m in CYCLE.finditer(log.read_text(errors="replace")) if int(m.group(1)) > 0)


def measure(count: int, args, url: str, db_password: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"mesc-many-{count}-"))
    rng = random.Random(count)
    names = [f"box{n:03}" for n in range(count)]
    now = datetime.now(timezone.utc)
    boxes = {}
    for name in names:
        boxes[name] = maildir.Maildir(workdir / name, create=True)
        for k in range(args.messages):
            arrived = now - timedelta(minutes=rng.uniform(1, 60))
            raw, _ = make_mail(sender=f"Customer {k} <c{k}@customer.example>", subject=f"{name} question {k}",
                               date=arrived)
            deliver(boxes[name], raw, arrived)
    sections = "".join(f'\n[[mailbox]]\nname = "{name}"\nkind = "maildir"\npath = "{name}"\n' for name in names)
    config = write_config(workdir, mailbox=sections, smtp=OUTBOX, rules=RULES,
                          extra=f"[daemon]\npoll_seconds = {args.poll_seconds:g}\nlease_seconds = 30")
    config.write_text(config.read_text().replace(
        '[store]\npath = "var/mailesc.json"',
        f'[store]\npath = "var/mailesc.json"\nurl = "{url}"\npassword_env = "MAILESC_DB_PASSWORD"\n'
        'security = "plain"'))
    env = {**os.environ, "MAILESC_DB_PASSWORD": db_password, "PYTHONPATH": str(REPO)}
    log = workdir / "worker.log"
    started = time.monotonic()
    with open(log, "wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], env=env,
                                   cwd=workdir, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: new_mail_cycles(log) > 0 or process.poll() is not None, PATIENCE, STEP)
        if process.poll() is not None:
            raise RuntimeError(f"the worker stopped: {log.read_text()[-2000:]}")
        start_s = time.monotonic() - started
        time.sleep(2 * args.poll_seconds)  # every mailbox polled again: the worker is in its steady state
        cpu_before, window_began = cpu_seconds(process.pid), time.monotonic()
        time.sleep(args.idle)
        cpu = cpu_seconds(process.pid) - cpu_before
        window = time.monotonic() - window_began
        rss = rss_mb(process.pid)
        latencies = []
        for k in range(args.samples):
            cycles = new_mail_cycles(log)
            name = rng.choice(names)
            arrived = datetime.now(timezone.utc)
            raw, _ = make_mail(sender=f"New {k} <new{k}@customer.example>", subject=f"{name} new {k}", date=arrived)
            delivered = time.monotonic()
            deliver(boxes[name], raw, arrived)
            wait_until(lambda: new_mail_cycles(log) > cycles, PATIENCE, STEP)
            latencies.append(time.monotonic() - delivered)
            time.sleep(rng.uniform(0, args.poll_seconds))  # the next one lands at another point of the poll
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        tracebacks = log.read_text(errors="replace").count("Traceback")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {"mailboxes": count, "messages": count * args.messages, "start_s": round(start_s, 2),
            "idle_cpu_pct": round(100 * cpu / window, 2),
            "idle_cpu_ms_per_s_per_mailbox": round(1000 * cpu / window / count, 3),
            "rss_mb": round(rss, 1), "rss_kb_per_mailbox": None,
            "wake_p50_s": round(median(latencies), 2), "wake_p95_s": round(percentile(latencies, 0.95), 2),
            "wake_max_s": round(max(latencies), 2), "tracebacks": tracebacks}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--messages", type=int, default=20, help="messages already in each mailbox")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    parser.add_argument("--samples", type=int, default=10, help="new mails for the wake-up latency")
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="50 mailboxes, 15 s idle, 5 samples")
    args = parser.parse_args(argv)
    if args.quick:
        args.mailboxes, args.idle, args.samples = 50, 15.0, 5
    from mailesc.testing.postgres import PostgresCluster

    rows = []
    with PostgresCluster() as cluster:
        for count in (1, args.mailboxes):
            url, db_password = cluster.new_database(f"many_{count}")
            rows.append(measure(count, args, url, db_password))
            print(table(rows[-1:], list(rows[-1])), flush=True)
    base, many = rows
    many["rss_kb_per_mailbox"] = round(1024 * (many["rss_mb"] - base["rss_mb"]) / (many["mailboxes"] - 1), 1)
    print()
    print(table(rows, list(rows[0])))
    path = save("many_mailboxes", {"store": "postgresql", "source": "maildir", "poll_seconds": args.poll_seconds,
                                   "messages_per_mailbox": args.messages, "idle_seconds": args.idle,
                                   "baseline": "the same worker with 1 mailbox", "rows": rows})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
