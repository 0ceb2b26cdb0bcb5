"""Inline SVG line charts, drawn on the server: the scorecard ships no JavaScript at all.

Why SVG from Jinja2 and not a chart library: plotly's full bundle inlined is 4.8 MB, and any script can fail in the
reader's browser. An SVG polyline per series with a circle per data point is a few kilobytes, scales with the page
(viewBox, width 100%) so a phone never scrolls sideways, and cannot raise a console error.

Only geometry happens here (where a value sits on the canvas); every value drawn is a mart's number as published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

WIDTH, HEIGHT, PAD_X, PAD_Y = 320, 120, 6, 10


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    day: date
    value: Decimal


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # the stroke's CSS class in the template
    points: tuple[Point, ...]

    @property
    def path(self) -> str:
        """The SVG polyline's `points` attribute."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Chart:
    series: tuple[Series, ...]
    top: Decimal  # the value at the top edge (the highest one drawn)
    bottom: Decimal  # the value at the bottom edge (0, or the lowest one drawn when negative)
    first: date
    last: date
    references: tuple[tuple[float, str], ...] = ()  # horizontal lines: (y, label)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def points(self) -> int:
        return sum(len(s.points) for s in self.series)


def line_chart(series: Sequence[tuple[str, str, Sequence[tuple[date, Decimal | None]]]], first: date, last: date,
               references: Sequence[tuple[Decimal, str]] = ()) -> Chart:
    """Place each series' (day, value) pairs between `first` and `last` on one shared scale; None is a gap (no
    point). `references` are horizontal lines at the given values (a target), kept inside the scale."""
    values = [v for _, _, pairs in series for _, v in pairs if v is not None] + [v for v, _ in references]
    top = max(values, default=Decimal(0))
    bottom = min([Decimal(0), *values])
    span = float(top - bottom) or 1.0
    days = max((last - first).days, 1)

    def x(day: date) -> float:
        return PAD_X + (WIDTH - 2 * PAD_X) * (day - first).days / days

    def y(value: Decimal) -> float:
        return HEIGHT - PAD_Y - (HEIGHT - 2 * PAD_Y) * float(value - bottom) / span

    drawn = tuple(
        Series(name, css, tuple(Point(x(day), y(value), day, value) for day, value in pairs if value is not None))
        for name, css, pairs in series
    )
    return Chart(drawn, top, bottom, first, last, tuple((y(value), label) for value, label in references))
