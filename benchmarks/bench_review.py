"""Benchmark 6: `mailesc breaches list` and `mailesc report` over a long history.

Builds a store with N threads and N breaches (half of them archived, a third reviewed), then runs the CLI
the way an admin or a script would (stdout to a pipe) and times each command. The baseline, measured in the
same run, is the least any command must do: start Python and read the same JSON files (`json.load` of the
live store, the review file and every archive line). Prints a table and writes benchmarks/results/review.json.

    python3 benchmarks/bench_review.py [--breaches 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


def timed(command: list[str], repeat: int = 3, code: Path = REPO) -> tuple[float, int]:
    """Best wall time of `repeat` runs of the mailesc in `code`, and the bytes written to stdout."""
    best, size = float("inf"), 0
    env = {**os.environ, "PYTHONPATH": str(code)}
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, check=True, env=env)
        best, size = min(best, time.perf_counter() - started), len(result.stdout)
    return best, size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breaches", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10k breaches")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also time each command with the mailesc of this checkout (e.g. a worktree of the "
                             "previous commit), run by run beside this one")
    args = parser.parse_args(argv)
    if args.quick:
        args.breaches = 10_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        store = build(folder, args.breaches)
        print(f"built a store of {args.breaches} breaches in {time.perf_counter() - started:.1f} s")
        cli = [sys.executable, "-m", "mailesc", "-c", str(config(folder, store))]
        baseline, _ = timed([sys.executable, "-c", BASELINE, str(store)])
        commands = {
            "breaches list (table, piped)": ["breaches", "list"],
            "breaches list --json": ["breaches", "list", "--json"],
            "breaches list --csv": ["breaches", "list", "--csv"],
            "breaches list --unreviewed --since 30d": ["breaches", "list", "--unreviewed", "--since", "30d"],
            "breaches show 1 (archived)": ["breaches", "show", "1"],
            "report": ["report"],
            "report --by week --json": ["report", "--by", "week", "--json"],
            "report --by customer --csv": ["report", "--by", "customer", "--csv"],
        }
        rows = []
        for name, command in commands.items():
            row = {"command": name}
            if args.before:
                before, before_size = timed(cli + command, code=args.before)
                row.update(before_seconds=round(before, 2), before_output_bytes=before_size)
            seconds, size = timed(cli + command)
            row.update(seconds=round(seconds, 2), x_baseline=round(seconds / baseline, 2), output_bytes=size)
            rows.append(row)
    print(f"\nbaseline: python3 + json.load of the same files: {baseline:.2f} s\n")
    print(f"{'command':42} {'before':>8} {'seconds':>8} {'x baseline':>10} {'output':>12}")
    for row in rows:
        print(f"{row['command']:42} {row.get('before_seconds', float('nan')):8.2f} {row['seconds']:8.2f} "
              f"{row['x_baseline']:10.2f} {row['output_bytes']:12,}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "review", "breaches": args.breaches, "baseline_seconds": round(baseline, 2),
              "before": str(args.before) if args.before else None,
              "commands": rows, "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (RESULTS / "review.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {RESULTS / 'review.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
