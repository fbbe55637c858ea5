#!/usr/bin/env python3
"""Benchmark 1: initial sync of a big mailbox from a real Dovecot, against the physical limit measured in the
same run (raw imaplib UID FETCH of INTERNALDATE, RFC822.SIZE and BODY.PEEK[HEADER] in batches of 500, each
header parsed by the stdlib). mailesc runs as `mailesc once` on an empty store (fetch, parse, classify, thread,
evaluate clocks, write the store); the policy's deadlines lie in the future, so no mail is rendered or sent.
The limit runs before and after mailesc (Dovecot and the page cache warm), and the faster one counts.
Also reports the peak RSS of `mailesc once`. Goal: mailesc at least 0.5 of the limit.

    python3 benchmarks/bench_initial_sync.py [--sizes 10000,100000] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

from common import (RESULTS, BenchDovecot, add_size_arguments, chosen_sizes, generate,
                    raw_imaplib_limit, run_mailesc, save, table, write_config)

GOAL = 0.5


def profile_sync(config: Path, box, out: Path) -> None:
    """cProfile of one initial sync in this process (`mailesc once`'s code path), top functions to `out`."""
    from datetime import datetime, timezone

    from mailesc import app
    from mailesc.config import load_config

    os.environ["MAILESC_IMAP_PASSWORD"] = box.password
    setup = app.load_setup(load_config(config))
    profiler = cProfile.Profile()
    profiler.enable()
    app.run_once(setup, datetime.now(timezone.utc))
    profiler.disable()
    with open(out, "w") as handle:
        stats = pstats.Stats(profiler, stream=handle)
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser, "10000,100000")
    parser.add_argument("--profile", action="store_true", help="also cProfile a sync of the largest size")
    args = parser.parse_args(argv)
    sizes = chosen_sizes(args)
    dovecot = BenchDovecot()
    rows = []
    try:
        for size in sizes:
            box, counts, fill = dovecot.mailbox(generate(size, seed=size))
            work = Path(tempfile.mkdtemp(prefix=f"mesc-sync-{size}-"))
            config = write_config(work, box)
            before = raw_imaplib_limit(box)
            ours = run_mailesc(config, box, "once")
            after = raw_imaplib_limit(box)
            limit = max(before["msg_per_s"], after["msg_per_s"])
            rate = size / ours["seconds"]
            store = work / "var" / "mailesc.json"
            rows.append({"messages": size, "inbox": counts["INBOX"], "sent": counts["Sent"],
                         "fill_s": fill["write_s"], "limit_msg_s": limit, "limit_runs_s": [before["seconds"],
                                                                                         after["seconds"]],
                         "mailesc_s": ours["seconds"], "mailesc_msg_s": round(rate, 1),
                         "ratio": round(rate / limit, 3), "goal": GOAL, "meets_goal": rate / limit >= GOAL,
                         "peak_rss_mb": ours["peak_rss_mb"], "store_mb": round(store.stat().st_size / 2**20, 1),
                         "mailesc_said": ours["stdout"].strip()})
            print(table(rows[-1:], ["messages", "limit_msg_s", "mailesc_msg_s", "ratio", "peak_rss_mb"]), flush=True)
            if args.profile and size == sizes[-1]:
                (work / "var" / "mailesc.json").unlink()
                RESULTS.mkdir(parents=True, exist_ok=True)
                out = RESULTS / f"profile_initial_sync_{size}.txt"
                profile_sync(config, box, out)
                print(f"profile: {out}")
    finally:
        dovecot.stop()
    print()
    print(table(rows, ["messages", "inbox", "sent", "limit_msg_s", "mailesc_s", "mailesc_msg_s", "ratio",
                       "meets_goal", "peak_rss_mb", "store_mb"]))
    print(f"\nwritten: {save('initial_sync', {'goal': f'mailesc >= {GOAL} x limit', 'rows': rows})}")
    return 0


if __name__ == "__main__":
    time.sleep(0)
    sys.exit(main())
