"""The HTML report page behind `mailesc report --html FILE`.

`render_html(report)` takes the dict `mailesc report --json` prints and returns one self-contained
HTML document: inline CSS, three matplotlib charts embedded as inline SVG (breaches per week,
first-response time distribution, breaches by cause), the totals and, when the report is grouped,
one row per group. No JavaScript and no remote resources, so the page opens offline and prints.
Everything from the data reaches the page through a Jinja2 template with autoescaping; chart text
goes through matplotlib's SVG writer, which escapes it too.
"""

from __future__ import annotations

import io
import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup, escape
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from mailesc.reporting.statistics import METRICS

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

TEMPLATE = "page.html.j2"

# One palette for charts and page (the browser test looks for these colours in the screenshot).
THREADS_COLOUR = "#b8c7d9"
BREACHES_COLOUR = "#c8553d"
RATE_COLOUR = "#2d3142"
HISTOGRAM_COLOUR = "#3a7ca5"
CAUSES_COLOUR = "#e09f3e"
INK = "#333333"

BREACH_METRICS = ("breaches", "breach_rate", "acknowledged", "acknowledgement_p50_hours", "acknowledgement_p90_hours",
                  "unreviewed", "overdue_reviews")

# The groups table: a two-row header, metrics under a few headings; (heading or None, [(key, sub-header)]).
GROUP_COLUMNS = (
    (None, (("threads", "Threads"),)),
    ("Responses", (("responded", "answered"), ("responded_on_time", "on\u00a0time"), ("responded_late", "late"),
                   ("unanswered", "no reply"))),
    ("First response (business\u00a0h)", (("first_response_p50_hours", "p50"), ("first_response_p90_hours", "p90"),
                                     ("first_response_p95_hours", "p95"))),
    ("Breaches", (("breaches", "count"), ("breach_rate", "rate"))),
    ("Acknowledged", (("acknowledged", "count"), ("acknowledgement_p50_hours", "p50"),
                      ("acknowledgement_p90_hours", "p90"))),
    ("Reviews", (("unreviewed", "open"), ("overdue_reviews", "overdue"))),
)

BY_LABELS = {"policy": "Policy", "cause": "Cause", "customer": "Customer", "mailbox": "Mailbox", "weekday": "Weekday",
             "week": "Week"}

_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "path",  # glyphs as paths: the page looks the same without the fonts installed
    "svg.hashsalt": "mailesc",  # stable ids, so the same report renders to the same page
    "text.parse_math": False,  # a "$" in a cause is a dollar sign, not mathtext
    "font.size": 10,
    "axes.edgecolor": "#999999",
    "axes.labelcolor": INK,
    "axes.titlesize": 11,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
}

_environment: jinja2.Environment | None = None


def render_html(report: dict) -> str:
    """The whole report as one self-contained HTML document."""
    return _template().render(
        period=_period(report.get("since"), report.get("until")),
        generated_at=_timestamp(report.get("generated_at")),
        highlights=_highlights(report.get("totals") or {}),
        totals=_totals_sections(report.get("totals") or {}, _days(report.get("review_period_days"))),
        review_days=_days(report.get("review_period_days")),
        groups=_group_rows(report.get("groups") or []),
        grouped=bool(report.get("by")),
        by_label=_by_label(report.get("by")),
        column_groups=_column_groups(),
        group_starts=_group_starts(),
        charts=_charts(report),
        accent=BREACHES_COLOUR,
    )


def _by_label(by: object) -> str:
    """The heading of the group column: a known grouping's label, else the key as given ("Group" for none)."""
    label = BY_LABELS.get(by) if isinstance(by, str) else None
    return label or str(by or "Group").capitalize()


def _template() -> jinja2.Template:
    global _environment
    if _environment is None:
        _environment = jinja2.Environment(loader=jinja2.PackageLoader("mailesc", "reporting"), autoescape=True,
                                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return _environment.get_template(TEMPLATE)


# Numbers and dates as people read them

def format_value(value, kind: str) -> str:
    """A metric for the page: counts with thousands separators, shares as percentages, durations in hours."""
    if value is None:
        return "–"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "hours":
        return format_hours(value)
    return f"{value:,}"


def format_hours(hours: float) -> str:
    if hours < 1:
        return f"{round(hours * 60)} min"
    return f"{hours:,.1f} h"


def _timestamp(text: str | None) -> str:
    if not text:
        return "–"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    zone = moment.strftime("%Z") or ""
    return f"{moment:%Y-%m-%d %H:%M} {'UTC' if zone in ('UTC', 'UTC+00:00') else zone}".strip()


def _day(text: str) -> str:
    """A period bound: the date, and the time too unless it is midnight."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return f"{moment:%Y-%m-%d}" if (moment.hour, moment.minute) == (0, 0) else f"{moment:%Y-%m-%d %H:%M}"


def _days(days) -> str | None:
    """30.0 -> "30", 1.5 -> "1.5"."""
    return None if days is None else f"{days:g}"


def _period(since: str | None, until: str | None) -> str:
    if since and until:
        return f"{_day(since)} to {_day(until)}"
    if since:
        return f"since {_day(since)}"
    if until:
        return f"until {_day(until)}"
    return "all time"


# Tables

def _highlights(totals: dict) -> list[tuple[str, str]]:
    keys = ("threads", "breach_rate", "first_response_p50_hours", "unreviewed")
    labels = {"threads": "Threads", "breach_rate": "Breach rate",
              "first_response_p50_hours": "Median first response", "unreviewed": "Unreviewed breaches"}
    kinds = {key: kind for key, _label, kind in METRICS}
    return [(labels[key], format_value(totals.get(key), kinds[key])) for key in keys]


def _totals_sections(totals: dict, review_days: str | None) -> list[tuple[str, list[tuple[str, str]]]]:
    """The totals as two tables side by side: how threads were answered, and what became of the breaches."""
    rows = []
    for key, label, kind in METRICS:
        if key == "overdue_reviews" and review_days is not None:
            label = f"{label} (open over {review_days} days)"
        rows.append((key, label, format_value(totals.get(key), kind)))
    return [("Threads and responses", [(label, value) for key, label, value in rows if key not in BREACH_METRICS]),
            ("Breaches and follow-up", [(label, value) for key, label, value in rows if key in BREACH_METRICS])]


def _column_groups() -> list[tuple[str | None, list[tuple[str, str]]]]:
    """The groups table's header: (heading, [(sub-header, full label for the tooltip)])."""
    labels = {key: label for key, label, _kind in METRICS}
    return [(heading, [(short, labels[key]) for key, short in columns]) for heading, columns in GROUP_COLUMNS]


def _group_starts() -> set[int]:
    """Indexes of the value columns that open a heading (they get a rule on their left)."""
    starts, index = set(), 0
    for _heading, columns in GROUP_COLUMNS:
        starts.add(index)
        index += len(columns)
    return starts


def _group_rows(groups: list[dict]) -> list[tuple[str, list[str]]]:
    kinds = {key: kind for key, _label, kind in METRICS}
    keys = [key for _heading, columns in GROUP_COLUMNS for key, _short in columns]
    return [("(none)" if group.get("key") is None else str(group["key"]),
             [format_value(group.get(key), kinds[key]) for key in keys])
            for group in groups]


# Charts

def _charts(report: dict) -> dict[str, Markup | None]:
    """Each chart as inline SVG markup, or None where there is nothing to draw."""
    with rc_context(_STYLE):
        return {
            "weekly": _weekly_chart(report.get("weekly") or []),
            "histogram": _histogram_chart(report.get("response_time_histogram") or []),
            "causes": _causes_chart(report.get("causes") or []),
        }


def _weekly_chart(weekly: list[dict]) -> Markup | None:
    if not any(week.get("threads") or week.get("breaches") for week in weekly):
        return None
    fig = Figure(figsize=(9.6, 3.4))
    ax = fig.add_subplot()
    positions = range(len(weekly))
    ax.bar(positions, [w.get("threads") or 0 for w in weekly], width=0.75, color=THREADS_COLOUR, label="Threads")
    ax.bar(positions, [w.get("breaches") or 0 for w in weekly], width=0.45, color=BREACHES_COLOUR, label="Breaches")
    ax.set_ylabel("Threads / breaches")
    ax.yaxis.set_major_locator(_counts())
    ax.set_ylim(0, max(max(w.get("threads") or 0, w.get("breaches") or 0) for w in weekly) * 1.08)
    _week_ticks(ax, weekly)
    rate = ax.twinx()
    rate.plot(positions, [_percent_or_gap(w.get("breach_rate")) for w in weekly], color=RATE_COLOUR, marker="o",
              markersize=3.5, linewidth=1.6, label="Breach rate")
    rate.set_ylim(0, max(10, _nice_ceiling(max((_percent(w.get("breach_rate")) or 0) for w in weekly))))
    rate.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    rate.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    rate.set_ylabel("Breach rate")
    _tidy(ax, right=rate)
    handles = ax.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    ax.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", ncols=3, bbox_to_anchor=(0, 1.14))
    return _svg(fig, "weekly", "Threads and breaches per week, with the weekly breach rate")


def _week_ticks(ax, weekly: list[dict]) -> None:
    """Every week gets a tick; at most about 14 get a label (week number over its Monday), the latest always."""
    step = max(1, math.ceil(len(weekly) / 14))
    ax.set_xticks(range(len(weekly)))
    ax.set_xticklabels(_every(step, [_week_label(w) for w in weekly]), fontsize=8.5)
    ax.set_xlim(*_slots(len(weekly), 8))


def _every(step: int, labels: list[str]) -> list[str]:
    """Every step-th label counted back from the last one, the others blank."""
    return [label if (len(labels) - 1 - i) % step == 0 else "" for i, label in enumerate(labels)]


def _week_label(week: dict) -> str:
    name = str(week.get("week") or "")
    start = week.get("start")
    try:
        day = datetime.fromisoformat(start).strftime("%b %d") if start else ""
    except ValueError:
        day = str(start)
    number = name.split("-")[-1] if "-W" in name else name
    return f"{number}\n{day}".strip()


def _slots(count: int, at_least: int) -> tuple[float, float]:
    """Axis limits around bars at 0..count-1 with room for at_least bars, so a few bars stay slim and centred."""
    pad = 0.6 + max(0, at_least - count) / 2
    return -pad, count - 1 + pad


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def _percent_or_gap(share: float | None) -> float:
    """A point of the rate line: a week without a rate is a gap (NaN, as matplotlib draws a None)."""
    return math.nan if share is None else share * 100


def _nice_ceiling(value: float) -> float:
    """A round upper limit a little above a percentage: 10, 20, 25, 40, 50, 75, 100; 105 leaves 100% room."""
    for limit in (10, 20, 25, 40, 50, 75, 100):
        if value * 1.1 <= limit:
            return limit
    return 105


def _histogram_chart(bins: list[dict]) -> Markup | None:
    if not any(b.get("threads") for b in bins):
        return None
    fig = Figure(figsize=(4.8, 3.4))
    ax = fig.add_subplot()
    counts = [b.get("threads") or 0 for b in bins]
    bars = ax.bar(range(len(bins)), counts, width=0.85, color=HISTOGRAM_COLOUR)
    if len(bins) <= 12:  # more bars than that leave no room for a number over each
        ax.bar_label(bars, labels=[str(c) if c else "" for c in counts], fontsize=8, padding=2, color=INK)
    step = max(1, math.ceil(len(bins) / 12))
    crowded = len(bins) > 10
    ax.set_xticks(range(len(bins)))
    ax.set_xticklabels(_every(step, [_bin_label(b) for b in bins]), fontsize=8.5,
                       rotation=40 if crowded else 0, ha="right" if crowded else "center",
                       rotation_mode="anchor" if crowded else "default")
    ax.set_xlim(*_slots(len(bins), 6))
    ax.set_xlabel("Business hours to first response")
    ax.set_ylabel("Threads")
    ax.yaxis.set_major_locator(_counts())
    ax.set_ylim(0, max(counts) * 1.15)
    _tidy(ax)
    return _svg(fig, "histogram", "Answered threads by business hours to the first response")


def _bin_label(b: dict) -> str:
    low = _hours_text(b.get("from_hours") or 0)
    if b.get("to_hours") is None:
        return f"{low}+"
    return f"{low}–{_hours_text(b['to_hours'])}"


def _hours_text(hours: float) -> str:
    return f"{hours:g}"


def _causes_chart(counted: list[dict]) -> Markup | None:
    causes = _top_causes(counted)
    if not causes:
        return None
    fig = Figure(figsize=(4.8, max(3.4, 1.1 + 0.26 * len(causes))))
    ax = fig.add_subplot()
    bars = ax.barh(range(len(causes)), [n for _name, n in causes], height=0.7, color=CAUSES_COLOUR)
    ax.bar_label(bars, fontsize=8, padding=3, color=INK)
    ax.set_yticks(range(len(causes)))
    ax.set_yticklabels([_shorten(name) for name, _n in causes], fontsize=9)
    low, high = _slots(len(causes), 6)
    ax.set_ylim(high, low)  # most first, at the top
    ax.set_xlabel("Breaches")
    ax.xaxis.set_major_locator(_counts())
    ax.set_xlim(0, max(n for _name, n in causes) * 1.15)
    _tidy(ax, grid="x")
    return _svg(fig, "causes", "Breaches by root cause")


def _top_causes(causes: list[dict], shown: int = 8) -> list[tuple[str, int]]:
    """(cause, breaches), most first; past the first `shown`, the rest add up to one "N other causes" bar."""
    ranked = sorted(((str(c.get("cause") or "(no cause)"), c["breaches"]) for c in causes if c.get("breaches")),
                    key=lambda item: -item[1])
    if len(ranked) <= shown + 1:
        return ranked
    rest = ranked[shown:]
    return ranked[:shown] + [(f"{len(rest)} other causes", sum(n for _name, n in rest))]


def _counts() -> MaxNLocator:
    """Ticks for counts: whole numbers in steps of 1, 2, 5 or 10 (times a power of ten)."""
    return MaxNLocator(integer=True, steps=[1, 2, 5, 10])


def _shorten(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _tidy(ax, grid: str = "y", right=None) -> None:
    """Light grid behind the data, no box: only the axes that carry a scale keep their line."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis=grid, color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    if right is not None:
        right.spines["top"].set_visible(False)
        right.spines["left"].set_visible(False)
        right.spines["right"].set_color("#999999")


_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_SIZE = re.compile(r'(<svg[^>]*?)\s(width|height)="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')
_REFERENCE = re.compile(r'(href="#|url\(#)([^")]+)')


def _svg(fig: Figure, name: str, title: str) -> Markup:
    """The figure as inline SVG: no prolog, comments or metadata; ids prefixed so charts don't collide."""
    fig.set_layout_engine("constrained")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = _COMMENT.sub("", _METADATA.sub("", _PROLOG.sub("", buffer.getvalue(), count=1)))
    svg = _SIZE.sub(r"\1", _SIZE.sub(r"\1", svg, count=1), count=1)
    svg = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', svg)
    svg = _REFERENCE.sub(lambda m: f"{m.group(1)}{name}-{m.group(2)}", svg)
    label = escape(title)
    svg = svg.replace("<svg ", f'<svg class="chart-svg" role="img" aria-label="{label}" ', 1)
    return Markup(svg)
