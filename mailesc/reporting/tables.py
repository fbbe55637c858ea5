"""`mailesc report` for people and spreadsheets: the same numbers as its JSON, as tables and CSV."""

from __future__ import annotations

import csv
from typing import IO

from mailesc.reporting import statistics
from mailesc.terminal import print_table

METRICS = tuple(key for key, _label, _kind in statistics.METRICS)
HEADINGS = ("THREADS", "ANSWERED", "ON TIME", "LATE", "UNANSWERED", "BREACHES", "RATE", "P50 H", "P90 H", "P95 H",
            "ACKED", "ACK P50 H", "ACK P90 H", "UNREVIEWED", "OVERDUE")
TOTAL = "(total)"


def report_rows(report: dict) -> list[tuple[str, dict]]:
    """(group, metrics) for every group, then the totals."""
    return [(group["key"], group) for group in report["groups"]] + [(TOTAL, report["totals"])]


def write_report_csv(out: IO[str], report: dict) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((report["by"] or "group",) + METRICS)
    for key, metrics in report_rows(report):
        writer.writerow((key,) + tuple("" if metrics[m] is None else metrics[m] for m in METRICS))


def cell(metric: str, value) -> str:
    if value is None:
        return "-"
    if metric == "breach_rate":
        return f"{value * 100:.1f}%"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_report(report: dict) -> None:
    period = f"{report['since'] or 'the beginning'} to {report['until'] or report['generated_at']}"
    rows = [(key,) + tuple(cell(m, metrics[m]) for m in METRICS) for key, metrics in report_rows(report)]
    columns = ((report["by"] or "").upper() or "GROUP",) + HEADINGS
    print_table(columns, rows, lambda rows: _plain([columns, *rows]), title=f"Threads opened from {period}",
                numbers_from=1)
    print(f"(times in business hours of each policy's calendar; reviews overdue after "
          f"{report['review_period_days']:g} days)")


def _plain(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(value.rjust(w) if i else value.ljust(w) for i, (value, w) in enumerate(zip(row, widths)))
            for row in rows]
