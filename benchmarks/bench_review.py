"""Benchmark 6: `mailesc breaches list` and `mailesc report` over a long history.

Builds a store with N threads and N breaches (half of them archived, a third reviewed), then runs the CLI
the way an admin or a script would (stdout to a pipe) and times each command. The baseline, measured in the
same run, is the least any command must do: start Python and read the same JSON files (`json.load` of the
live store, the review file and every archive line). Prints a table and writes benchmarks/results/review.json.

    python3 benchmarks/bench_review.py [--breaches 100000] [--against CHECKOUT] [--keep DIR] [--runs 3]

Each command's wall and CPU time (user+sys: the steadier figure on a shared machine) is the best of `--runs`,
the checkouts interleaved run by run; with --against, the outputs of both must be byte for byte the same (but
for the moment a report was made), else the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from mailesc import sla
from mailesc.model import Kind, Thread, ThreadMessage
from mailesc.reviews import ReviewEntry, reviews_path
from mailesc.store import AtomicJSONStorage, Store
from tinydb import TinyDB

RESULTS = REPO / "benchmarks" / "results"
START = datetime(2025, 1, 6, 8, tzinfo=timezone.utc)
POLICIES = ("default", "vip", "enterprise")
CAUSES = ("staffing", "misrouted", "waiting-on-third-party", "policy-too-tight", "tooling", "other")


def build(folder: Path, count: int) -> Path:
    """A store of `count` breached threads over two years; the older half archived, a third reviewed."""
    rng = random.Random(6)
    path = folder / "var" / "mailesc.json"
    with Store(path) as store:
        threads = []
        for number in range(count):
            received = START + timedelta(minutes=number * 7 + rng.randrange(7))
            customer = f"customer{rng.randrange(count // 20 + 1)}@{rng.choice(('acme', 'shop', 'uni'))}.example"
            reply = received + timedelta(hours=rng.uniform(4, 30))
            thread = Thread(id=f"<t{number}@bench>", subject=f"case {number}", ids={f"<t{number}@bench>"},
                            policy=rng.choice(POLICIES), due_at=received + timedelta(hours=4), messages=[
                                ThreadMessage(key=f"c{number}", folder="INBOX", message_id=f"<t{number}@bench>",
                                              kind=Kind.CUSTOMER, sender=customer, arrived=received),
                                ThreadMessage(key=f"r{number}", folder="Sent", message_id=f"<r{number}@bench>",
                                              kind=Kind.TEAM, sender="agent@support.example", arrived=reply)])
            breach = store.new_breach(thread=thread.id, customer=customer, subject=thread.subject,
                                      policy=thread.policy, received_at=received, due_at=thread.due_at)
            breach.status, breach.responded_at = "responded_late", reply
            thread.response_hours = sla.response_hours(thread, None)  # as the engine keeps it (calendar "always")
            thread.breach_ids[0] = breach.id
            store.put_thread(thread)
            threads.append(thread)
        store.flush()
        store.archive(threads[: count // 2])
        store.flush()
    reviews = TinyDB(str(reviews_path(path)), storage=AtomicJSONStorage)
    reviews.table("reviews").insert_multiple(
        ReviewEntry(breach=i, at=START, by="admin", action="review", cause=rng.choice(CAUSES)).as_json()
        for i in range(1, count + 1, 3))
    return path


def config(folder: Path, store: Path) -> Path:
    policies = folder / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "rules.toml").write_text("".join(
        f'[[rule]]\nname = "{name}"\nfirst_response = "4h"\n[[rule.escalate]]\nafter = "0m"\nto = ["m@x.example"]\n\n'
        for name in POLICIES))
    path = folder / "mailesc.toml"
    path.write_text(f'[store]\npath = "{store}"\n[policies]\npath = "{policies}"\n'
                    f'[templates]\npath = "{REPO / "templates"}"\n')
    return path


BASELINE = """
import json, pathlib, sys
store = pathlib.Path(sys.argv[1])
json.loads(store.read_text())
json.loads(store.with_name(store.stem + "-reviews.json").read_text())
for f in store.with_name(store.stem + "-archive").glob("*.jsonl"):
    for line in f.open():
        json.loads(line)
"""

COMMANDS = {
    "breaches list (table, piped)": ["breaches", "list"],
    "breaches list --json": ["breaches", "list", "--json"],
    "breaches list --csv": ["breaches", "list", "--csv"],
    "breaches list --unreviewed --since 30d": ["breaches", "list", "--unreviewed", "--since", "30d"],
    "breaches show 1 (archived)": ["breaches", "show", "1"],
    "report": ["report"],
    "report --by week --json": ["report", "--by", "week", "--json"],
    "report --by customer --csv": ["report", "--by", "customer", "--csv"],
}


def timed(command: list[str], code: Path, cwd: Path) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds user+sys, stdout) of one run of `command` with the mailesc in `code`. It runs
    in `cwd`, a folder without a mailesc in it: `python3 -m` puts the working folder before PYTHONPATH."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, check=True, env={**os.environ, "PYTHONPATH": str(code)},
                            cwd=cwd)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), result.stdout


def comparable(output: bytes) -> bytes:
    """An output without the moment it was made (a report's generated_at, its table title's end): what must be
    byte for byte the same from both checkouts."""
    output = re.sub(rb'\n *"generated_at": "[^"]*",', b"", output)
    return re.sub(rb"^(Threads opened from .* to ).*$", rb"\1(now)", output, flags=re.MULTILINE)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breaches", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10k breaches")
    parser.add_argument("--runs", type=int, default=3, help="counted runs of each command (the best is kept)")
    parser.add_argument("--against", "--before", type=Path, metavar="CHECKOUT", dest="against",
                        help="also time each command with the mailesc of this checkout (e.g. a worktree of main), "
                             "run by run beside this one, and compare their outputs byte for byte")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the store in DIR and keep it; a store already built there is used as it is")
    args = parser.parse_args(argv)
    if args.quick:
        args.breaches = 10_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        store = folder / "var" / "mailesc.json"
        if not store.exists():
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            build(folder, args.breaches)
            print(f"built a store of {args.breaches} breaches in {time.perf_counter() - started:.1f} s")
        cli = [sys.executable, "-m", "mailesc", "-c", str(config(folder, store))]
        cwd = Path(tmp)
        checkouts = {"this": REPO, **({"against": args.against.resolve()} if args.against else {})}
        cases = {("python3 -c pass", "floor"): [sys.executable, "-c", "pass"],
                 ("json.load of the same files", "floor"): [sys.executable, "-c", BASELINE, str(store)]}
        for name, command in COMMANDS.items():
            for label in checkouts:
                cases[(name, label)] = cli + command
        walls: dict[tuple, list[float]] = {case: [] for case in cases}
        cpus: dict[tuple, list[float]] = {case: [] for case in cases}
        outputs: dict[tuple, bytes] = {}
        for run in range(args.runs + 1):  # run 0 warms the file cache and is not counted
            for case, command in cases.items():
                wall, cpu, out = timed(command, checkouts.get(case[1], REPO), cwd)
                outputs[case] = out
                if run:
                    walls[case].append(wall)
                    cpus[case].append(cpu)
    baseline = min(walls[("json.load of the same files", "floor")])
    rows = []
    for (name, label), command in cases.items():
        row = {"command": name, "code": label, "wall_s": round(min(walls[(name, label)]), 2),
               "cpu_s": round(min(cpus[(name, label)]), 2),
               "x_baseline": round(min(walls[(name, label)]) / baseline, 2),
               "output_bytes": len(outputs[(name, label)])}
        if label == "this" and args.against:
            row["same_output"] = comparable(outputs[(name, label)]) == comparable(outputs[(name, "against")])
        rows.append(row)
    print(f"best of {args.runs} runs each, interleaved, {args.breaches} breaches; 'this' is {REPO}"
          + (f", 'against' is {checkouts['against']}" if args.against else "") + "\n")
    print(f"{'command':42} {'code':8} {'wall s':>7} {'cpu s':>7} {'x json':>7} {'output':>12} same")
    for row in rows:
        print(f"{row['command']:42} {row['code']:8} {row['wall_s']:7.2f} {row['cpu_s']:7.2f} {row['x_baseline']:7.2f} "
              f"{row['output_bytes']:12,} {row.get('same_output', '')}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "review", "breaches": args.breaches, "runs": args.runs,
              "baseline_seconds": round(baseline, 2), "load_average": os.getloadavg(),
              "checkouts": {k: str(v) for k, v in checkouts.items()}, "commands": rows,
              "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (RESULTS / "review.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {RESULTS / 'review.json'}")
    return 0 if all(row.get("same_output", True) for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
