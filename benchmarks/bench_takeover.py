#!/usr/bin/env python3
"""Benchmark: takeover time after a SIGKILL. Two `mailesc run` workers share --mailboxes IMAP mailboxes on one
PostgreSQL database (a throwaway cluster, mailesc.testing.postgres) with `daemon.lease_seconds` = --lease-seconds;
each sample SIGKILLs the worker holding half of them and measures, from the kill:

  * expiry: when the killed worker's leases ran out (their expires_at in the database, read just before the kill):
    the earliest moment anyone may take them over; at most lease_seconds;
  * taken: when the survivor held every one of them (the leases table, polled every 50 ms);
  * worked: when the survivor's log said it works each of them (its engine made, the mailbox read at once).

Then a new worker replaces the killed one and the next sample waits until the two hold half each again.
Goal: p95 of "worked" <= lease_seconds + 5 s. Baseline, in the same run: lease_seconds itself (a worker killed
just after renewing frees its leases lease_seconds later; nothing can be faster) and the measured expiry.

    python3 benchmarks/bench_takeover.py [--samples 10] [--lease-seconds 5] [--mailboxes 6] [--quick]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, median, percentile, save, table
from mailesc.testing import DovecotServer, find_dovecot
from mailesc.testing.configs import OUTBOX, write_config
from mailesc.testing.wait import wait_until
from mailesc.testing.workers_soak import mailbox_sections, shared_password_mailboxes

RULES = """
[[rule]]
name = "standard"
first_response = "8h"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""
GOAL_EXTRA_S = 5.0
PATIENCE, STEP = 60.0, 0.05  # seconds: how long to wait for leases to settle or move, and how often to look


class Database:
    def __init__(self, url: str, password: str):
        import psycopg
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.connection = psycopg.connect(host=parts.hostname, port=parts.port, dbname=parts.path.lstrip("/"),
                                          user=parts.username, password=password, autocommit=True)

    def holders(self) -> dict[str, int | None]:
        """mailbox -> pid of the worker holding its unexpired lease (None: free or expired)."""
        import psycopg

        try:
            rows = self.connection.execute("SELECT l.mailbox, CASE WHEN l.expires_at > now() THEN w.pid END "
                                           "FROM leases l LEFT JOIN workers w ON w.id = l.owner").fetchall()
        except psycopg.errors.UndefinedTable:  # the first worker has not made the schema yet
            return {}
        return dict(rows)

    def seconds_to_expiry(self, pid: int) -> float:
        """How long until the last of `pid`'s leases runs out (database clock)."""
        return self.connection.execute(
            "SELECT extract(epoch FROM max(l.expires_at) - now())::float8 FROM leases l JOIN workers w "
            "ON w.id = l.owner WHERE w.pid = %s", (pid,)).fetchone()[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--lease-seconds", type=float, default=5.0)
    parser.add_argument("--mailboxes", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="4 samples")
    args = parser.parse_args(argv)
    samples = 4 if args.quick else args.samples
    if find_dovecot() is None:
        print("dovecot-imapd is not installed", file=sys.stderr)
        return 2
    from mailesc.testing.postgres import PostgresCluster

    workdir = Path(tempfile.mkdtemp(prefix="mesc-takeover-"))
    dovecot, cluster, processes = DovecotServer(), PostgresCluster(), []
    rows = []
    try:
        dovecot.start()
        cluster.start()
        url, db_password = cluster.new_database("takeover")
        password = "pw-" + secrets.token_hex(8)
        boxes = shared_password_mailboxes(dovecot, args.mailboxes, f"takeover{secrets.token_hex(3)}", password)
        config = write_config(workdir, mailbox=mailbox_sections(boxes), smtp=OUTBOX, rules=RULES,
                              extra=f"[daemon]\npoll_seconds = 30\nlease_seconds = {args.lease_seconds:g}")
        config.write_text(config.read_text().replace(
            '[store]\npath = "var/mailesc.json"',
            f'[store]\npath = "var/mailesc.json"\nurl = "{url}"\npassword_env = "MAILESC_DB_PASSWORD"\n'
            'security = "plain"'))
        env = {**os.environ, "MAILESC_IMAP_PASSWORD": password, "MAILESC_DB_PASSWORD": db_password,
               "PYTHONPATH": str(REPO)}
        logs: dict[int, Path] = {}

        def start() -> subprocess.Popen:
            log = workdir / f"worker-{len(processes) + 1}.log"
            with open(log, "wb") as handle:
                process = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "run"], env=env,
                                           cwd=workdir, stdout=handle, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
            processes.append(process)
            logs[process.pid] = log
            return process

        db = Database(url, db_password)
        live = [start(), start()]
        half = args.mailboxes // 2
        for number in range(1, samples + 1):
            pids = {p.pid for p in live}
            wait_until(lambda: (h := db.holders()) and set(h.values()) == pids
                       and sorted(list(h.values()).count(pid) for pid in pids) == [half, args.mailboxes - half],
                       PATIENCE, STEP)
            time.sleep(1.0)  # let the survivor-to-be settle (its engines made, IDLE entered)
            victim, survivor = live
            victim_boxes = {m for m, pid in db.holders().items() if pid == victim.pid}
            worked_before = logs[survivor.pid].read_text(errors="replace").count("is worked here now")
            expiry = db.seconds_to_expiry(victim.pid)
            killed = time.monotonic()
            victim.kill()
            victim.wait()
            taken = wait_until(lambda: (h := db.holders()) and all(h[m] == survivor.pid for m in victim_boxes)
                               and time.monotonic(), PATIENCE, STEP) - killed

            def worked_all():
                text = logs[survivor.pid].read_text(errors="replace")
                return text.count("is worked here now") - worked_before >= len(victim_boxes) and time.monotonic()

            worked = wait_until(worked_all, PATIENCE, STEP) - killed
            rows.append({"sample": number, "mailboxes_taken": len(victim_boxes), "expiry_s": round(expiry, 2),
                         "taken_s": round(taken, 2), "worked_s": round(worked, 2)})
            print(table(rows[-1:], list(rows[-1])), flush=True)
            live = [survivor, start()]  # the older worker is the next victim: it holds half once the new one joined
        for process in live:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        db.connection.close()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        dovecot.cleanup()
        cluster.cleanup()
    worked = [r["worked_s"] for r in rows]
    summary = {"lease_seconds": args.lease_seconds, "baseline_s": args.lease_seconds,
               "expiry_median_s": round(median([r["expiry_s"] for r in rows]), 2),
               "taken_median_s": round(median([r["taken_s"] for r in rows]), 2),
               "taken_p95_s": round(percentile([r["taken_s"] for r in rows], 0.95), 2),
               "worked_median_s": round(median(worked), 2), "worked_p95_s": round(percentile(worked, 0.95), 2),
               "worked_max_s": max(worked)}
    goal = args.lease_seconds + GOAL_EXTRA_S
    print()
    print(table(rows, list(rows[0])))
    print("\n" + ", ".join(f"{k} {v}" for k, v in summary.items()) + f"  (goal: worked p95 <= {goal:g} s)")
    path = save("takeover", {"goal": f"p95 of the takeover after a SIGKILL <= lease_seconds + {GOAL_EXTRA_S:g} s",
                             "mailboxes": args.mailboxes, "workers": 2, "rows": rows, "summary": summary,
                             "meets_goal": summary["worked_p95_s"] <= goal})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
