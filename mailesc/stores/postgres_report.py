"""`mailesc report` counted by PostgreSQL: GROUP BY over the threads' and breaches' columns (schema step 3), so
that a report over a million threads sends back a few rows instead of every record.

It counts exactly what reporting.statistics.count counts in Python (the same Tally and Counts, assembled by the
same code): threads by when the customer wrote, in the period; the first response's business hours as the
engine kept them (the few that lack them, or whose policy is gone, are counted in Python first and handed in);
percentiles from the two values around their position (statistics.interpolate); weeks and weekdays in the zone
of each thread's policy."""

from __future__ import annotations

from datetime import datetime, timedelta

from mailesc.reporting.queries import ThreadFacts
from mailesc.reporting.statistics import (HISTOGRAM_EDGES, NO_BREACH, UNREVIEWED, WEEKDAYS, Counts, Tally,
                                          first_response_hours, interpolate, percentile_position)

RESPONSE_PS, ACKNOWLEDGEMENT_PS = (50, 90, 95), (50, 90)

# each reviewed breach's standing cause (NULL: its latest entry reopened it), from its latest review entry
_CAUSES = ("(SELECT DISTINCT ON (breach) breach, CASE WHEN action = 'review' THEN cause END AS cause "
           "FROM reviews ORDER BY breach, id DESC)")


def count_report(connection, policies, *, now: datetime, review_period: timedelta, since: datetime | None,
                 until: datetime | None, by: str | None) -> Counts:
    """Two scans: one over the period's threads, one over its breaches, each grouped at once by the `--by` key,
    not at all (the totals) and by week or by cause."""
    values = {"since": since, "until": until, "cutoff": now - review_period, "no_breach": NO_BREACH,
              "unreviewed": UNREVIEWED, **_zones(policies), **_hours_counted_here(connection, policies, since, until)}
    threads, weeks, histogram = _threads(connection, by, values)
    breaches, causes = _breaches(connection, by, values)
    totals = _tally(threads.pop(_TOTAL, {}), breaches.pop(_TOTAL, {}))
    groups = {_key(by, key): _tally(threads.get(key, {}), breaches.get(key, {}))
              for key in threads.keys() | breaches.keys()} if by else {}
    return Counts(totals=totals, groups=groups, weeks=weeks, histogram=histogram if totals.responded else [],
                  causes=causes)


_TOTAL = ("total",)
_PERIOD = ("(%(since)s::timestamptz IS NULL OR {column} >= %(since)s) "
           "AND (%(until)s::timestamptz IS NULL OR {column} < %(until)s)")



def _threads_sql(by: str | None, here: bool = True) -> str:
    """Every customer thread of the period: its local time (in its policy's zone), its response hours (and, to
    group by cause, the cause of its first response's breach). `here`: some hours were counted in Python."""
    cause, causes = ("r.cause", f"LEFT JOIN {_CAUSES} r ON r.breach = t.first_breach") if by == "cause" else \
        ("NULL::text", "")
    hours, counted_here = ("COALESCE(here.hours, t.response_hours)", """
    LEFT JOIN unnest(%(here_mailbox)s::text[], %(here_id)s::text[], %(here_hours)s::float8[])
              here(mailbox, id, hours) ON here.mailbox = t.mailbox AND here.id = t.id""") if here else \
        ("t.response_hours", "")
    return f"""
    SELECT t.mailbox, t.policy, t.customer, t.first_breach, t.received_at AT TIME ZONE COALESCE(z.zone, 'UTC') AS local,
           CASE WHEN t.responded_at IS NOT NULL THEN {hours} END AS hours, {cause} AS cause
    FROM threads t
    LEFT JOIN unnest(%(policies)s::text[], %(zones)s::text[]) z(policy, zone) ON z.policy = t.policy{counted_here}
    {causes}
    WHERE t.received_at IS NOT NULL AND {_PERIOD.format(column='t.received_at')}"""


_BREACHES = f"""
    SELECT b.id, b.mailbox, b.policy, b.customer, b.due_at, b.acknowledged_at,
           b.received_at AT TIME ZONE COALESCE(z.zone, 'UTC') AS local, r.cause
    FROM breaches b
    LEFT JOIN unnest(%(policies)s::text[], %(zones)s::text[]) z(policy, zone) ON z.policy = b.policy
    LEFT JOIN {_CAUSES} r ON r.breach = b.id
    WHERE {_PERIOD.format(column='b.received_at')}"""

# the group of a thread and of a breach, for `--by`
_THREAD_KEYS = {"policy": "COALESCE(t.policy, '(none)')", "customer": "t.customer", "mailbox": "t.mailbox",
                "cause": "CASE WHEN t.first_breach IS NULL THEN %(no_breach)s ELSE COALESCE(t.cause, %(unreviewed)s) END",
                "weekday": "extract(isodow FROM t.local)::text", "week": """to_char(t.local, 'IYYY-"W"IW')"""}
_BREACH_KEYS = {"policy": "b.policy", "customer": "b.customer", "mailbox": "b.mailbox",
                "cause": "COALESCE(b.cause, %(unreviewed)s)", "weekday": "extract(isodow FROM b.local)::text",
                "week": """to_char(b.local, 'IYYY-"W"IW')"""}


def _zones(policies) -> dict:
    """Each policy's calendar zone by name, for AT TIME ZONE (a policy not configured: UTC, as in Python)."""
    rules = list(policies.rules)
    return {"policies": [rule.name for rule in rules],
            "zones": [getattr(rule.calendar.zone, "key", None) or "UTC" for rule in rules]}


def _hours_counted_here(connection, policies, since, until) -> dict:
    """The response hours PostgreSQL cannot take from the column: threads answered without kept hours (written
    before they were kept) or whose policy is gone (wall-clock hours), counted in Python as statistics does."""
    known = [rule.name for rule in policies.rules]
    rows = connection.execute(
        f"SELECT mailbox, id, policy, received_at, responded_at FROM threads t WHERE t.received_at IS NOT NULL "
        f"AND t.responded_at IS NOT NULL AND (t.response_hours IS NULL OR t.policy IS NULL "
        f"OR NOT t.policy = ANY(%(known)s)) AND {_PERIOD.format(column='t.received_at')}",
        {"known": known, "since": since, "until": until}).fetchall()
    hours = [first_response_hours(ThreadFacts(received=received, customer="", policy=policy, mailbox=mailbox,
                                              breach=None, responded=responded, hours=None), policies.get(policy))
             for mailbox, _id, policy, received, responded in rows]
    return {"here_mailbox": [row[0] for row in rows], "here_id": [row[1] for row in rows], "here_hours": hours}


def _picks(column: str, ps: tuple[int, ...]) -> str:
    """The two values around each percentile's position in the sorted array `column` (1-based in SQL)."""
    n = f"cardinality({column})"
    return ", ".join(f"{column}[({p} * ({n} - 1)) / 100 + 1], {column}[({p} * ({n} - 1)) / 100 + 2]" for p in ps)


def _threads(connection, by: str | None, values: dict) -> tuple[dict, dict, list[int]]:
    """(the figures of the threads per group and of all (_TOTAL), threads and breached threads per local Monday,
    answered threads per histogram bin)."""
    key = _THREAD_KEYS[by] if by else "NULL::text"
    bins = list(zip(HISTOGRAM_EDGES, HISTOGRAM_EDGES[1:] + (None,)))
    histogram = ", ".join(f"count(*) FILTER (WHERE t.hours >= {low}" + (f" AND t.hours < {high})" if high is not None
                                                                          else ")") for low, high in bins)
    rows = connection.execute(
        f"""SELECT by_key, by_week, k, w, threads, responded, late, breached, cardinality(hs),
                   {_picks('hs', RESPONSE_PS)}, {', '.join(f'h{i}' for i in range(len(bins)))}
            FROM (SELECT grouping(t.k) = 0 AS by_key, grouping(t.w) = 0 AS by_week, t.k, t.w, count(*) AS threads,
                         count(t.hours) AS responded,
                         count(t.hours) FILTER (WHERE t.first_breach IS NOT NULL) AS late,
                         count(*) FILTER (WHERE t.first_breach IS NOT NULL) AS breached,
                         array_agg(t.hours ORDER BY t.hours) FILTER (WHERE t.hours IS NOT NULL) AS hs,
                         {', '.join(f'{count} AS h{i}' for i, count in enumerate(histogram.split(', ')))}
                  FROM (SELECT {key} AS k, (date_trunc('week', t.local))::date AS w, t.*
                        FROM ({_threads_sql(by, bool(values["here_id"]))}) t) t
                  GROUP BY GROUPING SETS ((t.k), (), (t.w))) g""", values).fetchall()
    figures, weeks, counts = {}, {}, []
    for by_key, by_week, k, w, threads, responded, late, breached, n, *rest in rows:
        if by_week:
            weeks[w] = (threads, breached)
            continue
        figures[k if by_key else _TOTAL] = {"threads": threads, "responded": responded, "late": late,
                                            "breached": breached,
                                            "hours": _percentiles(n, rest[:2 * len(RESPONSE_PS)], RESPONSE_PS)}
        if not by_key:
            counts = list(rest[2 * len(RESPONSE_PS):])
    return figures, weeks, counts


def _breaches(connection, by: str | None, values: dict) -> tuple[dict, dict]:
    """(the figures of the breaches per group and of all (_TOTAL), breaches per cause)."""
    key = _BREACH_KEYS[by] if by else "NULL::text"
    # (acknowledged - due) in hours as Python divides timedeltas: whole seconds, one IEEE division
    ack = ("(extract(epoch FROM date_trunc('second', b.acknowledged_at)) "
           "- extract(epoch FROM date_trunc('second', b.due_at)))::float8 / 3600")
    rows = connection.execute(
        f"""SELECT by_key, by_cause, k, c, breaches, acknowledged, unreviewed, overdue, cardinality(acks),
                   {_picks('acks', ACKNOWLEDGEMENT_PS)}
            FROM (SELECT grouping(b.k) = 0 AS by_key, grouping(b.c) = 0 AS by_cause, b.k, b.c,
                         count(*) AS breaches, count(b.acknowledged_at) AS acknowledged,
                         count(*) FILTER (WHERE b.cause IS NULL) AS unreviewed,
                         count(*) FILTER (WHERE b.cause IS NULL AND date_trunc('second', b.due_at) < %(cutoff)s)
                             AS overdue,
                         array_agg({ack} ORDER BY {ack}) FILTER (WHERE b.acknowledged_at IS NOT NULL) AS acks
                  FROM (SELECT {key} AS k, COALESCE(b.cause, %(unreviewed)s) AS c, b.* FROM ({_BREACHES}) b) b
                  GROUP BY GROUPING SETS ((b.k), (), (b.c))) g""", values).fetchall()
    figures, causes = {}, {}
    for by_key, by_cause, k, c, breaches, acknowledged, unreviewed, overdue, n, *picks in rows:
        if by_cause:
            causes[c] = breaches
            continue
        figures[k if by_key else _TOTAL] = {"breaches": breaches, "acknowledged": acknowledged,
                                            "unreviewed": unreviewed, "overdue": overdue,
                                            "acks": _percentiles(n, picks, ACKNOWLEDGEMENT_PS)}
    return figures, causes


def _percentiles(n: int | None, picks: tuple, ps: tuple[int, ...]) -> dict[int, float | None]:
    result = {}
    for number, p in enumerate(ps):
        low, high = picks[2 * number], picks[2 * number + 1]
        j, _ = percentile_position(n or 1, p)
        result[p] = interpolate(n or 0, {j: low, j + 1: high}.__getitem__, p)
    return result


def _tally(threads: dict, breaches: dict) -> Tally:
    return Tally(threads=threads.get("threads", 0), responded=threads.get("responded", 0),
                 responded_late=threads.get("late", 0), breached_threads=threads.get("breached", 0),
                 response_percentiles=threads.get("hours") or {p: None for p in RESPONSE_PS},
                 breaches=breaches.get("breaches", 0), acknowledged=breaches.get("acknowledged", 0),
                 acknowledgement_percentiles=breaches.get("acks") or {p: None for p in ACKNOWLEDGEMENT_PS},
                 unreviewed=breaches.get("unreviewed", 0), overdue_reviews=breaches.get("overdue", 0))


def _key(by: str, key: str) -> str:
    return WEEKDAYS[int(key) - 1] if by == "weekday" else key
