"""The dashboard's SVG charts: readable by screen readers and allowed by the app's CSP."""

from __future__ import annotations

import re

import pytest

from server.webapp import charts


def test_a_bar_chart_says_its_numbers_in_its_description() -> None:
    svg = charts.bar_chart("Denials by CARC", [("CARC 29", 6.0), ("CARC 18", 2.0)])
    assert 'role="img"' in svg
    desc = re.search(r"<desc id=\"(\w+)\">([^<]*)</desc>", svg)
    assert desc is not None and desc.group(2) == "CARC 29: 6; CARC 18: 2"
    labelled = re.search(r'aria-labelledby="(\w+) (\w+)"', svg)
    assert labelled is not None and labelled.group(2) == desc.group(1)


def test_each_chart_has_its_own_ids_and_no_inline_style() -> None:
    one = charts.line_chart("Clean-claim rate", [("2026-01", 50.0), ("2026-02", 100.0)])
    two = charts.stacked_bars(
        "Dollars by payer", [("Medicare", {"Released": 10.0, "Adjudicated": 5.0})],
        ["Released", "Adjudicated"], money=True,
    )  # fmt: skip
    ids = re.findall(r' id="(\w+)"', one + two)
    assert len(ids) == len(set(ids)) == 4
    assert "style=" not in one + two  # the CSP allows no inline styles
    assert "Medicare: Released $10, Adjudicated $5" in two


def test_a_chart_without_data_says_so() -> None:
    assert "No data yet" in charts.bar_chart("Top edits", [])


@pytest.mark.parametrize("months", [2, 7, 13, 14, 15, 22])
def test_month_labels_are_thinned_so_they_never_overlap(months: int) -> None:
    points = [(f"{2025 + m // 12}-{m % 12 + 1:02d}", 90.0) for m in range(months)]
    svg = charts.line_chart("Clean-claim rate", points)
    found = re.findall(
        r'<text x="([\d.]+)" y="\d+" text-anchor="middle" font-size="11" fill="#1f2328">([^<]+)<',
        svg,
    )
    labels = [label for _, label in found]
    assert 2 <= len(labels) <= 8 and labels[-1] == points[-1][0]
    # A 7-character label at 11 px is ~45 px wide: centres closer than that would overlap.
    xs = [float(x) for x, _ in found]
    assert all(b - a >= 50 for a, b in zip(xs, xs[1:], strict=False)), xs
