#!/usr/bin/env python3
"""Soak: SIGKILL `mailesc run` at random points N times (default 200) while mail flows, then check that every
due escalation was delivered, none twice under different Message-IDs, and that the store loads.

The scenario is mailesc/testing/soak.py (the same as tests/integration/test_crash_safety.py, which runs
50 rounds in CI). This script starts its own private Dovecot and aiosmtpd sink (mailesc.testing),
prints a table and writes the numbers to benchmarks/results/soak_kill.json.

    python3 benchmarks/soak_kill.py [--rounds 200] [--seed N] [--aim 0.5] [--live] [--keep]
    python3 benchmarks/soak_kill.py --store postgresql --workers 3 [--mailboxes 6] [--rounds 100]

With `--store postgresql` the store is a throwaway PostgreSQL cluster (mailesc.testing.postgres) and `--workers`
`mailesc run` workers share `--mailboxes` IMAP mailboxes through leases (mailesc/testing/workers_soak.py): each
round SIGKILLs one worker and starts another in its place; the numbers go to
benchmarks/results/soak_kill_postgresql.json.

The daemons import a snapshot of mailesc/ taken at the start (so that all rounds test the same code even while
someone edits the tree); --live imports the working tree in every round instead.

Exit status 0 when the promise held, 1 when it did not (the problems are printed, the work folder is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from mailesc.testing import DovecotServer, SmtpSink, find_dovecot
from mailesc.testing.soak import CrashSoak, report, table

RESULTS = REPO / "benchmarks" / "results" / "soak_kill.json"
RESULTS_POSTGRESQL = REPO / "benchmarks" / "results" / "soak_kill_postgresql.json"


def snapshot(target: Path) -> Path:
    """Copy mailesc/ into `target` and check that it imports (a tree caught mid-edit is copied again)."""
    for attempt in range(10):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(REPO / "mailesc", target / "mailesc", ignore=shutil.ignore_patterns("__pycache__"))
        check = subprocess.run([sys.executable, "-c", "import mailesc.cli"], cwd=target, capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(target)})
        if check.returncode == 0:
            return target
        time.sleep(2)
    raise SystemExit(f"mailesc/ does not import, not even after 20 s:\n{check.stderr}")


def code_version() -> dict:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes_in_mailesc": bool(git("status", "--porcelain",
                                                                                          "--", "mailesc"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="kill rounds (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--aim", type=float, default=0.5,
                        help="share of rounds whose kill is aimed just after a deadline (default 0.5; 0: all uniform)")
    parser.add_argument("--final-timeout", type=float, default=120.0,
                        help="seconds the last daemon may take to deliver everything due (default 120)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, store) even on success")
    parser.add_argument("--live", action="store_true",
                        help="daemons import the working tree in every round, not a snapshot taken at the start")
    parser.add_argument("--store", choices=("file", "postgresql"), default="file",
                        help="the embedded file store and one daemon (default), or PostgreSQL and --workers workers")
    parser.add_argument("--workers", type=int, default=None,
                        help="workers sharing the mailboxes (PostgreSQL only; default 3 there, 1 with the file)")
    parser.add_argument("--mailboxes", type=int, default=6, help="IMAP mailboxes the workers share (default 6)")
    parser.add_argument("--results", type=Path, default=None,
                        help=f"JSON output (default {RESULTS}, or {RESULTS_POSTGRESQL} with --store postgresql)")
    args = parser.parse_args(argv)
    postgresql = args.store == "postgresql"
    workers = args.workers if args.workers is not None else (3 if postgresql else 1)
    if not postgresql and workers != 1:
        parser.error("--workers needs --store postgresql: the file store is worked by one daemon")
    if workers < 1 or args.mailboxes < 1:
        parser.error("--workers and --mailboxes must be at least 1")
    results = args.results or (RESULTS_POSTGRESQL if postgresql else RESULTS)
    if find_dovecot() is None:
        print("dovecot-imapd is not installed: apt-get install dovecot-imapd", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"soak_kill: seed={seed} rounds={args.rounds} aim={args.aim} store={args.store}"
          + (f" workers={workers} mailboxes={args.mailboxes}" if postgresql else ""), flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="mailesc-soak-kill-"))
    version = code_version()
    code = None if args.live else snapshot(workdir / "code")
    dovecot, sink, outcome, cluster = DovecotServer(), SmtpSink(), None, None
    began = time.monotonic()
    try:
        dovecot.start()
        sink.start()
        say = lambda line: print(line, flush=True)  # noqa: E731
        if postgresql:
            from mailesc.testing.postgres import PostgresCluster
            from mailesc.testing.workers_soak import WorkersCrashSoak, shared_password_mailboxes

            cluster = PostgresCluster().start()
            boxes = shared_password_mailboxes(dovecot, args.mailboxes, f"wsoak{seed}", f"pw-{seed}-soak")
            soak = WorkersCrashSoak(workdir, boxes, sink, cluster.new_database("soak"), seed=seed,
                                    rounds=args.rounds, workers=workers, aim=args.aim,
                                    final_timeout=args.final_timeout, pythonpath=code, say=say)
        else:
            soak = CrashSoak(workdir, dovecot.new_mailbox("soak"), sink, seed=seed, rounds=args.rounds,
                             aim=args.aim, final_timeout=args.final_timeout, pythonpath=code, say=say)
        try:
            outcome = soak.run()
        finally:
            soak.kill_leftover()
    finally:
        sink.stop()
        dovecot.cleanup()
        if cluster is not None:
            cluster.cleanup()

    summary = outcome.summary()
    summary["wall_seconds"] = round(time.monotonic() - began, 1)
    summary["aim"] = args.aim
    summary["code"] = {**version, "snapshot": not args.live}
    summary["duplicated_message_ids"] = outcome.duplicated_ids
    summary["problems"] = outcome.problems()
    print()
    print(table(summary))
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten: {results}")
    if outcome.problems():
        print("\n" + report(outcome, workdir))
        print(f"work folder kept: {workdir}")
        return 1
    if args.keep:
        print(f"work folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
