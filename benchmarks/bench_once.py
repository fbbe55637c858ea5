#!/usr/bin/env python3
"""Benchmark 8: `mailesc once` with nothing new over a big store (issue 13, goal 3).

Goal: over a 100k-message store, `once` with nothing new takes <= 0.5 s of wall time including start-up, and at
10k no more than 2x the 1k figure. This is what cron pays every few minutes when nothing happened.

For each size a private Dovecot mailbox of generated mail (benchmarks/common.py) is made; a first `once` builds
the store (the initial sync, not timed here), then --runs timed `once` runs follow, each a whole process (stdout
to a pipe, as cron runs it), with nothing new in the mailbox. With --against DIR (another checkout, e.g.
`git worktree add /tmp/main main`) DIR's mailesc gets its own store over the same mailbox and is timed the same
way, run by run interleaved with this checkout's and with the floor (`python3 -c pass`), so that a drift of the
machine's speed hits all alike. Reports median and p95 wall, median CPU (user+sys) and peak RSS.

--profile writes, for the largest size and this checkout, a cProfile of one `once` and `python3 -X importtime`
to benchmarks/results/profile_once_<size>.txt and importtime_once_<size>.txt.

    python3 benchmarks/bench_once.py [--sizes 1000,10000,100000] [--runs 15] [--against /tmp/main] [--profile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (REPO, RESULTS, BenchDovecot, add_size_arguments, chosen_sizes, generate, median, percentile,
                    save, table, write_config)

GOAL_S = 0.5


def env(checkout: Path, box, cache: Path) -> dict:
    """The environment of a run of `checkout`'s mailesc. Byte code is cached (in `cache`, one per checkout) as
    an installed package has it, even where PYTHONDONTWRITEBYTECODE is set: else every run compiles mailesc."""
    environment = {**os.environ, "MAILESC_IMAP_PASSWORD": box.password, "PYTHONPATH": str(checkout),
                   "PYTHONPYCACHEPREFIX": str(cache)}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def once_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, *extra, "-m", "mailesc", "-c", str(config), "once"]


def timed(command: list[str], environment: dict, cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds user+sys, peak RSS MB of this child) of one run, its output thrown away. It
    runs in `cwd`, not in a checkout: `python3 -m` puts the current folder first on the import path."""
    pid = os.fork()
    if pid == 0:  # a child of our own, so that its rusage is its alone
        try:
            os.chdir(cwd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.execve(command[0], command, environment)
        finally:
            os._exit(127)
    started = time.perf_counter()
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} exited {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def first_once(command: list[str], environment: dict, cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=cwd)
    if result.returncode not in (0, 1) or "Traceback" in result.stderr:
        raise RuntimeError(f"the first once exited {result.returncode}:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def profile(config: Path, box, size: int) -> None:
    environment = env(REPO, box, config.parent.parent / "pycache-this")
    out = RESULTS / f"profile_once_{size}.txt"
    stats = RESULTS / f"profile_once_{size}.pstats"
    subprocess.run(once_command(config, "-m", "cProfile", "-o", str(stats)), env=environment, capture_output=True,
                   cwd=config.parent)
    import pstats

    with open(out, "w") as handle:
        pstats.Stats(str(stats), stream=handle).sort_stats("cumulative").print_stats(45)
        pstats.Stats(str(stats), stream=handle).sort_stats("tottime").print_stats(30)
    stats.unlink(missing_ok=True)
    result = subprocess.run(once_command(config, "-X", "importtime"), env=environment, capture_output=True,
                            text=True, cwd=config.parent)
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    top = sorted(lines[1:], key=lambda line: -int(line.split("|")[1]))[:40]
    (RESULTS / f"importtime_once_{size}.txt").write_text("\n".join(lines[:1] + top) + "\n")
    print(f"profile written to {out}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser, "1000,10000,100000")
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each (after one untimed warm-up)")
    parser.add_argument("--against", type=Path, help="another checkout of mailesc to time the same way (before)")
    parser.add_argument("--profile", action="store_true", help="cProfile and -X importtime of the largest size")
    args = parser.parse_args(argv)
    sizes = chosen_sizes(args)
    checkouts = {"this": REPO, **({"against": args.against.resolve()} if args.against else {})}
    dovecot = BenchDovecot()
    rows, load = [], []
    try:
        work = Path(tempfile.mkdtemp(prefix="mesc-once-"))
        for size in sizes:
            box, _counts, _fill = dovecot.mailbox(generate(size, seed=size, open_share=0.2))
            cases = {"floor": ([sys.executable, "-c", "pass"], {**os.environ}, work)}
            first = {}
            for label, checkout in checkouts.items():
                config = write_config(work / f"{size}-{label}", box)
                cases[label] = (once_command(config), env(checkout, box, work / f"pycache-{label}"), config.parent)
                first[label] = first_once(*cases[label])
            samples = {label: [] for label in cases}
            load.append(os.getloadavg()[0])
            for run in range(args.runs + 1):
                for label, (command, environment, cwd) in cases.items():
                    measured = timed(command, environment, cwd)
                    if run:
                        samples[label].append(measured)
            load.append(os.getloadavg()[0])
            for label, measured in samples.items():
                walls = [m[0] for m in measured]
                store = work / f"{size}-{label}" / "var" / "mailesc.json"
                rows.append({"messages": size, "code": label, "wall_median_s": round(median(walls), 3),
                             "wall_p95_s": round(percentile(walls, 0.95), 3),
                             "cpu_median_s": round(median([m[1] for m in measured]), 3),
                             "peak_rss_mb": round(max(m[2] for m in measured), 1),
                             "first_once_s": round(first[label], 1) if label in first else None,
                             "store_mb": round(store.stat().st_size / 1e6, 1) if store.exists() else None})
            print(table(rows[-len(samples):], list(rows[0])), flush=True)
            if args.profile and size == max(sizes):
                profile(work / f"{size}-this" / "mailesc.toml", box, size)
    finally:
        dovecot.stop()
    print(f"\nmedian of {args.runs} runs each, interleaved; 'this' is {REPO}"
          + (f", 'against' is {checkouts['against']}" if args.against else "")
          + f"; load average {min(load):.1f}-{max(load):.1f}\n")
    print(table(rows, list(rows[0])))
    by = {(row["messages"], row["code"]): row["wall_median_s"] for row in rows}
    for label in checkouts:
        if (1000, label) in by and (10000, label) in by:
            print(f"{label}: 10k/1k = {by[(10000, label)] / by[(1000, label)]:.2f} (goal <= 2)")
        if (100000, label) in by:
            print(f"{label}: 100k median {by[(100000, label)]:.3f} s (goal <= {GOAL_S} s)")
    path = save("once", {"runs": args.runs, "checkouts": {k: str(v) for k, v in checkouts.items()},
                         "load_average": load, "rows": rows})
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
