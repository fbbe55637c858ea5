"""Shared by the benchmark scripts: realistic generated mail, a private Dovecot filled fast, the raw-imaplib
limit, tables, JSON results and the machine description. Not a test module."""

from __future__ import annotations

import base64
import imaplib
import json
import os
import platform
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime
from pathlib import Path

from mailesc.testing import DovecotServer, SmtpSink, find_dovecot
from mailesc.testing.configs import OUTBOX, imap_section, smtp_section
from mailesc.testing.configs import write_config as test_config

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
NOW = datetime.now(timezone.utc).replace(microsecond=0)

# -- generated mail ---------------------------------------------------------------------------------------------

FIRST = ["Pat", "Kim", "Alex", "Sam", "Jo", "Maria", "Jürgen", "Chloé", "Wei", "Aiko", "Olu", "Priya", "Lars", "Ana"]
LAST = ["Smith", "Müller", "Dubois", "Rossi", "Tanaka", "Okafor", "Sharma", "Nielsen", "García", "Kowalski"]
DOMAINS = ["customer.example", "bigcorp.example", "acme.example", "shop.example", "uni.example", "mail.example"]
AGENTS = ["anna", "ben", "carla", "dev", "eve"]
TOPICS = ["Cannot log in", "Invoice {n} is wrong", "Export fails with error {n}", "Feature request: dark mode",
          "Password reset link expired", "API returns 500 on /orders/{n}", "Refund for order #{n}",
          "Outage in region eu-{n}", "Wie ändere ich meine Adresse?", "Problème de facturation {n}",
          "Sync stuck at {n}%", "SSO with Azure AD", "Question about the contract", "Urgent: production down"]
LOREM = ("Hello team, we have been seeing this since yesterday and it blocks our month-end closing. "
         "Could you please have a look as soon as possible? Steps: open the dashboard, choose the report, "
         "press export; nothing happens and the browser console shows an error. Kind regards").split()
MAILERS = ["Microsoft Outlook 16.0", "Apple Mail (2.3731)", "Mozilla Thunderbird 115.3", "Gmail", "K-9 Mail"]


@dataclass
class GeneratedMail:
    folder: str  # INBOX (customer mail, auto mail) or Sent (team replies)
    arrived: datetime
    data: bytes


def _address(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(DOMAINS)
    return f"{first} {last}", f"{first.lower().encode('ascii', 'ignore').decode()}.{rng.randrange(10**4)}@{domain}"


def _body(rng: random.Random, quoted: str = "") -> str:
    words = rng.randint(30, 220)
    lines, line = [], []
    for i in range(words):
        line.append(LOREM[(i + rng.randrange(3)) % len(LOREM)])
        if len(line) >= 12:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    if quoted:
        lines += ["", "> " + quoted.replace("\n", "\n> ")]
    return "\n".join(lines) + "\n"


def _dkim(rng: random.Random, domain: str) -> str:
    sig = base64.b64encode(rng.randbytes(256)).decode()
    folded = "\r\n\t ".join(sig[i:i + 70] for i in range(0, len(sig), 70))
    return (f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s{rng.randrange(9)};\r\n"
            f"\th=from:to:subject:date:message-id:references:in-reply-to;\r\n"
            f"\tbh={base64.b64encode(rng.randbytes(32)).decode()};\r\n\tb={folded}\r\n")


def _message(rng: random.Random, *, sender: tuple[str, str], to: str, subject: str, when: datetime, msgid: str,
             parents: list[str], body: str, extra: str = "", attachment: bool = False) -> bytes:
    name, address = sender
    domain = address.rpartition("@")[2]
    hops = "".join(
        f"Received: from mx{h}.{domain} (mx{h}.{domain} [198.51.100.{rng.randrange(256)}])\r\n"
        f"\tby mail.example.test (Postfix) with ESMTPS id {rng.randbytes(5).hex().upper()}\r\n"
        f"\tfor <support@example.test>; {format_datetime(when - timedelta(seconds=h))}\r\n" for h in range(
            rng.randint(1, 4)))
    refs = ""
    if parents:
        refs = f"In-Reply-To: {parents[-1]}\r\nReferences: " + "\r\n ".join(parents[-12:]) + "\r\n"
    head = (f"Return-Path: <{address}>\r\nDelivered-To: support@example.test\r\n{hops}{_dkim(rng, domain)}"
            f"From: {name} <{address}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {format_datetime(when)}\r\n"
            f"Message-ID: {msgid}\r\n{refs}X-Mailer: {rng.choice(MAILERS)}\r\nMIME-Version: 1.0\r\n{extra}")
    text = body.replace("\n", "\r\n")
    if not attachment:
        return (head + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                + text).encode("utf-8")
    blob = base64.encodebytes(rng.randbytes(rng.randint(10_000, 60_000))).decode().replace("\n", "\r\n")
    boundary = f"----=_Part_{rng.randrange(10**9)}"
    return (head + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--{boundary}\r\n"
            f'Content-Type: application/pdf; name="report-{rng.randrange(999)}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n{blob}"
            f"--{boundary}--\r\n").encode("utf-8")


def generate(count: int, seed: int = 1, *, open_share: float = 0.2, days: int = 60):
    """Yield `count` GeneratedMail in arrival order-ish: about 0.3 threads per message, of which `open_share`
    of `count` are unanswered customer threads (open clocks); the rest are conversations with team replies
    (in Sent), plus ~3% auto-replies/bounces and ~3% list mail. ~6% carry a 10-60 KB attachment."""
    rng = random.Random(seed)
    open_threads = int(count * open_share)
    produced = 0
    n = 0
    start = NOW - timedelta(days=days)
    span = timedelta(days=days - 1).total_seconds()
    while produced < count:
        n += 1
        customer = _address(rng)
        subject = rng.choice(TOPICS).format(n=rng.randrange(10_000))
        when = start + timedelta(seconds=rng.uniform(0, span))
        domain = customer[1].rpartition("@")[2]
        root = f"<{rng.randbytes(8).hex()}.{n}@{domain}>"
        kind = rng.random()
        if kind < 0.03 and produced + 1 <= count:  # an auto-reply / bounce
            produced += 1
            yield GeneratedMail("INBOX", when, _message(
                rng, sender=("Mail Delivery System", f"mailer-daemon@{domain}"), to="support@example.test",
                subject="Undeliverable: " + subject, when=when, msgid=root, parents=[], body=_body(rng),
                extra="Auto-Submitted: auto-replied\r\n"))
            continue
        if kind < 0.06:  # list mail
            produced += 1
            yield GeneratedMail("INBOX", when, _message(
                rng, sender=("Newsletter", f"news@{domain}"), to="support@example.test", subject=subject,
                when=when, msgid=root, parents=[], body=_body(rng),
                extra=f"List-Id: <news.{domain}>\r\nList-Unsubscribe: <mailto:leave@{domain}>\r\n"
                      f"Precedence: list\r\n"))
            continue
        answered = open_threads <= 0 or rng.random() < 0.28
        length = rng.randint(1, 3) if not answered else rng.randint(2, 12)
        length = min(length, count - produced)
        if not answered:
            open_threads -= 1
        parents: list[str] = []
        quoted = ""
        agent = rng.choice(AGENTS)
        for i in range(length):
            from_team = answered and i % 2 == 1
            msgid = root if i == 0 else f"<{rng.randbytes(8).hex()}.{n}.{i}@{'example.test' if from_team else domain}>"
            body = _body(rng, quoted[:400])
            if from_team:
                mail = _message(rng, sender=(agent.title(), f"{agent}@example.test"), to=f"{customer[0]} <{customer[1]}>",
                                subject="Re: " + subject, when=when, msgid=msgid, parents=parents, body=body)
                folder = "Sent"
            else:
                mail = _message(rng, sender=customer, to="Support <support@example.test>",
                                subject=("Re: " if i else "") + subject, when=when, msgid=msgid, parents=parents,
                                body=body, attachment=rng.random() < 0.06)
                folder = "INBOX"
            yield GeneratedMail(folder, when, mail)
            produced += 1
            parents = parents + [msgid]
            quoted = body
            when += timedelta(minutes=rng.uniform(3, 600))


# -- a private Dovecot, filled by writing Maildir files ---------------------------------------------------------


class BenchDovecot:
    """A private Dovecot (mailesc.testing.dovecot) with users filled by writing Maildir files directly:
    measured here ~25x faster than APPEND for 10k messages, and Dovecot indexes them at the first SELECT."""

    def __init__(self):
        if find_dovecot() is None:
            raise SystemExit("dovecot is not installed: apt-get install -y dovecot-imapd (see README)")
        self.server = DovecotServer().start()

    def mailbox(self, mails, prefix: str = "bench"):
        """A new user holding `mails`; returns (Mailbox, counts per folder, seconds to write + index)."""
        box = self.server.new_mailbox(prefix)
        started = time.perf_counter()
        home = self.server.home_root / box.username / "Maildir"
        folders = {"INBOX": home, "Sent": home / ".Sent"}
        for path in folders.values():
            for sub in ("cur", "new", "tmp"):
                (path / sub).mkdir(parents=True, exist_ok=True)
        counts = {"INBOX": 0, "Sent": 0}
        for i, mail in enumerate(mails):
            stamp = int(mail.arrived.timestamp())
            name = f"{stamp}.M{i}P{os.getpid()}.bench,S={len(mail.data)}:2,S"
            path = folders[mail.folder] / "cur" / name
            path.write_bytes(mail.data)
            os.utime(path, (stamp, stamp))  # Dovecot's Maildir keeps INTERNALDATE in the file's mtime
            counts[mail.folder] += 1
        if self.server.is_root:
            uid, gid = self.server.mail_uid, self.server.mail_gid
            for folder, _dirs, files in os.walk(home.parent):
                os.chown(folder, uid, gid)
                for file in files:
                    os.chown(os.path.join(folder, file), uid, gid)
        written = time.perf_counter() - started
        with box._session() as client:  # the first SELECT makes Dovecot index the files
            for folder in folders:
                client.select_folder(folder, readonly=True)
        return box, counts, {"write_s": round(written, 2), "index_s": round(time.perf_counter() - started - written, 2)}

    def stop(self):
        self.server.cleanup()


def raw_imaplib_limit(box, folders=("INBOX", "Sent"), batch: int = 500) -> dict:
    """The physical limit for an initial sync: stdlib imaplib, UID SEARCH ALL, UID FETCH of
    INTERNALDATE, RFC822.SIZE and BODY.PEEK[HEADER] in batches, each header parsed by the stdlib (compat32)."""
    parser = BytesHeaderParser(policy=compat32)
    started = time.perf_counter()
    imap = imaplib.IMAP4(box.host, box.port)
    imap.login(box.username, box.password)
    messages = 0
    for folder in folders:
        imap.select(folder, readonly=True)
        _, data = imap.uid("SEARCH", "ALL")
        uids = data[0].split()
        for start in range(0, len(uids), batch):
            chunk = b",".join(uids[start:start + batch])
            _, data = imap.uid("FETCH", chunk, "(INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])")
            for item in data:
                if isinstance(item, tuple):
                    imaplib.Internaldate2tuple(item[0])
                    parser.parsebytes(item[1])
                    messages += 1
    imap.logout()
    seconds = time.perf_counter() - started
    return {"messages": messages, "seconds": round(seconds, 3), "msg_per_s": round(messages / seconds, 1)}


# -- configs for mailesc ----------------------------------------------------------------------------------------

SLOW_RULES = """
[[rule]]
name = "urgent"
match = { subject = "BENCH-URGENT" }
first_response = "5s"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]

[[rule]]
name = "standard"
first_response = "90d"
[[rule.escalate]]
after = "0m"
to = ["manager@example.test"]
"""


def write_config(folder: Path, box, *, smtp=None, poll_seconds: float = 60) -> Path:
    """A mailesc.toml for `box` (IMAP, plain on loopback); escalations to `smtp` (an SmtpSink) or an outbox."""
    folder.mkdir(parents=True, exist_ok=True)
    sending = smtp_section(smtp) if smtp is not None else OUTBOX
    return test_config(folder, mailbox=imap_section(box).replace("timeout_seconds = 10", "timeout_seconds = 30"),
                       smtp=sending, rules=SLOW_RULES, extra=f"[daemon]\npoll_seconds = {poll_seconds}")


def mailesc_env(box) -> dict:
    return {**os.environ, "MAILESC_IMAP_PASSWORD": box.password, "PYTHONPATH": str(REPO)}


def run_mailesc(config: Path, box, *args: str, timeout: float = 3600) -> dict:
    """`python -m mailesc -c CONFIG ARGS` as a child process: wall seconds and the child's peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mailesc", "-c", str(config), *args], env=mailesc_env(box),
                            capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode not in (0, 69):
        raise RuntimeError(f"mailesc {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return {"seconds": round(seconds, 3), "stdout": result.stdout, "stderr": result.stderr,
            "peak_rss_mb": round(peak / 1024, 1) if peak > before else None}


# -- output -----------------------------------------------------------------------------------------------------


def add_size_arguments(parser, default: str) -> None:
    """--sizes N,N and --quick (1k and 10k messages), shared by the benchmarks that run at several sizes."""
    parser.add_argument("--sizes", default=default, help=f"message counts, comma-separated (default {default})")
    parser.add_argument("--quick", action="store_true", help="1k and 10k messages")


def chosen_sizes(args) -> list[int]:
    return [1000, 10000] if args.quick else [int(size) for size in args.sizes.split(",")]


def stop_daemon(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM, as an operator would; SIGKILL if it does not stop in time."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        mem = f"{int(open('/proc/meminfo').readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    dovecot = subprocess.run([find_dovecot() or "dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "python": platform.python_version(),
            "os": platform.platform(), "dovecot": dovecot}


def table(rows: list[dict], columns: list[str]) -> str:
    widths = [max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(_cell(r.get(c)).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values):
    return statistics.median(values) if values else None


__all__ = ["BenchDovecot", "GeneratedMail", "SmtpSink", "generate", "raw_imaplib_limit", "write_config",
           "run_mailesc", "mailesc_env", "machine", "table", "save", "percentile", "median", "NOW", "REPO"]
