"""render_html(): the self-contained report page, read back with the standard library's HTML parser."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser

import pytest

from mailesc.reporting.page import _top_causes, format_value, render_html

HOSTILE = "<script>alert(1)</script>"


def metrics(threads: int = 412, breaches: int = 57, **changes) -> dict:
    values = {
        "threads": threads, "responded": threads - 3, "responded_on_time": threads - 31, "responded_late": 28,
        "unanswered": 3, "breaches": breaches, "breach_rate": 0.1375,
        "first_response_p50_hours": 1.75, "first_response_p90_hours": 6.4, "first_response_p95_hours": 12.0,
        "acknowledged": 28, "acknowledgement_p50_hours": 0.5, "acknowledgement_p90_hours": 3.2,
        "unreviewed": 9, "overdue_reviews": 2,
    }
    return {**values, **changes}


def sample_report(**changes) -> dict:
    report = {
        "generated_at": "2026-11-23T13:00:00+00:00",
        "since": "2026-09-01T00:00:00+00:00",
        "until": "2026-11-23T00:00:00+00:00",
        "by": "policy",
        "review_period_days": 30,
        "totals": metrics(),
        "groups": [{"key": "enterprise", **metrics(150, 12, breach_rate=0.08)},
                   {"key": "standard", **metrics(1262, 45, breach_rate=0.174)}],
        "weekly": [{"week": f"2026-W{36 + i}", "start": f"2026-09-{1 + 7 * i:02d}", "threads": 30 + i,
                    "breaches": i % 4, "breach_rate": (i % 4) / (30 + i)} for i in range(4)],
        "response_time_histogram": [{"from_hours": 0.0, "to_hours": 1.0, "threads": 12},
                                    {"from_hours": 1.0, "to_hours": 4.0, "threads": 7},
                                    {"from_hours": 4.0, "to_hours": None, "threads": 2}],
        "causes": [{"cause": "staffing", "breaches": 5}, {"cause": "unreviewed", "breaches": 9}],
    }
    return {**report, **changes}


def empty_report() -> dict:
    return sample_report(since=None, until=None, by=None, groups=[], weekly=[], response_time_histogram=[], causes=[],
                         totals=metrics(0, 0, responded=0, responded_on_time=0, responded_late=0, unanswered=0,
                                        breach_rate=0.0, first_response_p50_hours=None,
                                        first_response_p90_hours=None, first_response_p95_hours=None,
                                        acknowledged=0, acknowledgement_p50_hours=None,
                                        acknowledgement_p90_hours=None, unreviewed=0, overdue_reviews=0))


class Page(HTMLParser):
    """Text of every table cell, per table (by id or class), and the text of each chart section."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.sections: dict[str, list[str]] = {}
        self._table = self._cell = self._section = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id") or attrs.get("class"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "section" and attrs.get("id"):
            self._section = self.sections.setdefault(attrs["id"], [])
        elif tag == "svg" and self._section is not None:
            self._section.append("<svg>")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._section is not None:
            self._section.append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]).split())


def totals_of(page: Page) -> dict[str, str]:
    """Label -> value over both totals tables (their header rows left out)."""
    return {row[0]: row[1] for row in page.tables["totals"] if len(row) == 2 and row[1] != "Value"}


# Charts

@pytest.mark.parametrize("section", ["chart-weekly", "chart-histogram", "chart-causes"])
def test_each_chart_is_inline_svg_when_there_is_data(section):
    page = Page(render_html(sample_report()))
    assert "<svg>" in page.sections[section]
    assert "no data" not in page.text(section)


def test_the_page_has_exactly_three_charts_with_distinct_ids():
    html = render_html(sample_report())
    assert html.count("<svg") == 3
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "inline SVGs must not share element ids"


@pytest.mark.parametrize("section", ["chart-weekly", "chart-histogram", "chart-causes"])
def test_no_data_instead_of_a_chart_when_empty(section):
    page = Page(render_html(empty_report()))
    assert "<svg>" not in page.sections[section]
    assert "no data" in page.text(section)


def test_all_zero_weeks_histogram_and_causes_are_no_data_too():
    report = sample_report(
        weekly=[{"week": "2026-W45", "start": "2026-11-02", "threads": 0, "breaches": 0, "breach_rate": 0.0}],
        response_time_histogram=[{"from_hours": 0.0, "to_hours": None, "threads": 0}],
        causes=[{"cause": "staffing", "breaches": 0}])
    html = render_html(report)
    assert "<svg" not in html
    assert html.count("no data") == 3


def test_threads_without_breaches_still_chart_the_weeks():
    report = sample_report(causes=[], weekly=[
        {"week": "2026-W45", "start": "2026-11-02", "threads": 9, "breaches": 0, "breach_rate": 0.0}])
    page = Page(render_html(report))
    assert "<svg>" in page.sections["chart-weekly"]
    assert "no data" in page.text("chart-causes")


def test_a_year_of_weeks_and_many_causes_render():
    weekly = [{"week": f"2026-W{i + 1:02d}", "start": "2026-01-05", "threads": 40, "breaches": i % 7,
               "breach_rate": (i % 7) / 40} for i in range(52)]
    causes = [{"cause": f"cause number {i} with a rather long explanation", "breaches": 30 - i} for i in range(25)]
    assert render_html(sample_report(weekly=weekly, causes=causes)).count("<svg") == 3


# Escaping and self-containment

def test_hostile_group_keys_are_escaped():
    report = sample_report(by="customer", groups=[{"key": HOSTILE, **metrics()}])
    html = render_html(report)
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html
    assert Page(html).tables["groups"][2][0] == HOSTILE


def test_hostile_causes_in_charts_cannot_break_out_of_the_svg():
    causes = [{"cause": HOSTILE, "breaches": 3}, {"cause": '--><img src=x onerror=alert(1)>', "breaches": 2},
              {"cause": "cost $5 vs $10 & <b>", "breaches": 1}]
    html = render_html(sample_report(causes=causes))
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "<svg>" in Page(html).sections["chart-causes"]


def test_a_hostile_dimension_name_is_escaped():
    html = render_html(sample_report(by=HOSTILE))
    assert "<script" not in html


def test_the_page_references_nothing_remote():
    html = render_html(sample_report())
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", html, re.I)
    assert "@import" not in html
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed"):
        assert tag not in html


# Numbers and header

def test_totals_show_every_metric_formatted():
    totals = totals_of(Page(render_html(sample_report())))
    assert totals["Threads opened by customers"] == "412"
    assert totals["Responded"] == "409"
    assert totals["Responded on time"] == "381"
    assert totals["Responded late"] == "28"
    assert totals["Unanswered"] == "3"
    assert totals["Breaches (first and next responses)"] == "57"
    assert totals["First-response breach rate"] == "13.8%"
    assert totals["First response, median (business hours)"] == "1.8 h"
    assert totals["First response, 90th percentile (business hours)"] == "6.4 h"
    assert totals["First response, 95th percentile (business hours)"] == "12.0 h"
    assert totals["Breaches acknowledged by a manager"] == "28"
    assert totals["Deadline to acknowledgement, median"] == "30 min"
    assert totals["Deadline to acknowledgement, 90th percentile"] == "3.2 h"
    assert totals["Breaches without a root cause"] == "9"
    assert totals["Reviews overdue (open over 30 days)"] == "2"
    assert len(totals) == 15


def test_missing_durations_show_a_dash():
    totals = totals_of(Page(render_html(empty_report())))
    assert totals["First response, median (business hours)"] == "–"
    assert totals["Deadline to acknowledgement, 90th percentile"] == "–"
    assert totals["First-response breach rate"] == "0.0%"


def test_groups_table_has_one_row_per_group_and_names_the_dimension():
    rows = Page(render_html(sample_report())).tables["groups"]
    header, subheader, body = rows[0], rows[1], rows[2:]
    assert header[:2] == ["Policy", "Threads"]  # both span the two header rows
    assert len(subheader) == 14
    assert [row[0] for row in body] == ["enterprise", "standard"]
    assert body[1][:2] == ["standard", "1,262"]
    assert "17.4%" in body[1] and "8.0%" in body[0]
    assert all(len(row) == 16 for row in body)


def test_no_groups_table_when_not_grouped():
    page = Page(render_html(sample_report(by=None, groups=[])))
    assert "groups" not in page.tables


def test_header_shows_period_and_generation_time():
    html = render_html(sample_report())
    assert "2026-09-01 to 2026-11-23" in html
    assert "2026-11-23 13:00 UTC" in html
    open_ended = render_html(sample_report(until=None))
    assert "since 2026-09-01" in open_ended


def test_no_period_is_all_time():
    assert "all time" in render_html(empty_report())


def test_the_dict_is_not_modified():
    report = sample_report()
    before = copy.deepcopy(report)
    render_html(report)
    assert report == before


def test_same_report_same_page():
    assert render_html(sample_report()) == render_html(sample_report())


@pytest.mark.parametrize("value, kind, text", [
    (0, "count", "0"), (12345, "count", "12,345"), (0.175, "percent", "17.5%"), (1.0, "percent", "100.0%"),
    (0.25, "hours", "15 min"), (1.75, "hours", "1.8 h"), (36.0, "hours", "36.0 h"), (None, "hours", "–"),
])
def test_format_value(value, kind, text):
    assert format_value(value, kind) == text


def test_a_fractional_review_period_reads_naturally():
    assert "Reviews overdue (open over 30 days)" in totals_of(Page(render_html(sample_report(review_period_days=30.0))))
    assert "open over 7.5 days" in render_html(sample_report(review_period_days=7.5))


def test_many_causes_fold_into_one_other_bar():
    causes = [{"cause": f"cause {i}", "breaches": 20 - i} for i in range(12)] + [{"cause": "none", "breaches": 0}]
    bars = _top_causes(causes)
    assert bars[:2] == [("cause 0", 20), ("cause 1", 19)]
    assert bars[-1] == ("4 other causes", 12 + 11 + 10 + 9)
    assert len(bars) == 9
    assert _top_causes(causes[:9]) == [(f"cause {i}", 20 - i) for i in range(9)]  # nine fit: nothing folded


def test_period_bounds_keep_a_time_that_is_not_midnight():
    html = render_html(sample_report(since="2026-09-01T08:30:00+00:00", until=None))
    assert "since 2026-09-01 08:30" in html


def test_a_report_missing_optional_parts_still_renders():
    report = {"generated_at": "2026-11-23T13:00:00+00:00", "totals": metrics()}
    html = render_html(report)
    assert "all time" in html and html.count("no data") == 3
