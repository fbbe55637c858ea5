"""Benchmark 7: start-up, the wait before any command does its work (issue 13, goal 3, the start-up part).

Times whole processes, the way cron or a shell runs them (stdout to a pipe): `mailesc --help`, `status --json`,
`breaches list --json` and `once` with nothing new, over a small Maildir store (a few threads, one breach).
The floor, measured in the same run and interleaved with the commands (run 1 of every command, then run 2, ...,
so a drift of the machine's speed hits all alike): `python3 -c pass` and `python3 -c "import email.parser"`,
the least any mail tool in Python pays. Reports the median wall and CPU (user+sys) seconds of each, and which of
the heavy libraries (matplotlib, rich, mail-parser, holidays, jinja2) each command loaded.

With --against DIR (another checkout, e.g. `git worktree add /tmp/main main`) each mailesc command also runs
with DIR's mailesc, interleaved the same way: before and after in one run.

    python3 benchmarks/bench_startup.py [--runs 15] [--against /tmp/main]
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import REPO, machine, save, table
from mailesc.testing.configs import MAILDIR, ONE_HOUR_RULE, OUTBOX, write_config
from mailesc.testing.mail import deliver, make_mail

HEAVY = ("matplotlib", "rich", "mailparser", "holidays", "jinja2")
FLOOR = {"python3 -c pass": ["-c", "pass"], "python3 -c 'import email.parser'": ["-c", "import email.parser"]}
COMMANDS = {"--help": ["--help"], "status --json": ["status", "--json"],
            "breaches list --json": ["breaches", "list", "--json"], "once (nothing new)": ["once"]}
# The same command in-process, then the heavy libraries it left in sys.modules (a separate, untimed run).
PROBE = """
import contextlib, io, sys
from mailesc.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(",".join(m for m in %r if m in sys.modules) or "-")
""" % (HEAVY,)


def small_store(folder: Path) -> Path:
    """A Maildir config with a few threads (one answered, one breached and escalated) and its store, after one
    cycle: a further `once` finds nothing new."""
    config = write_config(folder, mailbox=MAILDIR, smtp=OUTBOX, rules=ONE_HOUR_RULE)
    inbox = mailbox.Maildir(folder / "Maildir", create=True)
    sent = inbox.add_folder("Sent")
    now = datetime.now(timezone.utc)
    for number in range(5):
        arrived = now - timedelta(hours=3, minutes=number)
        raw, message_id = make_mail(sender=f"customer{number}@customer.example", subject=f"Case {number}",
                                    date=arrived)
        deliver(inbox, raw, arrived)
        if number:  # the first stays unanswered: one breach, one escalation in the outbox
            reply, _ = make_mail(sender="agent@example.test", to=f"customer{number}@customer.example",
                                 subject=f"Re: Case {number}", in_reply_to=message_id, references=[message_id],
                                 date=arrived + timedelta(minutes=20))
            deliver(sent, reply, arrived + timedelta(minutes=20))
    mailesc(REPO, config, ["once"])
    return config


def mailesc(checkout: Path, config: Path, argv: list[str]) -> list[str]:
    """The command line of `mailesc -c CONFIG ARGV` run from `checkout` (PYTHONPATH picks it)."""
    command = [sys.executable, "-m", "mailesc", *(["-c", str(config)] if argv != ["--help"] else []), *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=_env(checkout), cwd=config.parent)
    if result.returncode not in (0, 1, 69) or "Traceback" in result.stderr:
        raise RuntimeError(f"mailesc {' '.join(argv)} ({checkout}) exited {result.returncode}:\n{result.stderr}")
    return command


def _env(checkout: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def timed(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one run of `command`, its output read and thrown away."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def loaded(checkout: Path, config: Path, argv: list[str]) -> str:
    args = (["-c", str(config)] if argv != ["--help"] else []) + argv
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                            env=_env(checkout), cwd=config.parent)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else f"(exit {result.returncode})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="counted runs of each command (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="7 runs")
    parser.add_argument("--against", type=Path, help="another checkout of mailesc to time the same way (before)")
    args = parser.parse_args(argv)
    runs = 7 if args.quick else args.runs
    checkouts = {"this": REPO, **({"against": args.against.resolve()} if args.against else {})}
    with tempfile.TemporaryDirectory() as tmp:
        config = small_store(Path(tmp))
        cases = {(name, "floor"): ([sys.executable, *argv], REPO) for name, argv in FLOOR.items()}
        for name, argv in COMMANDS.items():
            for label, checkout in checkouts.items():
                cases[(name, label)] = (mailesc(checkout, config, argv), checkout)
        walls = {case: [] for case in cases}
        cpus = {case: [] for case in cases}
        for run in range(runs + 1):  # run 0 warms the file cache and is not counted
            for case, (command, checkout) in cases.items():
                wall, cpu = timed(command, _env(checkout), config.parent)
                if run:
                    walls[case].append(wall)
                    cpus[case].append(cpu)
        floor = statistics.median(walls[("python3 -c pass", "floor")])
        rows = []
        for (name, label), (command, checkout) in cases.items():
            wall = statistics.median(walls[(name, label)])
            rows.append({"command": name, "code": label, "wall_s": round(wall, 3),
                         "cpu_s": round(statistics.median(cpus[(name, label)]), 3),
                         "x_python": round(wall / floor, 2),
                         "heavy_loaded": "" if label == "floor" else loaded(checkout, config, COMMANDS[name])})
    print(f"median of {runs} runs each, interleaved; 'this' is {REPO}"
          + (f", 'against' is {checkouts['against']}" if args.against else "") + "\n")
    print(table(rows, ["command", "code", "wall_s", "cpu_s", "x_python", "heavy_loaded"]))
    path = save("startup", {"runs": runs, "checkouts": {k: str(v) for k, v in checkouts.items()}, "rows": rows})
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
