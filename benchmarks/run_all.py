#!/usr/bin/env python3
"""Run every benchmark (after the README's test install: Dovecot and the test extras) and print their tables.
Results: benchmarks/results/*.json (and profile_*.txt); summarised by hand in BENCHMARKS.md.

    python3 benchmarks/run_all.py            # 10k/100k messages; about 25 minutes on 2 cores
    python3 benchmarks/run_all.py --quick    # 1k/10k messages; about 3 minutes
"""

from __future__ import annotations

import argparse
import sys
import time

import bench_idle_cycle
import bench_initial_sync
import bench_latency
import bench_many_mailboxes
import bench_memory
import bench_pg_lists
import bench_replay
import bench_review
import bench_startup
import bench_takeover


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (1k/10k): a smoke run in minutes")
    parser.add_argument("--only", help="comma-separated: sync,idle,latency,memory,replay,review,startup,takeover,"
                                           "mailboxes")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    plan = {
        "sync": (bench_initial_sync.main, quick + ["--profile"]),
        "idle": (bench_idle_cycle.main, quick + ["--profile"]),
        "latency": (bench_latency.main, quick),
        "memory": (bench_memory.main, quick),
        "replay": (bench_replay.main, quick + ([] if quick else ["--sizes", "10000,100000", "--timeout", "900"])),
        "review": (bench_review.main, quick),
        "startup": (bench_startup.main, quick),
        "takeover": (bench_takeover.main, quick),  # PostgreSQL: after a SIGKILL
        "mailboxes": (bench_many_mailboxes.main, quick),  # PostgreSQL: 200 mailboxes on one worker
        "pglists": (bench_pg_lists.main, quick),  # PostgreSQL: breaches list and report over 1M breaches
    }
    chosen = args.only.split(",") if args.only else list(plan)
    timings = {}
    for name in chosen:
        function, arguments = plan[name]
        print(f"\n=== {name} {' '.join(arguments)} ===", flush=True)
        started = time.perf_counter()
        function(arguments)
        timings[name] = round(time.perf_counter() - started, 1)
    print("\nseconds per benchmark: " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
