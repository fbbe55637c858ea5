"""The HTML report page in a real headless chromium: the DOM it builds and a screenshot of it.

Run as a script to write a preview of the page from the same test data:
    python3 -m tests.integration.test_report_browser docs/report-sample.png
"""

from __future__ import annotations

import re
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy
import pytest
from matplotlib import image

from mailesc.reporting import page as report_page
from mailesc.reporting.page import render_html
from tests.integration.browser import dump_dom, find_chromium, screenshot

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed: apt-get install chromium")]

WIDTH, HEIGHT = 1200, 2000


def metrics(threads: int, breaches: int, late: int, p50: float | None, ack: int) -> dict:
    answered = threads - max(1, threads // 60)
    return {
        "threads": threads, "responded": answered, "responded_on_time": answered - late, "responded_late": late,
        "unanswered": threads - answered, "breaches": breaches, "breach_rate": round(late / threads, 4),
        "first_response_p50_hours": p50, "first_response_p90_hours": p50 and p50 * 3.4,
        "first_response_p95_hours": p50 and p50 * 5.1, "acknowledged": ack,
        "acknowledgement_p50_hours": 0.6 if ack else None, "acknowledgement_p90_hours": 4.25 if ack else None,
        "unreviewed": breaches - ack, "overdue_reviews": (breaches - ack) // 3,
    }


def realistic_report() -> dict:
    """Twelve weeks of a support mailbox grouped by policy, with a hostile customer-chosen group key."""
    threads = [38, 44, 41, 52, 47, 39, 61, 58, 45, 43, 50, 36]
    late = [3, 5, 2, 9, 6, 1, 14, 11, 4, 3, 6, 2]
    first_monday = date(2026, 8, 31)
    weekly = []
    for i, (count, breaches) in enumerate(zip(threads, late)):
        monday = first_monday + timedelta(weeks=i)
        year, week, _ = monday.isocalendar()
        weekly.append({"week": f"{year}-W{week:02d}", "start": monday.isoformat(), "threads": count,
                       "breaches": breaches, "breach_rate": round(breaches / count, 4)})
    edges = [0, 0.5, 1, 2, 4, 8, 16, 24, 48, None]  # as mailesc.reporting.statistics bins them
    counts = [141, 96, 88, 71, 53, 34, 19, 12, 5]
    histogram = [{"from_hours": float(low), "to_hours": None if high is None else float(high), "threads": n}
                 for low, high, n in zip(edges, edges[1:], counts)]
    causes = [("staffing", 21), ("unreviewed", 17), ("weekend backlog", 12), ("misrouted to the sales mailbox", 9),
              ("waiting on engineering", 6), ("tooling outage", 4), ("<b>customer</b> & vendor", 2)]
    return {
        "generated_at": "2026-11-23T13:00:00+00:00",
        "since": "2026-08-31T00:00:00+00:00",
        "until": "2026-11-23T00:00:00+00:00",
        "by": "policy",
        "review_period_days": 30,
        "totals": metrics(sum(threads), 71, sum(late), 1.6, 54),
        "groups": [{"key": "enterprise", **metrics(148, 14, 12, 0.8, 13)},
                   {"key": "standard", **metrics(362, 49, 44, 2.1, 35)},
                   {"key": "free-tier", **metrics(44, 8, 10, 5.5, 6)},
                   {"key": "<script>alert(1)</script>", **metrics(60, 0, 0, None, 0)}],
        "weekly": weekly,
        "response_time_histogram": histogram,
        "causes": [{"cause": cause, "breaches": n} for cause, n in causes],
    }


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(realistic_report()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pixels(page) -> numpy.ndarray:
    png = screenshot(page, page.with_suffix(".png"), width=WIDTH, height=HEIGHT)
    return image.imread(png)[:, :, :3]


def test_the_dom_has_the_three_charts(page):
    dom = dump_dom(page)
    for section in ("chart-weekly", "chart-histogram", "chart-causes"):
        match = re.search(rf'<section[^>]*id="{section}".*?</section>', dom, re.S)
        assert match, f"{section} is missing from the DOM"
        assert "<svg" in match.group(0) and "<path" in match.group(0)
        assert "no data" not in match.group(0)
    assert dom.count("<svg") == 3


def test_the_dom_has_the_tables_with_escaped_keys(page):
    dom = dump_dom(page)
    assert dom.count('<table class="totals"') == 2
    assert '<table class="groups" id="groups">' in dom
    totals = realistic_report()["totals"]
    for text in ("Threads opened by customers", f"{totals['threads']}", f"{totals['breach_rate']:.1%}",
                 "enterprise", "free-tier"):
        assert text in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script" not in dom  # the hostile key stayed text: chromium built no element from it


def test_the_screenshot_is_not_blank(pixels):
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    not_white = (pixels < 0.94).any(axis=2).mean()
    assert not_white > 0.08, f"only {not_white:.1%} of the screenshot is not white"


@pytest.mark.parametrize("colour", ["THREADS_COLOUR", "BREACHES_COLOUR", "HISTOGRAM_COLOUR", "CAUSES_COLOUR"])
def test_the_screenshot_shows_each_chart_colour(pixels, colour):
    rgb = numpy.array([int(getattr(report_page, colour)[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    matching = (numpy.abs(pixels - rgb) < 0.03).all(axis=2).sum()
    assert matching > 1500, f"{colour} covers only {matching} pixels"


def write_preview(png_path: str) -> None:
    """The test page as a PNG, trimmed below the footer."""
    html = Path(png_path).with_suffix(".html")
    html.write_text(render_html(realistic_report()), encoding="utf-8")
    try:
        screenshot(html, png_path, width=WIDTH, height=2400)
    finally:
        html.unlink()
    picture = image.imread(png_path)
    used = numpy.nonzero((picture[:, :, :3] < 0.98).any(axis=(1, 2)))[0]
    image.imsave(png_path, picture[: used[-1] + 40])


if __name__ == "__main__":
    write_preview(sys.argv[1] if len(sys.argv) > 1 else "docs/report-sample.png")
