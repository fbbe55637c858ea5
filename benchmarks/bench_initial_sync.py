#!/usr/bin/env python3
"""Benchmark 1: initial sync of a big mailbox from a real Dovecot, against the physical limit measured in the
same run (raw imaplib UID FETCH of INTERNALDATE, RFC822.SIZE and BODY.PEEK[HEADER] in batches of 500, each
header parsed by the stdlib). mailesc runs as `mailesc once` on an empty store (fetch, parse, classify, thread,
evaluate clocks, write the store); the policy's deadlines lie in the future, so no mail is rendered or sent.
The limit runs before and after mailesc (Dovecot and the page cache warm), and the faster one counts.
Also reports the peak RSS of `mailesc once`. Goal (issue 13): mailesc at least 0.6 of the limit, with the
realistic mail of common.py and with plain short mail (the same threads, each message only From, To, Subject,
Date, Message-ID, In-Reply-To/References and two lines of text: mailesc's own per-message work weighs more).

    python3 benchmarks/bench_initial_sync.py [--sizes 10000,100000] [--mail realistic,plain] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from common import (RESULTS, BenchDovecot, GeneratedMail, add_size_arguments, chosen_sizes, generate,
                    mailesc_env, raw_imaplib_limit, run_mailesc, save, table, write_config)

GOAL = 0.6
PLAIN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References")


def plain(mails):
    """Each generated mail as plain short mail: its addressing and threading headers and two lines of text."""
    parser = BytesHeaderParser(policy=compat32)
    for mail in mails:
        headers = parser.parsebytes(mail.data)
        head = "".join(f"{name}: {' '.join(str(headers[name]).split())}\r\n" for name in PLAIN_HEADERS
                       if headers[name] is not None)
        yield GeneratedMail(mail.folder, mail.arrived, (head + "\r\nHello,\r\nplease have a look.\r\n").encode())


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


def run_against(checkout: Path, config: Path, box) -> dict:
    """`mailesc once` from another checkout (its own empty store): wall seconds and what it said."""
    started, cpu = time.perf_counter(), _children_cpu()
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), "once"], capture_output=True,
                            text=True, env={**mailesc_env(box), "PYTHONPATH": str(checkout.resolve())},
                            cwd=config.parent)  # not a checkout's folder: `-m` puts the cwd before PYTHONPATH
    if result.returncode not in (0, 69):
        raise RuntimeError(f"{checkout}: mailesc once exited {result.returncode}:\n{result.stderr[-3000:]}")
    return {"seconds": round(time.perf_counter() - started, 3), "cpu_s": round(_children_cpu() - cpu, 2),
            "stdout": result.stdout}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished children: on a shared machine, steadier than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser, "10000,100000")
    parser.add_argument("--mail", default="realistic,plain", help="realistic and/or plain (default both)")
    parser.add_argument("--profile", action="store_true", help="also cProfile a sync of the largest size")
    parser.add_argument("--against", metavar="CHECKOUT", help="also sync with the mailesc of another checkout "
                        "(e.g. main), between the same limit runs: before and after in one run")
    args = parser.parse_args(argv)
    sizes = chosen_sizes(args)
    kinds = args.mail.split(",")
    dovecot = BenchDovecot()
    rows = []
    try:
        for size, kind in ((size, kind) for size in sizes for kind in kinds):
            mails = generate(size, seed=size)
            box, counts, fill = dovecot.mailbox(plain(mails) if kind == "plain" else mails)
            work = Path(tempfile.mkdtemp(prefix=f"mesc-sync-{kind}-{size}-"))
            config = write_config(work, box)
            before = raw_imaplib_limit(box)
            cpu = _children_cpu()
            ours = run_mailesc(config, box, "once")
            ours_cpu = _children_cpu() - cpu
            other = None
            if args.against:
                other = run_against(Path(args.against), write_config(work / "against", box), box)
            after = raw_imaplib_limit(box)
            limit = max(before["msg_per_s"], after["msg_per_s"])
            rate = size / ours["seconds"]
            store = work / "var" / "mailesc.json"
            rows.append({"messages": size, "mail": kind, "inbox": counts["INBOX"], "sent": counts["Sent"],
                         "fill_s": fill["write_s"], "limit_msg_s": limit, "limit_runs_s": [before["seconds"],
                                                                                         after["seconds"]],
                         "mailesc_s": ours["seconds"], "mailesc_cpu_s": round(ours_cpu, 2),
                         "mailesc_msg_s": round(rate, 1),
                         "ratio": round(rate / limit, 3), "goal": GOAL, "meets_goal": rate / limit >= GOAL,
                         "peak_rss_mb": ours["peak_rss_mb"], "store_mb": round(store.stat().st_size / 2**20, 1),
                         "mailesc_said": ours["stdout"].strip()})
            if other:
                rows[-1].update(against=args.against, against_s=other["seconds"], against_cpu_s=other["cpu_s"],
                                against_ratio=round(size / other["seconds"] / limit, 3),
                                against_said=other["stdout"].strip())
            print(table(rows[-1:], ["messages", "mail", "limit_msg_s", "mailesc_msg_s", "ratio", "against_ratio",
                                    "mailesc_cpu_s", "against_cpu_s", "peak_rss_mb"]), flush=True)
            if args.profile and size == sizes[-1]:
                (work / "var" / "mailesc.json").unlink()
                RESULTS.mkdir(parents=True, exist_ok=True)
                out = RESULTS / f"profile_initial_sync_{size}{'_plain' if kind == 'plain' else ''}.txt"
                profile_sync(config, box, out)
                print(f"profile: {out}")
    finally:
        dovecot.stop()
    print()
    print(table(rows, ["messages", "mail", "inbox", "sent", "limit_msg_s", "mailesc_s", "mailesc_msg_s", "ratio",
                       "against_ratio", "mailesc_cpu_s", "against_cpu_s", "meets_goal", "peak_rss_mb", "store_mb"]))
    print(f"\nwritten: {save('initial_sync', {'goal': f'mailesc >= {GOAL} x limit', 'rows': rows})}")
    return 0


if __name__ == "__main__":
    time.sleep(0)
    sys.exit(main())
