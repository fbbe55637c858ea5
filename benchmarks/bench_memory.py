#!/usr/bin/env python3
"""Benchmark 4: peak RSS of the daemon (`mailesc run`) at a big mailbox with many open threads.

The generated mailbox has --messages messages of which 20% of the count are unanswered customer threads (at
100k: 20k open threads with running clocks). The daemon starts on an empty store (its first cycle is the initial
sync), idles a few seconds, and is stopped; then it is started again on the full store (a restart) and measured
the same way. Peak RSS is the kernel's VmHWM of the daemon process. Goal: <= 120 MB.

    python3 benchmarks/bench_memory.py [--messages 100000] [--quick]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_latency import DaemonLog
from common import BenchDovecot, stop_daemon, generate, mailesc_env, save, table, write_config

GOAL_MB = 120  # issue 13 (it was 150 before)
NEW_MAIL = re.compile(r"cycle: ([1-9]\d*) new message")
STARTED = re.compile(r"mailesc started")


def vm(pid: int) -> dict:
    values = {}
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(("VmHWM", "VmRSS")):
            name, number, _unit = line.split()
            values[name.rstrip(":")] = round(int(number) / 1024, 1)
    return values


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def run_daemon(config: Path, box, wait_for_sync: bool) -> dict:
    daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "-v", "run"],
                              env=mailesc_env(box), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = DaemonLog(daemon)
    started = time.time()
    try:
        if log.wait_for(STARTED, 0, timeout=600) is None:
            raise SystemExit("the daemon did not start:\n" + "\n".join(line for _, line in log.lines))
        if wait_for_sync and log.wait_for(NEW_MAIL, 0, timeout=3600) is None:
            raise SystemExit("the daemon never finished its first sync:\n" + "\n".join(line for _, line in log.lines[-20:]))
        ready = time.time() - started
        last, quiet_since = cpu_seconds(daemon.pid), time.time()
        while time.time() - quiet_since < 3:  # busy until its CPU time stops growing for 3 s
            time.sleep(0.5)
            now = cpu_seconds(daemon.pid)
            if now - last > 0.05:
                quiet_since = time.time()
            last = now
        memory = vm(daemon.pid)
        return {"first_cycle_done_s": round(ready, 1), "settled_s": round(time.time() - started, 1),
                "peak_rss_mb": memory.get("VmHWM"), "rss_idle_mb": memory.get("VmRSS")}
    finally:
        stop_daemon(daemon, timeout=60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100000)
    parser.add_argument("--quick", action="store_true", help="10k messages")
    args = parser.parse_args(argv)
    size = 10000 if args.quick else args.messages
    dovecot = BenchDovecot()
    rows = []
    try:
        box, _counts, _fill = dovecot.mailbox(generate(size, seed=size, open_share=0.2))
        work = Path(tempfile.mkdtemp(prefix="mesc-memory-"))
        config = write_config(work, box, poll_seconds=60)
        rows.append({"run": "first start (initial sync)", "messages": size, **run_daemon(config, box, True)})
        print(table(rows[-1:], list(rows[-1])), flush=True)
        store_mb = round((work / "var" / "mailesc.json").stat().st_size / 2**20, 1)
        rows.append({"run": "restart on the full store", "messages": size, **run_daemon(config, box, False)})
    finally:
        dovecot.stop()
    for row in rows:
        row["meets_goal"] = row["peak_rss_mb"] is not None and row["peak_rss_mb"] <= GOAL_MB
    open_threads = None
    try:
        from mailesc.store import Store
        with Store(work / "var" / "mailesc.json", readonly=True) as store:
            open_threads = sum(1 for t in store.threads.values()
                               if t.first_customer_message() and not t.first_response_after(
                                   t.first_customer_message().arrived))
            threads = len(store.threads)
    except Exception as error:  # the numbers above stand without it
        threads = f"unknown ({error})"
    print()
    print(table(rows, ["run", "messages", "first_cycle_done_s", "peak_rss_mb", "rss_idle_mb", "meets_goal"]))
    print(f"threads: {threads}, open (unanswered): {open_threads}, store file: {store_mb} MB")
    path = save("memory", {"goal": f"peak RSS <= {GOAL_MB} MB", "rows": rows, "threads": threads,
                           "open_threads": open_threads, "store_mb": store_mb})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
