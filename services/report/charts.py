"""Small inline SVG charts: line, histogram and horizontal bar charts, no JavaScript.

Pure functions from numbers to an ``<svg>`` string, so a report is one self-contained HTML file
that opens anywhere (and in a headless browser in the tests). Every chart carries
``data-plot="<id>"``; every drawn series ``data-series="<name>"``; hovering a mark shows its
value through an SVG ``<title>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH = 860
HEIGHT = 320
MARGIN_LEFT = 70
MARGIN_RIGHT = 20
MARGIN_TOP = 36
MARGIN_BOTTOM = 48
#: Colour-blind-safe palette (Okabe-Ito), used in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
GOOD = "#009E73"
BAD = "#D55E00"
MUTED = "#9aa5b1"


@dataclass(frozen=True)
class Series:
    """One named line or group of bars."""

    name: str
    points: Sequence[tuple[float, float]] = ()
    colour: str = PALETTE[0]


@dataclass(frozen=True)
class Band:
    """A shaded x range (e.g. an episode), labelled on hover."""

    x0: float
    x1: float
    label: str
    colour: str = GOOD


@dataclass(frozen=True)
class Group:
    """Values of one kind for a histogram or a bar chart."""

    name: str
    values: Sequence[float]
    colour: str = PALETTE[0]


@dataclass
class _Frame:
    """Plot area and the data ranges mapped onto it."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    width: int = WIDTH
    height: int = HEIGHT
    parts: list[str] = field(default_factory=list)

    @property
    def left(self) -> float:
        return MARGIN_LEFT

    @property
    def right(self) -> float:
        return self.width - MARGIN_RIGHT

    @property
    def top(self) -> float:
        return MARGIN_TOP

    @property
    def bottom(self) -> float:
        return self.height - MARGIN_BOTTOM

    def x(self, value: float) -> float:
        span = self.x_max - self.x_min or 1.0
        return self.left + (value - self.x_min) / span * (self.right - self.left)

    def y(self, value: float) -> float:
        span = self.y_max - self.y_min or 1.0
        return self.bottom - (value - self.y_min) / span * (self.bottom - self.top)


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _open(plot_id: str, title: str, frame: _Frame) -> list[str]:
    return [
        f'<svg class="plot" data-plot="{escape(plot_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {frame.width} {frame.height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{frame.left}" y="20" class="chart-title">{escape(title)}</text>',
    ]


def _axes(frame: _Frame, x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str,
          y_label: str, *, x_tick_labels: bool = True) -> list[str]:
    parts = ['<g class="axes" stroke="#555" font-size="11">']
    for tick in y_ticks:
        y = frame.y(tick)
        parts.append(f'<line x1="{frame.left}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e3e7eb"/>')
        parts.append(f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'stroke="none" fill="#333">{_fmt(tick)}</text>')
    if x_tick_labels:
        for tick in x_ticks:
            x = frame.x(tick)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.bottom}" '
                         f'y2="{frame.bottom + 4}"/>')
            parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 16}" text-anchor="middle" '
                         f'stroke="none" fill="#333">{_fmt(tick)}</text>')
    parts.append(f'<line x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" '
                 f'y2="{frame.bottom}"/>')
    parts.append(f'<line x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" '
                 f'y2="{frame.bottom}"/>')
    parts.append(f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.height - 8}" '
                 f'text-anchor="middle" stroke="none" fill="#333">{escape(x_label)}</text>')
    mid_y = (frame.top + frame.bottom) / 2
    parts.append(f'<text x="16" y="{mid_y:.1f}" text-anchor="middle" stroke="none" '
                 f'fill="#333" transform="rotate(-90 16 {mid_y:.1f})">{escape(y_label)}</text>')
    parts.append("</g>")
    return parts


def _legend(frame: _Frame, entries: Sequence[tuple[str, str]]) -> list[str]:
    parts = ['<g class="legend" font-size="11">']
    x = frame.right
    for name, colour in reversed(entries):
        width = 18 + 6.5 * len(name)
        x -= width + 10
        parts.append(f'<rect x="{x:.1f}" y="10" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16:.1f}" y="20" fill="#333">{escape(name)}</text>')
    parts.append("</g>")
    return parts


def _empty(plot_id: str, title: str, message: str) -> str:
    frame = _Frame(0, 1, 0, 1, height=120)
    parts = _open(plot_id, title, frame)
    parts.append(f'<text class="no-data" x="{WIDTH / 2}" y="70" text-anchor="middle" '
                 f'fill="#666">{escape(message)}</text></svg>')
    return "".join(parts)


def line_chart(plot_id: str, title: str, series: Sequence[Series], *, x_label: str,
               y_label: str, bands: Sequence[Band] = (), zero_line: bool = True,
               empty: str = "no data") -> str:
    """Lines (one polyline per series, points sorted by x), optional shaded x ranges."""
    points = [p for s in series for p in s.points]
    if not points:
        return _empty(plot_id, title, empty)
    xs = [p[0] for p in points] + [b.x0 for b in bands] + [b.x1 for b in bands]
    ys = [p[1] for p in points] + ([0.0] if zero_line else [])
    x_min, x_max = min(xs), max(xs)
    x_ticks = [t for t in nice_ticks(x_min, x_max) if x_min <= t <= x_max]
    y_ticks = nice_ticks(min(ys), max(ys))
    frame = _Frame(x_min, x_max if x_max > x_min else x_min + 1, y_ticks[0], y_ticks[-1])
    parts = _open(plot_id, title, frame)
    for band in bands:
        x0, x1 = frame.x(band.x0), frame.x(band.x1)
        parts.append(
            f'<rect class="band" x="{x0:.1f}" y="{frame.top}" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{frame.bottom - frame.top}" fill="{band.colour}" fill-opacity="0.15">'
            f"<title>{escape(band.label)}</title></rect>",
        )
    parts += _axes(frame, x_ticks, y_ticks, x_label, y_label)
    if zero_line and y_ticks[0] < 0 < y_ticks[-1]:
        y0 = frame.y(0)
        parts.append(f'<line x1="{frame.left}" x2="{frame.right}" y1="{y0:.1f}" y2="{y0:.1f}" '
                     f'stroke="#333" stroke-dasharray="4 3"/>')
    for s in series:
        if not s.points:
            continue
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in sorted(s.points))
        parts.append(
            f'<polyline class="series" data-series="{escape(s.name)}" fill="none" '
            f'stroke="{s.colour}" stroke-width="1.5" points="{coords}">'
            f"<title>{escape(s.name)}</title></polyline>",
        )
    parts += _legend(frame, [(s.name, s.colour) for s in series if s.points])
    parts.append("</svg>")
    return "".join(parts)


def histogram(plot_id: str, title: str, groups: Sequence[Group], edges: Sequence[float], *,
              x_label: str, y_label: str = "count", stacked: bool = True,
              empty: str = "no data") -> str:
    """Counts per bin [edges[i], edges[i+1]); the last bin also holds its upper edge.

    ``stacked``: groups piled up (parts of a whole); otherwise drawn over each other, first
    group behind (a subset in front of its whole).
    """
    if len(edges) < 2 or not any(g.values for g in groups):
        return _empty(plot_id, title, empty)
    counts = [bin_counts(g.values, edges) for g in groups]
    heights = ([sum(c[i] for c in counts) for i in range(len(edges) - 1)] if stacked
               else [max(c[i] for c in counts) for i in range(len(edges) - 1)])
    y_ticks = nice_ticks(0, max(1, max(heights)))
    frame = _Frame(edges[0], edges[-1], 0, y_ticks[-1])
    parts = _open(plot_id, title, frame)
    x_ticks = nice_ticks(edges[0], edges[-1])
    x_ticks = [t for t in x_ticks if edges[0] <= t <= edges[-1]]
    parts += _axes(frame, x_ticks, y_ticks, x_label, y_label)
    base = [0] * (len(edges) - 1)
    for group, group_counts in zip(groups, counts, strict=True):
        parts.append(f'<g class="series" data-series="{escape(group.name)}">')
        for i, count in enumerate(group_counts):
            if not count:
                continue
            low = base[i] if stacked else 0
            x0, x1 = frame.x(edges[i]), frame.x(edges[i + 1])
            y_top, y_bottom = frame.y(low + count), frame.y(low)
            parts.append(
                f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{y_top:.1f}" '
                f'width="{max(1.0, x1 - x0 - 1):.1f}" height="{y_bottom - y_top:.1f}" '
                f'fill="{group.colour}" fill-opacity="{0.9 if stacked else 0.75}">'
                f"<title>{escape(group.name)}: {count} in [{_fmt(edges[i])}, "
                f"{_fmt(edges[i + 1])})</title></rect>",
            )
            if stacked:
                base[i] += count
        parts.append("</g>")
    parts += _legend(frame, [(g.name, g.colour) for g in groups])
    parts.append("</svg>")
    return "".join(parts)


def bin_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for value in values:
        if value < edges[0] or value > edges[-1]:
            continue
        index = len(edges) - 2
        for i in range(len(edges) - 1):
            if value < edges[i + 1]:
                index = i
                break
        counts[index] += 1
    return counts


def even_edges(values: Sequence[float], bins: int = 30) -> list[float]:
    """``bins`` equal bins spanning the values (a unit-wide one when they are all equal)."""
    low, high = min(values), max(values)
    if high <= low:
        return [low - 0.5, low + 0.5]
    step = (high - low) / bins
    return [low + i * step for i in range(bins)] + [high]


def bar_chart(plot_id: str, title: str, categories: Sequence[str], groups: Sequence[Group], *,
              x_label: str, empty: str = "no data") -> str:
    """Horizontal grouped bars: one row per category, one bar per group in each row."""
    if not categories:
        return _empty(plot_id, title, empty)
    values = [v for g in groups for v in g.values]
    x_ticks = nice_ticks(min(0.0, *values), max(0.0, *values))
    row_h = 14 * len(groups) + 12
    left = max(MARGIN_LEFT, 10 + 6.5 * max(len(c) for c in categories))
    height = int(MARGIN_TOP + MARGIN_BOTTOM + row_h * len(categories))
    frame = _Frame(x_ticks[0], x_ticks[-1], 0, 1, height=height)
    parts = _open(plot_id, title, frame)
    # the category labels need room on the left: shift the plot area
    frame_left = left

    def x_of(value: float) -> float:
        span = frame.x_max - frame.x_min or 1.0
        return frame_left + (value - frame.x_min) / span * (frame.right - frame_left)

    parts.append('<g class="axes" stroke="#555" font-size="11">')
    for tick in x_ticks:
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.bottom}" '
                     f'stroke="#e3e7eb"/>')
        parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 16}" text-anchor="middle" '
                     f'stroke="none" fill="#333">{_fmt(tick)}</text>')
    parts.append(f'<line x1="{x_of(0):.1f}" x2="{x_of(0):.1f}" y1="{frame.top}" '
                 f'y2="{frame.bottom}"/>')
    parts.append(f'<text x="{(frame_left + frame.right) / 2:.1f}" y="{frame.height - 8}" '
                 f'text-anchor="middle" stroke="none" fill="#333">{escape(x_label)}</text>')
    for row, category in enumerate(categories):
        y = frame.top + row * row_h + row_h / 2 + 4
        parts.append(f'<text x="{frame_left - 6:.1f}" y="{y:.1f}" text-anchor="end" '
                     f'stroke="none" fill="#333">{escape(category)}</text>')
    parts.append("</g>")
    for g_index, group in enumerate(groups):
        parts.append(f'<g class="series" data-series="{escape(group.name)}">')
        for row, value in enumerate(group.values):
            y = frame.top + row * row_h + 6 + 14 * g_index
            x0, x1 = sorted((x_of(0), x_of(value)))
            parts.append(
                f'<rect class="bar" x="{x0:.1f}" y="{y:.1f}" width="{max(1.0, x1 - x0):.1f}" '
                f'height="12" fill="{group.colour}"><title>{escape(categories[row])}, '
                f"{escape(group.name)}: {value:,.2f}</title></rect>",
            )
        parts.append("</g>")
    parts += _legend(frame, [(g.name, g.colour) for g in groups])
    parts.append("</svg>")
    return "".join(parts)
