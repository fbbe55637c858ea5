"""The `mailesc` command: parse arguments, call mailesc.app, print, map errors to exit codes.

mailesc.app and mailesc.config are imported inside the commands that use them, not here: `mailesc --help` and
the quick commands then do not pay for the modules a cycle needs (tests/cli/test_startup_imports.py pins it)."""

from __future__ import annotations

import argparse
import getpass
import itertools
import json
import logging
import os
import select
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mailesc import __version__, logs
from mailesc.clock import SimulatedClock, SystemClock, parse_iso
from mailesc.durations import format_duration, parse_duration
from mailesc.errors import MailescError, UsageError
from mailesc.reporting.breaches import TABLE_COLUMNS, breach_json, plain_table, table_row, write_csv
from mailesc.reporting.queries import STATUSES, BreachFilter, StoredBreach
from mailesc.reporting.statistics import GROUPINGS
from mailesc.reporting.tables import print_report, write_report_csv
from mailesc.reporting.timeline import breach_story, timeline
from mailesc.terminal import busy, print_table, progress

if TYPE_CHECKING:
    from mailesc import app  # for types only: the commands import it themselves (see above)

EX_SOFTWARE = 70
EX_UNAVAILABLE = 69
EX_USAGE = 64
DRY_RUN_HELP = "print what would be escalated, recorded and sent; write nothing, send nothing"


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version (0) or a usage error (64)
        return stop.code if isinstance(stop.code, int) else EX_USAGE
    args.config, args.verbose = getattr(args, "config", None), getattr(args, "verbose", 0)
    logs.configure(args.verbose, trace=getattr(args, "trace", False), log_format=getattr(args, "log_format", "text"),
                   daemon=args.command == "run")
    try:
        return args.handler(args)
    except MailescError as error:
        _last_word(args, str(error), error.exit_code)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if _output_closed():  # `mailesc breaches list | head -1`: the reader has what it wanted
            return 0
        logging.getLogger("mailesc").debug("internal error", exc_info=True)
        _last_word(args, "internal error: BrokenPipeError (run with -vv for details)", EX_SOFTWARE)
        return EX_SOFTWARE
    except Exception as error:  # the last guard: a user sees one line, never a traceback
        logging.getLogger("mailesc").debug("internal error", exc_info=True)
        _last_word(args, f"internal error: {type(error).__name__}: {error} (run with -vv for details)", EX_SOFTWARE)
        return EX_SOFTWARE


def _last_word(args, text: str, status: int) -> None:
    """Why the command failed, on stderr: "mailesc: ...", or with --log-format json one more JSON object (a log
    shipper reading the daemon's stderr gets only JSON lines)."""
    if getattr(args, "log_format", "text") == "json":
        logging.getLogger("mailesc").error(text, extra=logs.fields(exit_status=status))
    else:
        print(f"mailesc: {text}", file=sys.stderr)


def _output_closed() -> bool:
    """True when stdout is a pipe (or socket) nobody reads any more; stdout then goes to /dev/null, so that
    Python's own flush at exit does not print a second BrokenPipeError."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        closed = any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real stdout (captured in tests): it cannot be closed
        return False
    if closed:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return closed


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (EX_USAGE, as documented) instead of 2."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS,
                        help="config file (default: $MAILESC_CONFIG, else ./mailesc.toml, else the embedded default)")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more log output: -v every cycle and decision, -vv also debug lines")
    common.add_argument("--trace", action="store_true", default=argparse.SUPPRESS,
                        help="also log the IMAP and SMTP protocol (secrets hidden, addresses shown: for debugging)")
    common.add_argument("--log-format", choices=logs.FORMATS, default=argparse.SUPPRESS,
                        help="text (default) or json: one JSON object per line, for log shippers")
    parser = _Parser(prog="mailesc", parents=[common],
                     description="First-response clocks and escalations for a support mailbox.")
    parser.add_argument("--version", action="version", version=f"mailesc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[common], help="the daemon: poll, escalate, repeat")
    run.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    run.set_defaults(handler=cmd_run)

    once = commands.add_parser("once", parents=[common], help="one full cycle, then exit")
    once.add_argument("--now", help="evaluate deadlines at this ISO 8601 time (with offset) instead of now")
    once.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    once.set_defaults(handler=cmd_once)

    replay = commands.add_parser("replay", parents=[common], help="backtest the policies on a mailbox file")
    replay.add_argument("mailbox", help="an mbox file, a Maildir, or a folder of .eml files")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument("--until", help="play deadlines up to this ISO 8601 time (default: the last message)")
    replay.add_argument("--store", help="where to write the replay's breaches (default: beside the store, *-replay.json)")
    replay.add_argument("--outbox", help="Maildir for the replay's escalation mails (default: beside the store)")
    replay.add_argument("--report", metavar="FILE", help="also write the report page (HTML with charts) to FILE")
    replay.set_defaults(handler=cmd_replay)

    breaches = commands.add_parser("breaches", parents=[common], help="review recorded breaches")
    breach_commands = breaches.add_subparsers(dest="breach_command", required=True, metavar="ACTION")
    listing = breach_commands.add_parser("list", parents=[common], help="breaches, oldest first (with filters)")
    listing.add_argument("--since", help="deadline at or after: ISO 8601 time, a date, or a span back like 7d")
    listing.add_argument("--until", help="deadline before: ISO 8601 time, a date, or a span back like 1d")
    listing.add_argument("--policy", help="only this policy's breaches")
    listing.add_argument("--customer", help="only this customer: an address, or a domain like example.com")
    listing.add_argument("--status", choices=STATUSES, help="only breaches in this state")
    listing.add_argument("--unreviewed", action="store_true", help="only breaches without a recorded cause")
    listing.add_argument("--overdue-review", action="store_true",
                         help="only breaches without a cause for longer than the review period ([review] period)")
    listing.add_argument("--mailbox", action="append", metavar="NAME",
                         help="only this mailbox's breaches (repeat it, or give a comma list, for several)")
    listing.add_argument("--limit", type=int, help="at most this many (the newest)")
    _formats(listing, csv=True)
    listing.set_defaults(handler=cmd_breaches_list)
    show = breach_commands.add_parser("show", parents=[common], help="one breach as a timeline")
    show.add_argument("id", type=int)
    _formats(show)
    show.set_defaults(handler=cmd_breaches_show)
    review = breach_commands.add_parser("review", parents=[common], help="record why a breach happened")
    review.add_argument("id", type=int)
    review.add_argument("--cause", help="one of the causes in [review] causes (see mailesc breaches causes)")
    review.add_argument("--note", help="what happened, in a sentence")
    review.add_argument("--by", help="who reviewed it (default: your login name)")
    review.add_argument("--reopen", action="store_true", help="take the recorded cause back (kept in the history)")
    review.add_argument("--replay", action="store_true", help="review a replay's breach instead")
    review.set_defaults(handler=cmd_breaches_review)
    causes = breach_commands.add_parser("causes", parents=[common], help="the causes a review may give")
    causes.set_defaults(handler=cmd_breaches_causes)

    report = commands.add_parser("report", parents=[common], help="SLA numbers and trends, as a table, CSV, "
                                                                   "JSON or an HTML page with charts")
    report.add_argument("--since", help="threads the customer opened at or after: ISO 8601 time, date, or 30d")
    report.add_argument("--until", help="threads opened before: ISO 8601 time, date, or a span back")
    report.add_argument("--by", choices=GROUPINGS,
                        help="one row per policy, cause, customer, mailbox, weekday or week")
    report.add_argument("--html", metavar="FILE", help="also write a self-contained page with charts to FILE")
    _formats(report, csv=True)
    report.set_defaults(handler=cmd_report)

    status = commands.add_parser("status", parents=[common], help="health: last poll, waiting and failed mails")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.add_argument("--replay", action="store_true", help="read the replay store instead")
    status.set_defaults(handler=cmd_status)

    resend = breach_commands.add_parser("resend", parents=[common],
                                        help="send escalations that failed for good again (after fixing the cause)")
    resend.add_argument("id", type=int)
    resend.add_argument("--level", type=int, help="only this level")
    resend.add_argument("--to", nargs="+", metavar="ADDR",
                        help="send it to these addresses instead (kept in the breach's history)")
    resend.set_defaults(handler=cmd_breaches_resend)

    quarantine = commands.add_parser("quarantine", parents=[common], help="messages mailesc could not read")
    quarantine.add_argument("--json", action="store_true")
    quarantine.set_defaults(handler=cmd_quarantine)
    quarantine_commands = quarantine.add_subparsers(dest="quarantine_command", metavar="ACTION")
    retry = quarantine_commands.add_parser("retry", parents=[common],
                                           help="read quarantined messages again at the next cycle")
    retry.add_argument("id", nargs="*", help="the message's id, as mailesc quarantine lists it")
    retry.add_argument("--all", action="store_true", help="every quarantined message")
    retry.set_defaults(handler=cmd_quarantine_retry)

    policies = commands.add_parser("policies", parents=[common], help="check and explain the policies")
    policy_commands = policies.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    explain = policy_commands.add_parser("explain", parents=[common], help="which rule a message gets, and why")
    explain.add_argument("eml", help="a message file (.eml)")
    explain.add_argument("--received", help="its arrival time, ISO 8601 with offset (default: its Date header)")
    explain.add_argument("--json", action="store_true", help="print one JSON object")
    explain.add_argument("--mailbox", metavar="NAME", help="the mailbox it arrives in (default: the first configured)")
    explain.set_defaults(handler=cmd_policies_explain)
    policy_check = policy_commands.add_parser("check", parents=[common], help="validate policies and calendars")
    policy_check.set_defaults(handler=cmd_policies_check)

    store = commands.add_parser("store", parents=[common], help="move the store")
    store_commands = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    copy = store_commands.add_parser(
        "copy", parents=[common], help="copy the embedded store (live file, archive, reviews, secret) into PostgreSQL",
        description="Copy the embedded store the config names (every mailbox's records, the archive, the reviews "
                    "and the installation's secret) into a PostgreSQL database. The file is only read: it may be "
                    "copied while the daemon runs, but stop the daemon for a last copy before switching to the "
                    "database (or run it again once stopped: a second run copies only what came meanwhile, nothing "
                    "twice).")
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST:PORT/DBNAME (no password)")
    copy.add_argument("--password-env", metavar="NAME",
                      help="the database password is in this environment variable (default: [store] password_env)")
    copy.add_argument("--password-file", metavar="PATH",
                      help="the database password is in this file, mode 600 (default: [store] password_file)")
    copy.add_argument("--security", choices=("tls", "plain"),
                      help="tls (verified) or plain (loopback only); default: [store] security, else tls, plain to "
                           "a loopback host")
    copy.add_argument("--ca-file", metavar="PATH", help="trust this CA for the database's certificate")
    copy.set_defaults(handler=cmd_store_copy)

    init = commands.add_parser("init", parents=[common], help="write a starter config, policy and templates to edit")
    init.add_argument("dir", nargs="?", default=".", help="the folder to write them into (default: here)")
    init.set_defaults(handler=cmd_init)

    check = commands.add_parser("check", parents=[common], help="validate config, policies and templates")
    check.add_argument("--offline", action="store_true", help="do not contact the IMAP and SMTP servers")
    check.set_defaults(handler=cmd_check)
    return parser


def _formats(parser: argparse.ArgumentParser, csv: bool = False) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    if csv:
        parser.add_argument("--csv", action="store_true", help="print CSV")
    parser.add_argument("--replay", action="store_true", help="read the replay store instead")


def _setup(args, starting: bool = False) -> app.Setup:
    from mailesc import app

    return app.load_setup(_config(args), starting=starting)


def cmd_run(args) -> int:
    from mailesc import app

    setup = _setup(args, starting=True)  # a config problem stops here, with exit 78, not at every cycle
    for note in app.setup_notes(setup):
        logging.getLogger("mailesc").warning("%s", note.removeprefix("note: "))
    app.run_daemon(setup, app.DryRunTransport(_say) if args.dry_run else None)
    return 0


def cmd_once(args) -> int:
    from mailesc import app

    setup = _setup(args, starting=True)
    clock = SimulatedClock(_time(args.now, "--now")) if args.now else SystemClock()
    report = app.run_once(setup, clock.now(), app.DryRunTransport(_say) if args.dry_run else None)
    if args.dry_run:
        print(f"dry run, nothing was written or sent: {report.fetched} new message(s), {report.threads_opened} "
              f"thread(s) would be opened, {report.breaches} breach(es) and {report.escalations_recorded} "
              f"escalation(s), {report.warnings_recorded} warning(s), {report.acknowledgements_recorded} "
              f"acknowledgement(s) would be recorded, {report.mails_sent} mail(s) would be sent, "
              f"{report.quarantined} quarantined")
        if report.source_error:  # what it says would be done may be incomplete
            print(f"mailesc: {report.source_error}", file=sys.stderr)
            return EX_UNAVAILABLE
        return 0
    print(f"{report.fetched} new message(s), {report.threads_opened} thread(s) opened, {report.breaches} new "
          f"breach(es), {report.mails_sent} mail(s) sent, "
          + (f"{report.posts_sent} webhook post(s) made, " if report.posts_sent else "")
          + f"{report.quarantined} quarantined")
    if report.untimed:
        print(f"mailesc: {report.untimed} thread(s) taken in without a clock: a policy cannot time them "
              f"(see mailesc status)", file=sys.stderr)
    problems = [report.source_error]
    if report.mails_waiting:
        problems.append(f"{report.mails_waiting} mail(s) not sent yet, retried next time: "
                        f"{report.transport_error}")
    if report.mails_failed:
        problems.append(f"{report.mails_failed} mail(s) refused for good: see mailesc breaches list")
    for problem in filter(None, problems):
        print(f"mailesc: {problem}", file=sys.stderr)
    return EX_UNAVAILABLE if any(problems) else 0


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_replay(args) -> int:
    from mailesc import app

    setup = _setup(args)
    summary = app.replay(setup, Path(args.mailbox), store_path=Path(args.store) if args.store else None,
                         outbox_path=Path(args.outbox) if args.outbox else None,
                         until=_time(args.until, "--until") if args.until else None, progress=progress)
    if args.report:
        _write_page(Path(args.report), app.report(setup, parse_iso(summary.end), store=Path(summary.store)))
    if args.json:
        print(json.dumps(summary.as_json()))
        return 0
    s = summary
    print(f"Replayed {s.messages} messages from {s.start} to {s.end}\n"
          f"  threads opened by customers  {s.threads}\n"
          f"  answered                     {s.responded} ({s.responded_on_time} on time, {s.responded_late} late)\n"
          f"  never answered               {s.unanswered}\n"
          f"  breaches                     {s.breaches}\n"
          f"  escalations                  {s.escalations}\n"
          f"  mails written                {s.mails}  (to {s.outbox})\n"
          f"  auto-generated, ignored      {s.ignored_auto}\n"
          f"  spam, ignored                {s.ignored_spam}\n"
          f"  quarantined                  {s.quarantined}\n"
          f"Breaches are in {s.store}: mailesc breaches list --replay")
    return 0


def cmd_breaches_list(args) -> int:
    from mailesc.records import open_records  # not app: a list loads no engine

    config, now = _config(args), SystemClock().now()
    wanted = BreachFilter(since=_when(args.since, "--since", now), until=_when(args.until, "--until", now),
                          policy=args.policy, customer=args.customer, status=args.status,
                          unreviewed=args.unreviewed, overdue_review=args.overdue_review,
                          mailboxes=_names(args.mailbox))
    period = config.review.period
    with open_records(config, args.replay, live=False) as records:
        with busy("reading the breaches"):
            selected, reviews, recorded = records.select_breaches(wanted, now, period, args.limit)
        if args.json:
            _stream_json_array(breach_json(b, reviews, now, period) for b in selected)
        elif args.csv:
            write_csv(sys.stdout, selected, reviews, now, period)
        else:
            selected = list(selected)
            if not selected:
                print("No breaches match." if recorded else "No breaches recorded.")
            else:
                rows = (table_row(b, reviews, now, period) for b in selected)
                print_table(TABLE_COLUMNS, rows, lambda rows: plain_table(itertools.chain([TABLE_COLUMNS], rows)),
                            expected=len(selected))
    return 0


def _names(given: list[str] | None) -> tuple[str, ...]:
    """--mailbox NAME, repeated or as comma lists: the names, each once."""
    return tuple(dict.fromkeys(name.strip() for text in given or () for name in text.split(",") if name.strip()))


def cmd_breaches_show(args) -> int:
    from mailesc.records import breach as breach_on_record  # not app: showing a breach loads no engine

    config, now = _config(args), SystemClock().now()
    found = breach_on_record(config, args.id, args.replay)
    if found is None:
        print(f"mailesc: no breach with id {args.id}", file=sys.stderr)
        return 1
    thread, breach, reviews = found
    events = timeline(breach, thread, reviews)
    doc = breach_json(StoredBreach.of(breach), reviews, now, config.review.period)
    if args.json:
        print(json.dumps({**doc, "timeline": [event.as_json() for event in events]}, indent=2))
    else:
        print(breach_story(breach, events, doc["review"]))
    return 0


def cmd_breaches_review(args) -> int:
    from mailesc import app

    config = _config(args)
    entry = app.review(config, args.id, cause=args.cause, note=args.note, by=args.by or _login_name(),
                       reopen=args.reopen, now=SystemClock().now(), replay=args.replay)
    print(f"breach {entry.breach}: review reopened" if args.reopen else
          f"breach {entry.breach}: cause {entry.cause} recorded by {entry.by}")
    return 0


def cmd_breaches_causes(args) -> int:
    print("\n".join(_config(args).review.causes))
    return 0


def cmd_report(args) -> int:
    from mailesc import app

    setup, now = _setup(args), SystemClock().now()
    with busy("counting"):
        result = app.report(setup, now, since=_when(args.since, "--since", now),
                            until=_when(args.until, "--until", now), by=args.by, replay=args.replay)
    if args.html:
        _write_page(Path(args.html), result)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.csv:
        write_report_csv(sys.stdout, result)
    else:
        print_report(result)
    return 0


def _write_page(path: Path, result: dict) -> None:
    from mailesc.reporting.page import render_html  # matplotlib loads slowly: only when a page is asked for

    try:
        path.write_text(render_html(result), encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None
    print(f"report page written to {path}", file=sys.stderr)


def _stream_json_array(docs) -> None:
    """A JSON array written one element at a time (a long history never sits in memory as one string)."""
    sys.stdout.write("[")
    for number, doc in enumerate(docs):
        sys.stdout.write(("," if number else "") + "\n  " + json.dumps(doc))
    sys.stdout.write("\n]\n")


def _config(args):
    from mailesc.config import find_config_file, load_config

    return load_config(find_config_file(args.config))


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cmd_status(args) -> int:
    from mailesc import app

    result = app.status(_config(args), SystemClock().now(), replay=args.replay)
    if args.json:
        print(json.dumps(result))
    else:
        mailbox = result["mailbox"]
        print(f"store            {result['store']}")
        for worker in result.get("workers", []):
            print(f"worker           {worker['id']} on {worker['host']} (pid {worker['pid']}): {worker['leases']} "
                  f"mailbox(es)")
        if len(result["mailboxes"]) > 1 or "workers" in result:
            for box in result["mailboxes"]:
                held = (f"; worked by {box['worker'] or 'nobody'}" if "worker" in box else "")
                failing = f"; failing since {box['failing_since']}" if box["error"] else ""
                print(f"mailbox {box['name']:<8} {box['threads']} thread(s), {box['open_breaches']} open breach(es), "
                      f"{box['quarantined']} quarantined{failing}{held}")
        if not args.replay:
            print(f"last good poll   {result['last_poll_at'] or 'never'} (stale after "
                  f"{format_duration(timedelta(seconds=result['stale_after_seconds']))})")
        if mailbox["error"]:
            print(f"mailbox failing  since {mailbox['failing_since']}: {mailbox['error']}")
        print(f"threads          {result['threads']} ({result['open_breaches']} open breach(es) of "
              f"{result['breaches']})")
        why = f"; {result['last_pending_error']}" if result["last_pending_error"] else ""  # none before a first try
        print(f"mails waiting    {result['pending_mails']}"
              + (f" (oldest {result['oldest_pending']}{why})" if result["pending_mails"] else ""))
        print(f"mails failed     {result['failed_mails']}" + (f"  (last: {result['last_failed_error']}; see mailesc "
                                                              f"breaches list)" if result["failed_mails"] else ""))
        if result["pending_posts"] or result["failed_posts"]:
            print(f"webhook posts    {result['pending_posts']} waiting, {result['failed_posts']} failed"
                  + (f"  (last: {result['last_failed_post_error']})" if result["failed_posts"] else ""))
        print(f"quarantined      {result['quarantined']}" + ("  (see mailesc quarantine)"
                                                            if result["quarantined"] else ""))
        if result["untimed_threads"]:
            print(f"no clock         {result['untimed_threads']} thread(s): a policy cannot time them")
        if result["daily_digest"]:
            digest = result["daily_digest"]
            print(f"daily digest     {digest['date']}: {digest['delivery']}"
                  + (f" ({digest['error']})" if digest.get("error") else ""))
        print("healthy" if result["healthy"] else "NOT healthy:\n" + "\n".join(
            f"  - {problem}" for problem in result["problems"]))
    return 0 if result["healthy"] else 1


def cmd_breaches_resend(args) -> int:
    from mailesc import app

    message_ids = app.resend(_config(args), args.id, args.level, args.to, SystemClock().now())
    where = f" to {', '.join(args.to)}" if args.to else ""
    print(f"{len(message_ids)} escalation(s) back in the outbox, sent{where} at the next cycle: "
          f"{', '.join(message_ids)}")
    return 0


def cmd_quarantine_retry(args) -> int:
    from mailesc import app

    if bool(args.id) == args.all:
        raise UsageError("give the ids of the messages to read again (see mailesc quarantine), or --all")
    keys = app.quarantine_retry(_config(args), None if args.all else args.id)
    print(f"{len(keys)} message(s) will be read again at the next cycle" if keys else "Nothing in quarantine.")
    return 0


def cmd_quarantine(args) -> int:
    from mailesc import app

    items = app.quarantined(_config(args))
    if args.json:
        print(json.dumps([{"key": q.key, "folder": q.folder, "reason": q.reason, "at": q.at.isoformat(),
                           "retry": q.retry, "mailbox": q.mailbox} for q in items], indent=2))
    else:
        print("\n".join(f"{q.at.isoformat()}  {q.key}  {q.reason}" + ("  (read again at the next cycle)"
                                                                      if q.retry else "")
                        for q in items) or "Nothing in quarantine.")
    return 0


_KIND_WORDS = {"customer": "a customer message", "team": "a team message", "internal": "an internal message",
               "auto": "an auto-generated message", "own": "mailesc's own message", "spam": "a spam message"}


def cmd_policies_explain(args) -> int:
    from mailesc import app

    setup = _setup(args)
    received = _time(args.received, "--received") if args.received else None
    result = app.explain(setup, Path(args.eml), received, args.mailbox)
    if args.json:
        print(json.dumps(result))
        return 0
    kind = _KIND_WORDS.get(result["kind"], f"a {result['kind']} message")
    if not result["opens_thread"]:
        print(f"{args.eml}: {kind}: it starts no clock, because {result['reason']}.")
        return 0
    print(f"{args.eml}: {kind}: it starts a clock")
    if result["contract"]:
        print(f"  contract             {result['contract']}")
    for attempt in result["tried"]:
        verdict = "matches" if attempt["matched"] else "does not match: " + ", ".join(attempt["failed"])
        print(f"  rule {attempt['rule']!r} ({attempt['source']}) {verdict}")
    if result["rule"] is None:
        print("No rule matches: the thread would have no deadline.")
        return 0
    print(f"Rule {result['rule']!r}, calendar {result['calendar']!r}:\n"
          f"  received             {result['received']}")
    if result["warn_at"]:
        print(f"  warning              {result['warn_at']}  to {', '.join(result['warn_to'])}")
    print(f"  first response due   {result['first_response_due']}  ({result['first_response']} of open time)")
    for step in result["escalations"]:
        print(f"  level {step['level']} escalation   {step['at']}  to {', '.join(step['to'])}")
    if result["next_response"]:
        print(f"  next response        within {result['next_response']} of open time each time the customer "
              f"writes again after an answer")
    if result["acknowledge"]:
        print(f"  acknowledgement      template {result['acknowledge']!r} to the customer, once per thread")
    return 0


def cmd_policies_check(args) -> int:
    setup = _setup(args)
    policies = setup.policies
    for rule in policies.rules:
        print(f"rule {rule.name!r} ({rule.source}): first response {format_duration(rule.first_response)} "
              f"in calendar {rule.calendar.name!r}, {len(rule.escalate)} escalation level(s)")
    print(f"calendars: {', '.join(sorted(policies.calendars))}")
    print("OK")
    return 0


def cmd_check(args) -> int:
    from mailesc import app

    setup = _setup(args, starting=True)
    print("\n".join(app.check(setup, args.offline)))
    print("OK")
    return 0


def cmd_store_copy(args) -> int:
    from mailesc import app

    config = _config(args)
    with busy("copying the store"):
        result = app.copy_store(config, args.to, password_env=args.password_env, password_file=args.password_file,
                                security=args.security, ca_file=args.ca_file)
    print("\n".join(result.lines()))
    return 0


def cmd_init(args) -> int:
    from mailesc.defaults import init

    written = init(Path(args.dir))
    print("\n".join(f"wrote {path}" for path in written))
    print(f"Next: edit {written[0]} (servers, team) and {Path(args.dir) / 'policies'} (deadlines, managers), "
          f"then run: mailesc -c {written[0]} check")
    return 0


def _when(text: str | None, flag: str, now: datetime) -> datetime | None:
    """--since/--until: an ISO 8601 time with offset, a date (local midnight), or a span back from now (7d)."""
    if not text:
        return None
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        day = date.fromisoformat(text)
        return datetime.combine(day, datetime.min.time()).astimezone()
    except ValueError:
        pass
    try:
        return parse_iso(text)
    except ValueError:
        raise UsageError(f"{flag} wants an ISO 8601 time with offset (2026-11-23T09:00:00+01:00), a date "
                         f"(2026-11-23) or a span back from now (7d, 12h), not {text!r}") from None


def _time(text: str, flag: str):
    try:
        return parse_iso(text)
    except ValueError:
        raise UsageError(f"{flag} wants an ISO 8601 time with offset, like 2026-11-23T09:00:00+01:00, "
                           f"not {text!r}") from None

