#!/usr/bin/env python3
"""Benchmark 2: what one idle wake-up of the daemon costs when no new mail came, at a small and a big mailbox.

After an initial sync (in this process), the same Engine runs cycles with nothing new, as `mailesc run` does
after each wake-up: Engine.cycle(now) (poll every folder, evaluate every clock, flush) and then
Engine.next_deadline(now) (for the next sleep). The IMAP part (source.poll alone) is timed separately.
Goal: the idle wake-up at the big mailbox costs at most 1.2x the small one.

    python3 benchmarks/bench_idle_cycle.py [--sizes 1000,100000] [--quick] [--rounds 15] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import (RESULTS, BenchDovecot, add_size_arguments, chosen_sizes, generate, save, table,
                    write_config)

GOAL = 1.2


def measure(config: Path, box, rounds: int, profile_to: Path | None) -> dict:
    from mailesc import app
    from mailesc.config import load_config
    from mailesc.sources import open_source, poll_into
    from mailesc.store import Store
    from mailesc.transports import open_transport

    os.environ["MAILESC_IMAP_PASSWORD"] = box.password
    setup = app.load_setup(load_config(config))
    source = open_source(setup.config.mailbox)
    try:
        with Store(setup.config.store_path) as store:
            engine = app.build_engine(setup, store, source, open_transport(setup.config.smtp))
            started = time.perf_counter()
            engine.cycle(datetime.now(timezone.utc))
            sync_s = time.perf_counter() - started
            polls, cycles, deadlines, wakes = [], [], [], []
            for _ in range(rounds):  # timed without the profiler, which would slow the profiled size alone
                now = datetime.now(timezone.utc)
                t0 = time.perf_counter()
                report = engine.cycle(now)
                t1 = time.perf_counter()
                engine.next_deadline(datetime.now(timezone.utc))
                t2 = time.perf_counter()
                assert report.fetched == 0, "mail arrived during the idle benchmark"
                t3 = time.perf_counter()
                poll_into(source, store.sync)
                polls.append(time.perf_counter() - t3)
                cycles.append(t1 - t0)
                deadlines.append(t2 - t1)
                wakes.append(t2 - t0)
            if profile_to:
                profiler = cProfile.Profile()
                for _ in range(rounds):
                    profiler.runcall(engine.cycle, datetime.now(timezone.utc))
                with open(profile_to, "w") as handle:
                    stats = pstats.Stats(profiler, stream=handle)
                    stats.sort_stats("cumulative").print_stats(30)
                    stats.sort_stats("tottime").print_stats(20)
            clocked = sum(1 for t in store.threads.values() if t.due_at is not None)
            return {"threads": len(store.threads), "clocked_threads": clocked, "sync_s": round(sync_s, 2),
                    "imap_poll_ms": round(statistics.median(polls) * 1000, 2),
                    "cycle_ms": round(statistics.median(cycles) * 1000, 2),
                    "next_deadline_ms": round(statistics.median(deadlines) * 1000, 2),
                    "wake_ms": round(statistics.median(wakes) * 1000, 2),
                    "wake_max_ms": round(max(wakes) * 1000, 2)}
    finally:
        source.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser, "1000,100000")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="cProfile the idle wake-ups of the largest size")
    args = parser.parse_args(argv)
    sizes = chosen_sizes(args)
    dovecot = BenchDovecot()
    rows = []
    try:
        for size in sizes:
            box, _counts, _fill = dovecot.mailbox(generate(size, seed=size))
            config = write_config(Path(tempfile.mkdtemp(prefix=f"mesc-idle-{size}-")), box)
            profile_to = RESULTS / f"profile_idle_cycle_{size}.txt" if args.profile and size == sizes[-1] else None
            RESULTS.mkdir(parents=True, exist_ok=True)
            rows.append({"messages": size, **measure(config, box, args.rounds, profile_to)})
            print(table(rows[-1:], list(rows[-1])), flush=True)
    finally:
        dovecot.stop()
    small, big = rows[0], rows[-1]
    ratios = {key: round(big[key] / small[key], 2) if small[key] else None
              for key in ("imap_poll_ms", "cycle_ms", "next_deadline_ms", "wake_ms")}
    print()
    print(table(rows, list(rows[0])))
    print(f"\nratio {big['messages']:,} / {small['messages']:,} messages: " +
          ", ".join(f"{k} {v}x" for k, v in ratios.items()) + f"  (goal: wake_ms <= {GOAL}x)")
    path = save("idle_cycle", {"goal": f"idle wake-up at the big mailbox <= {GOAL} x the small one", "rows": rows,
                               "ratios": ratios, "meets_goal": (ratios["wake_ms"] or 0) <= GOAL})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
