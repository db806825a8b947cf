"""Small inline SVG charts for the HTML report: stacked bars, lines, a share bar.

Pure functions returning SVG text: no JavaScript, no fonts or files to fetch, so the page
they end up in is one self-contained file that renders offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif\""
AXIS = "#8a94a6"
GRID = "#e6e9ef"
TEXT = "#3c4454"


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of values (None: no data at that point) drawn in one colour."""

    name: str
    values: Sequence[float | None]
    color: str
    width: float = 2.0
    dashed: bool = False
    opacity: float = 1.0


@dataclass(frozen=True, slots=True)
class _Frame:
    """Plot area inside the SVG, and how values map onto it."""

    width: int
    height: int
    left: int = 48
    right: int = 16
    top: int = 16
    bottom: int = 56

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def y(self, value: float, y_max: float) -> float:
        return self.top + self.plot_height * (1 - value / y_max)


def nice_step(value: float) -> float:
    """Return the round step (1, 2 or 5 times a power of ten) at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def count_ticks(highest: float, *, most: int = 5) -> list[float]:
    """Return whole-number ticks from 0 to a round value at or above `highest`."""
    step = max(1.0, nice_step(highest / most))
    top = max(step, math.ceil(highest / step) * step)
    return [step * i for i in range(round(top / step) + 1)]


def _ticks(percent: bool, highest: float) -> list[float]:
    return [0.0, 0.25, 0.5, 0.75, 1.0] if percent else count_ticks(highest)


def _tick_label(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.0%}"
    return f"{value:g}"


def _label_every(labels: Sequence[str], room: float) -> int:
    """Return k such that every k-th x label fits in `room` pixels."""
    label_px = 7 * max((len(label) for label in labels), default=1) + 14
    return max(1, math.ceil(len(labels) * label_px / max(room, 1)))


def _axes(frame: _Frame, labels: Sequence[str], ticks: list[float], *, percent: bool) -> list[str]:
    parts, y_max = [], ticks[-1]
    for tick in ticks:
        y = frame.y(tick, y_max)
        parts.append(
            f'<line x1="{frame.left}" y1="{y:.1f}" x2="{frame.width - frame.right}" '
            f'y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{AXIS}">{_tick_label(tick, percent)}</text>'
        )
    step = frame.plot_width / max(len(labels), 1)
    every = _label_every(labels, frame.plot_width)
    for index, label in enumerate(labels):
        if index % every:
            continue
        x = frame.left + step * (index + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{frame.height - frame.bottom + 16}" text-anchor="middle" '
            f'font-size="11" fill="{AXIS}">{escape(label)}</text>'
        )
    base = frame.height - frame.bottom
    parts.append(
        f'<line x1="{frame.left}" y1="{base}" x2="{frame.width - frame.right}" y2="{base}" '
        f'stroke="{AXIS}" stroke-width="1"/>'
    )
    return parts


_LEGEND_ROW = 18


def _legend_places(series: Sequence[Series], frame: _Frame) -> list[tuple[float, int]]:
    """Return where each legend entry goes: x and row, wrapping at the right edge."""
    places, x, row = [], float(frame.left), 0
    for item in series:
        size = 32 + 7.2 * len(item.name)
        if x > frame.left and x + size > frame.width - frame.right:
            x, row = float(frame.left), row + 1
        places.append((x, row))
        x += size
    return places


def _frame(width: int, height: int, series: Sequence[Series]) -> _Frame:
    """Return the frame of a chart, taller by one row per extra legend row."""
    rows = 1 + max((row for _, row in _legend_places(series, _Frame(width, height))), default=0)
    extra = _LEGEND_ROW * (rows - 1)
    return _Frame(width, height + extra, bottom=56 + extra)


def _legend(series: Sequence[Series], frame: _Frame) -> list[str]:
    parts = []
    first = frame.height - frame.bottom + 42
    for item, (x, row) in zip(series, _legend_places(series, frame), strict=True):
        y = first + row * _LEGEND_ROW
        dash = ' stroke-dasharray="5 3"' if item.dashed else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="{y - 4}" x2="{x + 16:.1f}" y2="{y - 4}" '
            f'stroke="{item.color}" stroke-width="{max(item.width, 3):g}"{dash}/>'
        )
        parts.append(
            f'<text x="{x + 21:.1f}" y="{y}" font-size="12" fill="{TEXT}">'
            f"{escape(item.name)}</text>"
        )
    return parts


def _svg(frame: _Frame, parts: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}" role="img" {FONT}>'
        f"<title>{escape(title)}</title>" + "".join(parts) + "</svg>"
    )


def stacked_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 640,
    height: int = 280,
    percent: bool = False,
) -> str:
    """Return an SVG of one stacked bar per label, the series stacked bottom-up in order."""
    frame = _frame(width, height, series)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    ticks = _ticks(percent, max(totals, default=0))
    y_max = ticks[-1]
    parts = _axes(frame, labels, ticks, percent=percent)
    step = frame.plot_width / max(len(labels), 1)
    bar = min(step * 0.72, 56)
    for index in range(len(labels)):
        x = frame.left + step * index + (step - bar) / 2
        stacked = 0.0
        for item in series:
            value = item.values[index] or 0
            if value <= 0:
                continue
            top = frame.y(stacked + value, y_max)
            bottom = frame.y(stacked, y_max)
            shown = f"{value:.0%}" if percent else f"{value:g}"
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                f'height="{max(bottom - top, 0):.1f}" fill="{item.color}">'
                f"<title>{escape(labels[index])}: {escape(item.name)} {shown}</title></rect>"
            )
            if bottom - top >= 15 and bar >= 22:
                parts.append(
                    f'<text x="{x + bar / 2:.1f}" y="{(top + bottom) / 2 + 4:.1f}" '
                    f'text-anchor="middle" font-size="11" fill="#fff">{shown}</text>'
                )
            stacked += value
    parts += _legend(series, frame)
    return _svg(frame, parts, title)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 640,
    height: int = 280,
    percent: bool = True,
    markers: Sequence[tuple[int, str]] = (),
) -> str:
    """Return an SVG with one line per series; None (no data) leaves that point out.

    `markers` are (label index, text) pairs drawn as labelled vertical lines: events such
    as a new model version.
    """
    frame = _frame(width, height, series)
    highest = max((v for s in series for v in s.values if v is not None), default=0.0)
    ticks = _ticks(percent, highest)
    y_max = ticks[-1]
    parts = _axes(frame, labels, ticks, percent=percent)
    step = frame.plot_width / max(len(labels), 1)
    for number, (index, text) in enumerate(markers):
        x = frame.left + step * (index + 0.5)
        base = frame.height - frame.bottom
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{base}" stroke="{AXIS}" '
            f'stroke-width="1" stroke-dasharray="2 3"/>'
            f'<text x="{x + 4:.1f}" y="{frame.top + 10 + 13 * number}" font-size="10.5" '
            f'fill="{TEXT}" stroke="#fff" stroke-width="3" paint-order="stroke">'
            f"{escape(text)}</text>"
        )
    for item in series:
        points = [
            (frame.left + step * (i + 0.5), frame.y(v, y_max), v)
            for i, v in enumerate(item.values)
            if v is not None
        ]
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        # Buckets without data are left out, not drawn as 0: the line joins known points.
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{item.color}" '
                f'stroke-width="{item.width:g}" stroke-linejoin="round" '
                f'stroke-opacity="{item.opacity:g}"{dash}/>'
            )
        for x, y, value in points:
            shown = f"{value:.0%}" if percent else f"{value:g}"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{item.width + 1.5:g}" '
                f'fill="{item.color}" fill-opacity="{item.opacity:g}">'
                f"<title>{escape(item.name)}: {shown}</title></circle>"
            )
    parts += _legend(series, frame)
    return _svg(frame, parts, title)


def share_bar(
    parts: Sequence[tuple[float, str, str]], *, width: int = 140, height: int = 14
) -> str:
    """Return a small horizontal bar split into shares: (share 0..1, colour, name) each."""
    rects, x = [], 0.0
    for share, color, name in parts:
        if share <= 0:
            continue
        w = width * share
        rects.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{color}">'
            f"<title>{escape(name)} {share:.0%}</title></rect>"
        )
        x += w
    if not rects:
        rects.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="{GRID}"/>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">' + "".join(rects) + "</svg>"
    )
