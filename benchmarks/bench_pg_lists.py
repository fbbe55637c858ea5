"""Benchmark: `mailesc breaches list` and `mailesc report` over 1,000,000 breaches in PostgreSQL (issue 12: goal
at most 2 s each; baseline: the same SQL run by `psql`, in the same run).

How: a throwaway cluster (mailesc.testing.postgres); mailesc creates its schema; then the rows are made by the
server itself (generate_series + jsonb_build_object, secondary indexes dropped while filling and built again
after) in the very shape store.py's _thread_doc/_breach_doc write, which is checked by reading a sample back
through PostgresStore and mailesc's own readers (a doc must survive _breach_from -> _breach_doc unchanged).
Three mailboxes, three policies, the oldest half archived, a third reviewed, one sent escalation per breach
(also as its `escalations` row), the newest 2% still open.

Each command runs as a user runs it (`python -m mailesc -c CFG ...`, stdout to /dev/null), several times:
median and p95. The baseline for a command is the SQL mailesc runs for it, captured from PostgresStore itself
(its statements, with their values inlined) on the empty database before filling it, run by
`psql -X -A -t -o /dev/null`. Results: benchmarks/results/pg_lists.json (+ profile_pg_lists_*.txt).

    python3 benchmarks/bench_pg_lists.py [--size 1000000] [--runs 5] [--profile json,report]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
from common import median, percentile, save, table
from mailesc.policies import load_policies
from mailesc.reporting.queries import BreachFilter
from mailesc.store import _breach_doc, _breach_from, _thread_doc, _thread_from
from mailesc.stores.postgres import PostgresStore
from mailesc.testing.postgres import PostgresCluster

MAILBOXES = ("support", "billing", "vip")
POLICIES = ("default", "vip", "enterprise")
CAUSES = ("staffing", "misrouted", "waiting-on-third-party", "policy-too-tight", "tooling", "other")
REVIEW_PERIOD = timedelta(days=14)  # the config below leaves [review] period at its default; only its value matters
GOAL_S = 2.0

# what a user runs -> (argv after `mailesc -c CFG`, how the baseline's SQL is captured)
COMMANDS = {
    "list": ["breaches", "list"],
    "list --json": ["breaches", "list", "--json"],
    "list --csv": ["breaches", "list", "--csv"],
    "list --policy vip --since 90d": ["breaches", "list", "--policy", "vip", "--since", "90d"],
    "report": ["report"],
    "report --by mailbox": ["report", "--by", "mailbox"],
}


def _iso(column: str) -> str:
    """SQL: a timestamptz as mailesc's isoformat writes whole-second UTC times ("2025-01-06T08:00:00+00:00")."""
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"


def fill_sql(size: int, start: datetime, step_s: float) -> list[str]:
    """The statements that fill an empty mailesc database with `size` breached threads."""
    base = f"""
        SELECT g,
               (ARRAY{list(MAILBOXES)})[1 + g % 3] AS mailbox,
               '<t' || g || '@bench.example>' AS tid,
               '<r' || g || '@bench.example>' AS rid,
               'customer' || ((g::bigint * 7919) % ({size} / 20 + 1)) || '@'
                   || (ARRAY['acme', 'shop', 'uni'])[1 + (g * 31) % 3] || '.example' AS customer,
               (ARRAY{list(POLICIES)})[1 + (g * 13) % 3] AS policy,
               'case ' || g AS subject,
               date_trunc('second', timestamptz '{start.isoformat()}' + (g * {step_s}) * interval '1 second') AS rcv,
               g > {size} * 0.98 AS open,
               g <= {size} / 2 AS archived
        FROM generate_series(1, {size}) AS g"""
    answered = f"""
        SELECT *, rcv + interval '4 hours' AS due,
               CASE WHEN open THEN NULL ELSE rcv + interval '4 hours' + ((g * 37) % 1560) * interval '1 minute'
                                                  + interval '1 minute' END AS resp
        FROM ({base}) b"""
    # the business hours the engine keeps when a thread is answered (the policies' calendar is "always": wall-clock
    # hours, divided as Python divides timedeltas)
    times = f"""
        SELECT *, (extract(epoch FROM resp) - extract(epoch FROM rcv))::float8 / 3600 AS hours FROM ({answered}) a"""
    escalation = (f"jsonb_build_object('level', 0, 'at', {_iso('due')}, 'to', jsonb_build_array('manager@example.test'), "
                  f"'message_id', '<esc' || g || '.0@mailesc.example>', 'template', 'escalation', 'delivery', 'sent', "
                  f"'sent_at', {_iso('due')}, 'error', NULL, 'attempts', 0, 'retry_at', NULL, 'digest', NULL)")
    breach_doc = (f"jsonb_build_object('id', g, 'thread', tid, 'customer', customer, 'subject', subject, "
                  f"'policy', policy, 'received_at', {_iso('rcv')}, 'due_at', {_iso('due')}, "
                  f"'status', CASE WHEN open THEN 'open' ELSE 'responded_late' END, "
                  f"'responded_at', CASE WHEN open THEN NULL ELSE {_iso('resp')} END, "
                  f"'escalations', jsonb_build_array({escalation}), 'acknowledged_by', NULL, "
                  f"'acknowledged_at', NULL, 'clock', 0, 'mailbox', mailbox)")
    message = ("jsonb_build_object('key', {key}, 'folder', {folder}, 'message_id', {mid}, 'kind', {kind}, "
               "'sender', {sender}, 'arrived', {arrived}, 'subject', {subject}, 'name', '', 'size', {size})")
    customer_message = message.format(key="'INBOX:' || g", folder="'INBOX'", mid="tid", kind="'customer'",
                                      sender="customer", arrived=_iso("rcv"), subject="subject", size="3000 + g % 5000")
    team_message = message.format(key="'Sent:' || g", folder="'Sent'", mid="rid", kind="'team'",
                                  sender="'agent@support.example'", arrived=_iso("resp"), subject="'Re: ' || subject",
                                  size="2000 + g % 3000")
    thread_doc = (f"jsonb_build_object('id', tid, 'subject', subject, 'ids', "
                  f"CASE WHEN open THEN jsonb_build_array(tid) ELSE jsonb_build_array(rid, tid) END, "
                  f"'messages', CASE WHEN open THEN jsonb_build_array({customer_message}) "
                  f"ELSE jsonb_build_array({customer_message}, {team_message}) END, "
                  f"'policy', policy, 'due_at', {_iso('due')}, 'breach_ids', jsonb_build_object('0', g), "
                  f"'notices', '[]'::jsonb, 'mailbox', mailbox, 'report', jsonb_build_object('thread', tid, "
                  f"'received', {_iso('rcv')}, 'customer', customer, 'policy', policy, 'breach', g, "
                  f"'responded', CASE WHEN open THEN NULL ELSE {_iso('resp')} END, 'hours', hours, "
                  f"'mailbox', mailbox))")
    return [
        "SET synchronous_commit = off",
        "SET maintenance_work_mem = '256MB'",
        f"""INSERT INTO breaches (id, mailbox, thread, clock, customer, policy, status, received_at, due_at,
                                 responded_at, doc, archived)
            SELECT g, mailbox, tid, 0, customer, policy, CASE WHEN open THEN 'open' ELSE 'responded_late' END,
                   rcv, due, resp, {breach_doc}, archived FROM ({times}) t""",
        f"""INSERT INTO threads (mailbox, id, doc, archived, last_activity, received_at, customer, policy,
                                first_breach, responded_at, response_hours)
            SELECT mailbox, tid, {thread_doc}, archived, COALESCE(resp, rcv), rcv, customer, policy, g, resp, hours
            FROM ({times}) t""",
        f"""INSERT INTO outgoing (kind, mailbox, thread, clock, level, breach, message_id, recipients, delivery, at,
                                 sent_at, attempts, error)
            SELECT 'escalation', mailbox, tid, 0, 0, g, '<esc' || g || '.0@mailesc.example>',
                   ARRAY['manager@example.test'], 'sent', due, due, 0, NULL FROM ({times}) t""",
        f"""INSERT INTO reviews (breach, at, by, action, cause, note)
            SELECT g, due + interval '1 day', 'admin', 'review', (ARRAY{list(CAUSES)})[1 + (g / 3) % 6], NULL
            FROM ({times}) t WHERE g % 3 = 1 AND NOT open""",
        f"SELECT setval('breach_ids', {size})",
    ]


def fill(url: str, password: str, size: int, now: datetime) -> dict:
    """Fill the (schema-only) database; secondary indexes are dropped first and built again after. Seconds."""
    import psycopg

    from mailesc.config import StoreConfig
    args = StoreConfig(path=Path("."), url=url, security="plain").connect_args()
    span = timedelta(days=730)
    start = now - span - timedelta(hours=30)
    timings = {}
    with psycopg.connect(**args, password=password, autocommit=True) as connection:
        indexes = connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname IN (SELECT relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE NOT i.indisprimary AND NOT i.indisunique)").fetchall()
        for name, _ in indexes:
            connection.execute(f"DROP INDEX {name}")
        started = time.perf_counter()
        for statement in fill_sql(size, start, span.total_seconds() / size):
            connection.execute(statement)
        timings["insert_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        for _, definition in indexes:
            connection.execute(definition)
        connection.execute("VACUUM ANALYZE")
        timings["index_analyze_s"] = round(time.perf_counter() - started, 1)
        timings["database_size"] = connection.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    return timings


def check_shape(store: PostgresStore, size: int) -> dict:
    """The generated docs are what mailesc itself writes and reads: a sample of breaches and threads (live and
    archived, open and answered) survives mailesc's reader and writer unchanged."""
    connection = store.connection()
    sample = sorted({1, 2, 3, size // 2, size // 2 + 1, size - 1, size})
    checked = 0
    for breach_id in sample:
        thread, breach = store.find_breach(breach_id)
        raw_breach, raw_thread = connection.execute(
            "SELECT b.doc, t.doc FROM breaches b JOIN threads t ON t.mailbox = b.mailbox AND t.id = b.thread "
            "WHERE b.id = %s", (breach_id,)).fetchone()
        if breach is None or thread is None:
            raise SystemExit(f"generated breach {breach_id} or its thread cannot be read back by PostgresStore")
        if (_as_json(_breach_doc(_breach_from(raw_breach))) != raw_breach
                or _as_json(_thread_doc(_thread_from(raw_thread))) != raw_thread):
            raise SystemExit(f"generated breach {breach_id}: its doc differs from what mailesc writes:\n"
                             f"{raw_breach}\n{_breach_doc(breach)}\n{raw_thread}\n{_thread_doc(thread)}")
        if thread.breach_ids.get(0) != breach.id or breach.mailbox not in MAILBOXES:
            raise SystemExit(f"generated breach {breach_id} does not point at its thread")
        checked += 1
    listed = list(store.select_breaches(BreachFilter(), datetime.now(timezone.utc), REVIEW_PERIOD, limit=3)[0])
    if [b.id for b in listed] != [size - 2, size - 1, size]:
        raise SystemExit(f"breaches list --limit 3 gives {[b.id for b in listed]}")
    counts = connection.execute("SELECT (SELECT count(*) FROM breaches), (SELECT count(*) FROM threads), "
                                "(SELECT count(*) FROM escalations), (SELECT count(*) FROM reviews)").fetchone()
    if counts[0] != size or counts[1] != size or counts[2] != size:
        raise SystemExit(f"generated {counts} rows, not {size}")
    return {"sampled_round_trips": checked, "breaches": counts[0], "threads": counts[1], "escalations": counts[2],
            "reviews": counts[3]}


def _as_json(doc: dict) -> dict:
    """A doc as it comes back from jsonb (keys are text: a thread's breach_ids {0: 1} reads {"0": 1})."""
    return json.loads(json.dumps(doc))


def captured_sql(store: PostgresStore, call) -> list[str]:
    """The statements PostgresStore runs for `call`, with their values inlined (psycopg's ClientCursor.mogrify):
    what a DBA would paste into psql. Taken from the code at hand, so the baseline follows it."""
    import psycopg

    seen = []
    plain_execute, server_execute = psycopg.Connection.execute, psycopg.ServerCursor.execute

    def on_connection(self, query, params=None, **kwargs):
        seen.append((self, query, params))
        return plain_execute(self, query, params, **kwargs)

    def on_server_cursor(self, query, params=None, **kwargs):
        seen.append((self.connection, query, params))
        return server_execute(self, query, params, **kwargs)

    psycopg.Connection.execute, psycopg.ServerCursor.execute = on_connection, on_server_cursor
    try:
        call()
    finally:
        psycopg.Connection.execute, psycopg.ServerCursor.execute = plain_execute, server_execute
    return [psycopg.ClientCursor(connection).mogrify(query, params) for connection, query, params in seen]


def baselines(store: PostgresStore, now: datetime, policies) -> dict[str, list[str]]:
    """Per command, the SQL mailesc runs for it (captured on the empty database: the statements do not depend
    on the rows). `breaches list` reads the reviews of the listed breaches in batches of 2000 ids; the baseline
    reads them in one statement over the same selection."""

    def listing(wanted: BreachFilter) -> list[str]:
        def call():
            rows, _reviews, _recorded = store.select_breaches(wanted, now, REVIEW_PERIOD, None)
            for _ in rows:
                pass
        statements = [s for s in captured_sql(store, call) if "FROM reviews WHERE breach = ANY" not in s]
        main = next(s for s in statements if "FROM breaches b" in s)
        return statements + [f"SELECT breach, at, by, action, cause, note FROM reviews WHERE breach IN "
                             f"(SELECT id FROM ({main}) selected) ORDER BY id"]

    def reporting(by: str | None) -> list[str]:
        return captured_sql(store, lambda: store.count_report(policies, now=now, review_period=REVIEW_PERIOD,
                                                              by=by))

    everything = listing(BreachFilter())
    return {"list": everything, "list --json": everything, "list --csv": everything,
            "list --policy vip --since 90d": listing(BreachFilter(since=now - timedelta(days=90), policy="vip")),
            "report": reporting(None), "report --by mailbox": reporting("mailbox")}


def write_config(folder: Path, url: str) -> Path:
    policies = folder / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "rules.toml").write_text("".join(
        f'[[rule]]\nname = "{name}"\nfirst_response = "4h"\n[[rule.escalate]]\nafter = "0m"\n'
        f'to = ["manager@example.test"]\n\n' for name in POLICIES))
    path = folder / "mailesc.toml"
    path.write_text(f'[store]\npath = "{folder / "var" / "mailesc.json"}"\nurl = "{url}"\n'
                    f'password_env = "MAILESC_DB_PASSWORD"\nsecurity = "plain"\n'
                    f'[policies]\npath = "{policies}"\n[templates]\npath = "{REPO / "templates"}"\n')
    return path


def timed(command: list[str], env: dict, runs: int, budget_s: float) -> dict:
    """Wall seconds of `runs` runs with stdout to /dev/null (stderr kept for errors): median, p95, min. Once the
    runs took `budget_s` together, no more are started (a command that takes minutes at 1M is far over the goal
    after one run; the JSON records how many runs each figure is from)."""
    seconds = []
    for _ in range(runs):
        if sum(seconds) >= budget_s:
            break
        started = time.perf_counter()
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command[-4:])} exited {result.returncode}: {result.stderr[-2000:]}")
    return {"median_s": round(median(seconds), 3), "p95_s": round(percentile(seconds, 0.95), 3),
            "min_s": round(min(seconds), 3), "count": len(seconds), "runs": [round(s, 3) for s in seconds]}


def profile(cli: list[str], args: list[str], env: dict, name: str, top: int = 30) -> Path:
    """One run under cProfile (in the child): the functions by cumulative and by own time."""
    with tempfile.NamedTemporaryFile(suffix=".prof") as out:
        subprocess.run([sys.executable, "-m", "cProfile", "-o", out.name, "-m", "mailesc", *cli[3:], *args],
                       env=env, stdout=subprocess.DEVNULL, check=True)
        text = io.StringIO()
        stats = pstats.Stats(out.name, stream=text)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
    path = REPO / "benchmarks" / "results" / f"profile_pg_lists_{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"mailesc {' '.join(args)}\n{text.getvalue()}")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="breaches (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per command at most (default 5)")
    parser.add_argument("--budget", type=float, default=90,
                        help="no further run of a command once its runs took this many seconds (default 90)")
    parser.add_argument("--quick", action="store_true", help="20,000 breaches, 3 runs")
    parser.add_argument("--only", help="comma-separated command names (default: all): " + ", ".join(COMMANDS))
    parser.add_argument("--profile", default="list --json",
                        help="commands to run once under cProfile (comma-separated names; '' for none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.runs = 20_000, 3
    psql = shutil.which("psql")
    chosen = args.only.split(",") if args.only else list(COMMANDS)
    cluster = PostgresCluster()
    try:
        cluster.start()
        psql = str(cluster.bin_folder / "psql") if (cluster.bin_folder / "psql").exists() else psql
        if psql is None:
            raise SystemExit("psql is not installed (apt-get install postgresql-client)")
        url, password = cluster.new_database("pg_lists")
        now = datetime.now(timezone.utc).replace(microsecond=0)
        with PostgresStore(url, password, security="plain") as store:  # mailesc creates its schema
            sql = baselines(store, now, load_policies(write_config(Path(tempfile.mkdtemp()), url).parent / "policies"))
        print(f"filling {args.size:,} breaches ...", flush=True)
        filled = fill(url, password, args.size, now)
        print(f"filled: {filled}", flush=True)
        with PostgresStore(url, password, security="plain") as store:
            shape = check_shape(store, args.size)
        print(f"read back through mailesc: {shape}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = write_config(folder, url)
            env = {**os.environ, "MAILESC_DB_PASSWORD": password, "PGPASSWORD": password, "PYTHONPATH": str(REPO)}
            cli = [sys.executable, "-m", "mailesc", "-c", str(config)]
            rows = []
            for name in chosen:
                script = folder / f"{name.replace(' ', '_').replace('-', '')}.sql"
                script.write_text(";\n".join(sql[name]) + ";\n")
                baseline = timed([psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null",
                                  "-d", url, "-f", str(script)], env, args.runs, args.budget)
                measured = timed(cli + COMMANDS[name], env, args.runs, args.budget)
                row = {"command": f"mailesc {' '.join(COMMANDS[name])}", "name": name,
                       "median_s": measured["median_s"], "p95_s": measured["p95_s"],
                       "psql_median_s": baseline["median_s"], "psql_p95_s": baseline["p95_s"],
                       "runs_done": measured["count"], "x_psql": round(measured["median_s"] / max(baseline["median_s"], 1e-3), 1),
                       "goal_s": GOAL_S, "over_goal_s": round(max(0.0, measured["p95_s"] - GOAL_S), 3),
                       "mailesc_runs": measured["runs"], "psql_runs": baseline["runs"], "sql": sql[name]}
                rows.append(row)
                print(table([row], ["command", "median_s", "p95_s", "psql_median_s", "psql_p95_s", "x_psql",
                                    "over_goal_s", "runs_done"]).splitlines()[-1], flush=True)
            profiles = {}
            for name in [n for n in (args.profile or "").split(",") if n]:
                profiles[name] = str(profile(cli, COMMANDS[name], env, name.replace(" ", "_").replace("-", ""))
                                     .relative_to(REPO))
        print()
        print(table(rows, ["command", "median_s", "p95_s", "psql_median_s", "psql_p95_s", "x_psql", "over_goal_s",
                       "runs_done"]))
        path = save("pg_lists", {"size": args.size, "runs": args.runs, "goal_s": GOAL_S, "fill": filled,
                                 "shape_check": shape, "postgresql": cluster.admin_sql("SHOW server_version")[0][0],
                                 "results": rows, "profiles": profiles})
        print(f"\nresults: {path}")
    finally:
        cluster.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
