"""Pure planning of a period close: months, grace, order, the usage read rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.events import PeriodClosed
from processors.close.plan import (
    ACCOUNT,
    USAGE,
    CloseHistory,
    ClosePlanError,
    Month,
    PeriodNotClosable,
    build_plan,
    check_closable,
    parse_duration,
    usage_starts,
    window_start,
)


def closed(month: str, usage: dict[int, int]) -> tuple[str, PeriodClosed]:
    marks = {USAGE: usage, ACCOUNT: {0: 5, 1: 5}}
    return month, PeriodClosed(month, marks, datetime(2025, 1, 1, tzinfo=UTC), 1)


def test_month_parse_shift_bounds() -> None:
    m = Month.parse("2025-01")
    assert (m.start, m.end) == (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    assert str(m.shift(-1)) == "2024-12" and str(m.shift(13)) == "2026-02"
    for bad in ("2025-13", "2025-1", "25-01", "march"):
        with pytest.raises(ClosePlanError):
            Month.parse(bad)


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration("0") == timedelta(0)
    for bad in ("1x", "h", "1h 30m", "-1d"):
        with pytest.raises(ClosePlanError):
            parse_duration(bad)


def test_grace_refuses_until_month_end_plus_grace() -> None:
    m = Month.parse("2025-03")
    due = datetime(2025, 4, 2, tzinfo=UTC)
    with pytest.raises(PeriodNotClosable, match="cannot be closed yet"):
        check_closable(m, timedelta(days=1), due - timedelta(seconds=1))
    check_closable(m, timedelta(days=1), due)


def test_history_order_rules() -> None:
    h = CloseHistory.from_records([closed("2025-02", {0: 10}), closed("2025-03", {0: 20})])
    assert h.first_closed == Month(2025, 2) and h.last_closed == Month(2025, 3)
    h.check_order(Month(2025, 4))  # next one
    h.check_order(Month(2025, 3))  # re-run of a recorded close
    with pytest.raises(ClosePlanError, match="in order"):
        h.check_order(Month(2025, 1))
    with pytest.raises(ClosePlanError, match="without gaps"):
        h.check_order(Month(2025, 6))
    assert h.previous(Month(2025, 4)) is h.closed[Month(2025, 3)]
    assert h.next_to_close(None) == Month(2025, 4)
    assert CloseHistory().next_to_close(Month(2024, 7)) == Month(2024, 7)


def test_plan_records_are_kept_apart_and_later_records_win() -> None:
    plan = ("2025-04/plan", closed("2025-04", {0: 30})[1])
    h = CloseHistory.from_records([closed("2025-03", {0: 1}), plan, closed("2025-03", {0: 2})])
    assert Month(2025, 4) in h.planned and Month(2025, 4) not in h.closed
    assert h.closed[Month(2025, 3)].watermarks[USAGE] == {0: 2}


def test_window_first_close_reaches_back_one_month() -> None:
    horizon, adjust = window_start(Month(2025, 3), CloseHistory(), lookback=1)
    assert horizon == datetime(2025, 2, 1, tzinfo=UTC) and adjust is None


def test_window_later_close_covers_adjustable_periods() -> None:
    h = CloseHistory.from_records([closed("2025-02", {0: 1}), closed("2025-03", {0: 2})])
    horizon, adjust = window_start(Month(2025, 4), h, lookback=1)
    # periods ending in March (adjustable) start in February at the earliest
    assert adjust == Month(2025, 3) and horizon == datetime(2025, 2, 1, tzinfo=UTC)
    horizon, adjust = window_start(Month(2025, 4), h, lookback=5)
    assert adjust == Month(2025, 2)  # never before the first close
    assert horizon == datetime(2025, 1, 1, tzinfo=UTC)


def test_usage_start_is_min_of_time_and_previous_watermark() -> None:
    starts = usage_starts(
        by_time={0: 40, 1: -1, 2: 70},
        prev={0: 55, 1: 30, 2: 60},
        low={},
        ends={0: 90, 1: 35, 2: 80},
    )
    # late arrivals after the previous close (p2: 60 < 70) are never skipped;
    # p1 has nothing by time: it starts at the previous watermark
    assert starts == {0: 40, 1: 30, 2: 60}


def test_usage_start_first_close_and_clamps() -> None:
    assert usage_starts(by_time={0: -1, 1: 120}, prev=None, low={}, ends={0: 10, 1: 100}) == {
        0: 10,
        1: 100,
    }


def test_usage_start_refuses_a_hole_left_by_retention() -> None:
    with pytest.raises(ClosePlanError, match="retention"):
        usage_starts(by_time={0: 50}, prev={0: 20}, low={0: 30}, ends={0: 90})


def test_build_plan_wires_previous_watermarks() -> None:
    h = CloseHistory.from_records([closed("2025-02", {0: 12, 1: 7})])
    plan = build_plan(
        month=Month(2025, 3),
        history=h,
        ends={USAGE: {0: 20, 1: 9}, ACCOUNT: {0: 6, 1: 6}},
        low={USAGE: {0: 0, 1: 0}, ACCOUNT: {0: 0, 1: 0}},
        by_time={0: 15, 1: 2},
        lookback=1,
    )
    assert plan.usage_starts == {0: 12, 1: 2}
    assert plan.prev[USAGE] == {0: 12, 1: 7}
    assert plan.adjust_from == Month(2025, 2)
    assert plan.account_starts == {0: 0, 1: 0}
