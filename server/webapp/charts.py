"""Server-side SVG charts for the dashboard: bars, stacked bars and a line, no JavaScript.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that says the
numbers in words (screen readers read it), presentation attributes only (the app's
Content-Security-Policy allows no inline styles), and colours from one palette with
at least 4.5:1 contrast against white for text and 3:1 for the marks (WCAG 2.1 1.4.11).
"""

from __future__ import annotations

import hashlib
from html import escape

# Okabe-Ito derived palette, darkened where needed for 3:1 against white.
PALETTE = ("#0b5cad", "#b35900", "#1b7f4c", "#a3195b", "#5a4fa2", "#6b6b00", "#00798c")
TEXT = "#1f2328"
GRID = "#8c959f"


def _fmt(value: float, money: bool) -> str:
    if money:
        return f"${value:,.0f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _svg(width: int, height: int, title: str, desc: str, body: str) -> str:
    key = "c" + hashlib.sha1(title.encode()).hexdigest()[:8]  # ids unique per chart title
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" aria-labelledby="{key}t {key}d" focusable="false">'
        f'<title id="{key}t">{escape(title)}</title><desc id="{key}d">{escape(desc)}</desc>'
        f"{body}</svg>"
    )


def bar_chart(
    title: str, data: list[tuple[str, float]], *, money: bool = False, width: int = 560
) -> str:
    """Horizontal bars, one per (label, value), largest first as given."""
    if not data:
        return _svg(width, 40, title, "No data yet.", _empty(width))
    row, label_w, pad = 26, 190, 8
    height = row * len(data) + 2 * pad
    top = max(v for _, v in data) or 1.0
    plot = width - label_w - 90
    parts: list[str] = []
    for i, (label, value) in enumerate(data):
        y = pad + i * row
        w = max(1.0, plot * value / top)
        colour = PALETTE[0]
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end" font-size="13"'
            f' fill="{TEXT}">{escape(label[:28])}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 8}"'
            f' fill="{colour}"><title>{escape(label)}: {_fmt(value, money)}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" font-size="13"'
            f' fill="{TEXT}">{_fmt(value, money)}</text>'
        )
    desc = "; ".join(f"{label}: {_fmt(v, money)}" for label, v in data)
    return _svg(width, height, title, desc, "".join(parts))


def stacked_bars(
    title: str,
    rows: list[tuple[str, dict[str, float]]],
    series: list[str],
    *,
    money: bool = False,
    width: int = 560,
) -> str:
    """Horizontal stacked bars: one bar per row label, one segment per series."""
    if not rows:
        return _svg(width, 40, title, "No data yet.", _empty(width))
    row, label_w, pad, legend = 28, 190, 8, 26
    height = legend + row * len(rows) + 2 * pad
    top = max(sum(values.values()) for _, values in rows) or 1.0
    plot = width - label_w - 90
    parts: list[str] = []
    x = 4
    for n, name in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16}" y="17" font-size="12" fill="{TEXT}">{escape(name)}</text>'
        )
        x += 22 + 7 * len(name)
    for i, (label, values) in enumerate(rows):
        y = legend + pad + i * row
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 18}" text-anchor="end" font-size="13"'
            f' fill="{TEXT}">{escape(label[:28])}</text>'
        )
        left = float(label_w)
        for n, name in enumerate(series):
            value = values.get(name, 0.0)
            if value <= 0:
                continue
            w = plot * value / top
            parts.append(
                f'<rect x="{left:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}"'
                f' fill="{PALETTE[n % len(PALETTE)]}" stroke="#ffffff" stroke-width="1">'
                f"<title>{escape(label)}, {escape(name)}: {_fmt(value, money)}</title></rect>"
            )
            left += w
        total = sum(values.values())
        parts.append(
            f'<text x="{left + 6:.1f}" y="{y + 18}" font-size="13" fill="{TEXT}">'
            f"{_fmt(total, money)}</text>"
        )
    desc = "; ".join(
        f"{label}: " + ", ".join(f"{name} {_fmt(values.get(name, 0.0), money)}" for name in series)
        for label, values in rows
    )
    return _svg(width, height, title, desc, "".join(parts))


def line_chart(
    title: str, points: list[tuple[str, float]], *, percent: bool = True, width: int = 560
) -> str:
    """A line over labelled points (e.g. months), values 0-100 when ``percent``."""
    if not points:
        return _svg(width, 40, title, "No data yet.", _empty(width))
    height, left, bottom, top_pad = 220, 44, 40, 12
    plot_w, plot_h = width - left - 16, height - bottom - top_pad
    high = 100.0 if percent else (max(v for _, v in points) or 1.0)
    step = plot_w / max(1, len(points) - 1)
    parts: list[str] = []
    unit = "%" if percent else ""
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top_pad + plot_h * (1 - tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 16}" y2="{y:.1f}" stroke="{GRID}"'
            f' stroke-width="0.5"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end"'
            f' font-size="11" fill="{TEXT}">{_fmt(high * tick, False)}{unit}</text>'
        )
    coords = [
        (left + i * step, top_pad + plot_h * (1 - value / high))
        for i, (_, value) in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    parts.append(
        f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2.5"/>'
    )
    every = max(1, -(-len(points) // 7))  # at most 7 labels: they never overlap
    last = len(points) - 1
    for i, ((label, value), (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{PALETTE[0]}"><title>{escape(label)}:'
            f" {_fmt(value, False)}{'%' if percent else ''}</title></circle>"
        )
        # The last point is always labelled; a regular label too near it is left out.
        if i == last or (i % every == 0 and last - i >= every):
            parts.append(
                f'<text x="{x:.1f}" y="{height - 18}" text-anchor="middle" font-size="11"'
                f' fill="{TEXT}">{escape(label)}</text>'
            )
    desc = "; ".join(f"{label}: {_fmt(v, False)}{'%' if percent else ''}" for label, v in points)
    return _svg(width, height, title, desc, "".join(parts))


def _empty(width: int) -> str:
    return (
        f'<text x="{width // 2}" y="24" text-anchor="middle" font-size="13"'
        f' fill="{TEXT}">No data yet</text>'
    )
