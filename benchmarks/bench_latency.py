#!/usr/bin/env python3
"""Benchmark 3: latency of the real daemon (`mailesc run`, poll_seconds = 60, so IDLE does the work).

A mailbox of --background messages is synced first; then --samples customer messages are APPENDed one by one
(a new thread each, subject matched by a 5-second rule). Measured per message:
  * tracked: from the APPEND's OK to the daemon's log line saying it took the new message (store written);
  * escalated: from the deadline (INTERNALDATE, whole seconds, + 5 s) to the SMTP sink accepting the mail.
Goal: p95 <= 1 s for both.

    python3 benchmarks/bench_latency.py [--background 10000] [--samples 30] [--quick]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from common import (BenchDovecot, stop_daemon, SmtpSink, generate, mailesc_env, median, percentile, save,
                    table, write_config)
from mailesc.testing.mail import make_mail

GOAL_S = 1.0
NEW_MAIL = re.compile(r"cycle: ([1-9]\d*) new message")


class DaemonLog:
    """Reads the daemon's stderr in a thread, stamping each line with the moment it was read."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[tuple[float, str]] = []
        self.ended = False  # the daemon closed its stderr (it exited): nothing more will come
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process):
        for line in process.stderr:
            with self.cond:
                self.lines.append((time.time(), line.rstrip()))
                self.cond.notify_all()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def wait_for(self, pattern: re.Pattern, after: float, timeout: float) -> float | None:
        def found():
            return next((t for t, line in self.lines if t >= after and pattern.search(line)), None)
        with self.cond:
            self.cond.wait_for(lambda: found() is not None or self.ended, timeout=timeout)
            return found()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--background", type=int, default=10000, help="messages already in the mailbox")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="1k background messages, 15 samples")
    args = parser.parse_args(argv)
    background, samples = (1000, 15) if args.quick else (args.background, args.samples)
    dovecot = BenchDovecot()
    sink = SmtpSink().start()
    tracked, escalated, problems = [], [], []
    try:
        box, _counts, _fill = dovecot.mailbox(generate(background, seed=7))
        config = write_config(Path(tempfile.mkdtemp(prefix="mesc-latency-")), box, smtp=sink, poll_seconds=60)
        daemon = subprocess.Popen([sys.executable, "-m", "mailesc", "-c", str(config), "-v", "run"],
                                  env=mailesc_env(box), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        log = DaemonLog(daemon)
        try:
            if log.wait_for(NEW_MAIL, 0, timeout=1800) is None:
                raise SystemExit("the daemon never finished its first sync:\n" + "\n".join(l for _, l in log.lines))
            time.sleep(2)
            appended = []
            for i in range(samples):
                raw, message_id = make_mail(sender=f"Pat {i} <pat{i}@latency.example>",
                                            subject=f"BENCH-URGENT printer {i} on fire")
                when = datetime.now(timezone.utc)
                box.append("INBOX", raw, when)
                done = time.time()
                seen = log.wait_for(NEW_MAIL, done, timeout=30)
                if seen is None:
                    problems.append(f"message {i} not tracked within 30 s")
                else:
                    tracked.append(seen - done)
                appended.append((message_id, int(when.timestamp())))
                time.sleep(1.3 - (time.time() - done) % 1.3)  # deadlines land in different cycles
            sink.wait_for(samples, timeout=60)
            for mail in sink.messages:
                refs = mail.message["References"] or ""
                for message_id, stamp in appended:
                    if message_id in refs:
                        escalated.append(mail.received_at.timestamp() - (stamp + 5))
        finally:
            stop_daemon(daemon, timeout=30)
    finally:
        sink.stop()
        dovecot.stop()
    rows = []
    for name, values in (("append -> tracked", tracked), ("deadline -> SMTP accepted", escalated)):
        p95 = percentile(values, 0.95)
        rows.append({"what": name, "n": len(values), "p50_s": round(median(values), 3) if values else None,
                     "p95_s": round(p95, 3) if p95 is not None else None,
                     "max_s": round(max(values), 3) if values else None,
                     "meets_goal": p95 is not None and p95 <= GOAL_S})
    print(table(rows, ["what", "n", "p50_s", "p95_s", "max_s", "meets_goal"]))
    if problems:
        print("\n".join(problems))
    note = ("INTERNALDATE has whole seconds: the deadline is the APPEND's INTERNALDATE (rounded down) + 5 s, "
            "as mailesc sees it; negative values would mean a mail sent early")
    path = save("latency", {"goal": f"p95 <= {GOAL_S} s", "background_messages": background, "rows": rows,
                            "tracked_s": tracked, "escalated_s": escalated, "problems": problems, "note": note})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
