"""The portal's trend chart: an inline SVG line of the credits or balance since the last
top-up (no script, no library; the page's CSP allows no other kind anyway).

Coordinates are computed with `Decimal` (the values are money or credits, and no float
touches them) and rounded to 0.1 of a viewBox unit for display. The x axis is event
time, so a thinned series (see `projections.read.series`) keeps its true shape; the y axis
spans zero, every point and the last top-up, so the top-up line and the zero line (when
the value went below it) are both visible. The viewBox scales with the page's width
at a fixed aspect ratio, so it fits a 390 px phone without overflow.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

WIDTH, HEIGHT, PAD = 300, 100, 6
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TENTH = Decimal("0.1")


def _seconds(at: str | None) -> int | None:
    """Whole seconds since the epoch of an ISO-8601 time, None if absent or naive."""
    if not at:
        return None
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // timedelta(seconds=1)


def _xs(points: Sequence[Mapping[str, Any]]) -> list[Decimal]:
    """x of each point: by event time when every point has one and they differ,
    else evenly spaced; a single point sits at the right edge (it is "now")."""
    span = Decimal(WIDTH - 2 * PAD)
    if len(points) == 1:
        return [Decimal(WIDTH - PAD)]
    times = [_seconds(p.get("at")) for p in points]
    known = [t for t in times if t is not None]
    if len(known) == len(times) and known[-1] > known[0]:
        first, length = known[0], Decimal(known[-1] - known[0])
        return [PAD + span * (t - first) / length for t in known]
    return [PAD + span * n / (len(points) - 1) for n in range(len(points))]


def _fmt(value: Decimal) -> str:
    return str(value.quantize(_TENTH))


def trend_chart(points: Sequence[Mapping[str, Any]], reference: Decimal | None, label: str) -> str:
    """The SVG of `points` ({at, value}, oldest first), with `reference` (the last
    top-up) as a dashed line. Empty string when there is nothing to draw."""
    if not points:
        return ""
    values = [Decimal(p["value"]) for p in points]
    low = min([*values, Decimal(0)])
    high = max([*values, *([] if reference is None else [reference])])
    if high <= low:
        high = low + 1
    height = Decimal(HEIGHT - 2 * PAD)

    def y(value: Decimal) -> str:
        return _fmt(PAD + height * (high - value) / (high - low))

    xs = _xs(points)
    line = " ".join(f"{_fmt(x)},{y(v)}" for x, v in zip(xs, values, strict=True))
    guides = []
    if reference is not None:
        guides.append(
            f'<line x1="0" x2="{WIDTH}" y1="{y(reference)}" y2="{y(reference)}" '
            'stroke="#9ca3af" stroke-dasharray="4 3" stroke-width="1"/>'
        )
    if low < 0:
        guides.append(
            f'<line x1="0" x2="{WIDTH}" y1="{y(Decimal(0))}" y2="{y(Decimal(0))}" '
            'stroke="#dc2626" stroke-dasharray="2 2" stroke-width="1"/>'
        )
    color = "#059669" if values[-1] > 0 else "#dc2626"
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(label)}" '
        f'data-testid="trend-chart" data-points="{len(points)}">'
        f"{''.join(guides)}"
        f'<polyline data-testid="trend-line" points="{line}" fill="none" stroke="{color}" '
        'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        f'<circle cx="{_fmt(xs[-1])}" cy="{y(values[-1])}" r="3" fill="{color}"/></svg>'
    )
