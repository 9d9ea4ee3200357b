"""The portal's trend line (pure SVG text): every point inside the viewBox, x by event
time, the top-up and zero guides where they belong."""

from __future__ import annotations

import re
from decimal import Decimal

from projections.http.charts import HEIGHT, WIDTH, trend_chart


def coordinates(svg: str) -> list[tuple[Decimal, Decimal]]:
    match = re.search(r' points="([^"]*)"', svg)
    assert match is not None
    return [(Decimal(x), Decimal(y)) for x, y in (pair.split(",") for pair in match[1].split())]


def test_nothing_to_draw_is_no_chart() -> None:
    assert trend_chart([], Decimal(100), "x") == ""


def test_points_fill_the_box_by_event_time_and_stay_inside() -> None:
    points = [
        {"at": "2026-11-01T00:00:00+00:00", "value": "100"},
        {"at": "2026-11-01T03:00:00+00:00", "value": "40.5"},
        {"at": "2026-11-01T04:00:00+00:00", "value": "-20"},
    ]
    svg = trend_chart(points, Decimal(100), "credits <since> top-up")
    xy = coordinates(svg)
    assert [x for x, _ in xy] == [Decimal("6.0"), Decimal("222.0"), Decimal("294.0")]
    assert all(0 <= x <= WIDTH and 0 <= y <= HEIGHT for x, y in xy)
    assert xy[0][1] < xy[1][1] < xy[2][1]  # falling values go down the box
    assert 'data-points="3"' in svg and "&lt;since&gt;" in svg  # label escaped
    assert svg.count("<line") == 2  # the top-up line and the zero line (value < 0)
    assert 'stroke="#dc2626" stroke-width="2"' in svg  # below zero now: red


def test_one_point_and_equal_times_still_draw() -> None:
    single = trend_chart([{"at": None, "value": "5"}], None, "x")
    assert coordinates(single) == [(Decimal("294.0"), Decimal("6.0"))]
    same_time = [{"at": "2026-11-01T00:00:00+00:00", "value": v} for v in ("3", "2", "1")]
    xs = [x for x, _ in coordinates(trend_chart(same_time, Decimal(3), "x"))]
    assert xs == [Decimal("6.0"), Decimal("150.0"), Decimal("294.0")]  # evenly spaced
