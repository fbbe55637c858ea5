#!/usr/bin/env python3
"""Benchmark 5: `mailesc replay` of a big mbox, against parsing the same mbox with the stdlib alone
(mailbox.mbox, each message's bytes and From_ line, headers parsed with BytesHeaderParser/compat32).

A replay that does not finish within --timeout seconds is stopped and reported as such, with the rate the
smaller sizes reached.

    python3 benchmarks/bench_replay.py [--sizes 10000,100000] [--quick] [--timeout 300]
"""

from __future__ import annotations

import argparse
import json
import mailbox
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
    started = time.perf_counter()
    box = mailbox.mbox(path, factory=None, create=False)
    count = 0
    for key in box.iterkeys():
        data = box.get_bytes(key, from_=False)
        box.get_file(key, from_=True).readline()
        parser.parsebytes(data)
        count += 1
    box.close()
    seconds = time.perf_counter() - started
    return {"messages": count, "seconds": round(seconds, 2), "msg_per_s": round(count / seconds, 1)}


def replay(work: Path, mbox: Path, timeout: float) -> dict:
    (work / "mailesc.toml").write_text(CONFIG.format(policies=REPO / "policies", templates=REPO / "templates"))
    started = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(work / "mailesc.toml"), "replay",
                                 str(mbox), "--json"], capture_output=True, text=True, timeout=timeout,
                                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        return {"seconds": None, "timed_out_after_s": timeout}
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    summary = json.loads(result.stdout)
    return {"seconds": round(seconds, 2), "threads": summary.get("threads"), "breaches": summary.get("breaches"),
            "mails": summary.get("mails")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser, "10000,100000")
    parser.add_argument("--timeout", type=float, default=300)
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
        rows.append({"messages": size, "mbox_mb": round(mbox.stat().st_size / 2**20, 1),
                     "stdlib_msg_s": baseline["msg_per_s"], "replay_s": ours["seconds"],
                     "replay_msg_s": round(rate, 1) if rate else None,
                     "ratio": round(rate / baseline["msg_per_s"], 3) if rate else None,
                     "timed_out_after_s": ours.get("timed_out_after_s"), "threads": ours.get("threads"),
                     "breaches": ours.get("breaches"), "mails": ours.get("mails")})
        print(table(rows[-1:], list(rows[-1])), flush=True)
    print()
    print(table(rows, ["messages", "mbox_mb", "stdlib_msg_s", "replay_s", "replay_msg_s", "ratio",
                       "timed_out_after_s", "breaches", "mails"]))
    print(f"written: {save('replay', {'policies': 'policies/ of the repository', 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
