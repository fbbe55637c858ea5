#!/usr/bin/env python3
"""Benchmark 5: `mailesc replay` of a big mbox, against parsing the same mbox with the stdlib alone
(mailbox.mbox, each message's bytes and From_ line, headers parsed with BytesHeaderParser/compat32).

A replay that does not finish within --timeout seconds is stopped and reported as such, with the rate the
smaller sizes reached.

With --against CHECKOUT the same mbox is also replayed by another checkout's mailesc (e.g. main): before and
after in one run, their summaries compared. CPU seconds (user + system of the child; process time of the stdlib
parse) are reported beside wall seconds: on a shared machine they say more than the wall clock.
Goal (issue 13): 2,000 msg/s at 100k, linear in size.

    python3 benchmarks/bench_replay.py [--sizes 10000,100000] [--quick] [--timeout 300] [--against CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import mailbox
import resource
import subprocess
import sys
import tempfile
import time
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from common import add_size_arguments, chosen_sizes, REPO, generate, save, table

CONFIG = """[mailbox]
kind = "maildir"
path = "Maildir"
[smtp]
kind = "outbox"
path = "outbox"
from = "Escalations <escalations@example.test>"
[team]
addresses = ["*@example.test"]
[store]
path = "var/mailesc.json"
[policies]
path = "{policies}"
[templates]
path = "{templates}"
"""


def write_mbox(path: Path, count: int) -> float:
    started = time.perf_counter()
    with open(path, "wb") as handle:
        for mail in sorted(generate(count, seed=count), key=lambda m: m.arrived):
            stamp = mail.arrived.strftime("%a %b %d %H:%M:%S %Y")
            data = mail.data.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
            handle.write(b"From bench@example.test " + stamp.encode() + b"\n" + data.rstrip(b"\n") + b"\n\n")
    return time.perf_counter() - started


def stdlib_parse(path: Path) -> dict:
    parser = BytesHeaderParser(policy=compat32)
    started, cpu = time.perf_counter(), time.process_time()
    box = mailbox.mbox(path, factory=None, create=False)
    count = 0
    for key in box.iterkeys():
        data = box.get_bytes(key, from_=False)
        box.get_file(key, from_=True).readline()
        parser.parsebytes(data)
        count += 1
    box.close()
    seconds = time.perf_counter() - started
    return {"messages": count, "seconds": round(seconds, 2), "msg_per_s": round(count / seconds, 1),
            "cpu_s": round(time.process_time() - cpu, 2)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def replay(work: Path, mbox: Path, timeout: float, checkout: Path = REPO) -> dict:
    """`mailesc replay` of `mbox` by the mailesc of `checkout`, with the repository's policies and templates."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "mailesc.toml").write_text(CONFIG.format(policies=REPO / "policies", templates=REPO / "templates"))
    started, cpu = time.perf_counter(), _children_cpu()
    try:
        result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(work / "mailesc.toml"), "replay",
                                 str(mbox), "--json"], capture_output=True, text=True, timeout=timeout,
                                env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"},
                                cwd=work)  # not a checkout's folder: `-m` puts the cwd before PYTHONPATH
    except subprocess.TimeoutExpired:
        return {"seconds": None, "timed_out_after_s": timeout}
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    summary = json.loads(result.stdout)
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "summary": {
        key: value for key, value in summary.items() if key not in ("store", "outbox")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser, "10000,100000")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--against", metavar="CHECKOUT", help="also replay with the mailesc of another checkout")
    args = parser.parse_args(argv)
    sizes = chosen_sizes(args)
    rows = []
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"mesc-replay-{size}-"))
        mbox = work / "inbox.mbox"
        write_mbox(mbox, size)
        baseline = stdlib_parse(mbox)
        ours = replay(work, mbox, args.timeout)
        rate = size / ours["seconds"] if ours["seconds"] else None
        summary = ours.get("summary") or {}
        rows.append({"messages": size, "mbox_mb": round(mbox.stat().st_size / 2**20, 1),
                     "stdlib_msg_s": baseline["msg_per_s"], "stdlib_cpu_s": baseline["cpu_s"],
                     "replay_s": ours["seconds"], "replay_cpu_s": ours.get("cpu_s"),
                     "replay_msg_s": round(rate, 1) if rate else None,
                     "replay_msg_per_cpu_s": round(size / ours["cpu_s"], 1) if ours.get("cpu_s") else None,
                     "ratio": round(rate / baseline["msg_per_s"], 3) if rate else None,
                     "timed_out_after_s": ours.get("timed_out_after_s"), "threads": summary.get("threads"),
                     "breaches": summary.get("breaches"), "mails": summary.get("mails")})
        if args.against:
            other = replay(work / "against", mbox, args.timeout, Path(args.against).resolve())
            rows[-1].update(against=args.against, against_s=other["seconds"], against_cpu_s=other.get("cpu_s"),
                            against_msg_s=round(size / other["seconds"], 1) if other["seconds"] else None,
                            same_summary=other.get("summary") == summary if other["seconds"] else None)
        print(table(rows[-1:], list(rows[-1])), flush=True)
    print()
    print(table(rows, ["messages", "mbox_mb", "stdlib_msg_s", "replay_s", "replay_cpu_s", "replay_msg_s",
                       "replay_msg_per_cpu_s", "ratio", "against_s", "against_cpu_s", "same_summary",
                       "timed_out_after_s", "breaches", "mails"]))
    print(f"written: {save('replay', {'policies': 'policies/ of the repository', 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
