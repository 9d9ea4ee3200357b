from __future__ import annotations

from datetime import datetime

import pytest

from billing.periods import add_months, period_index, period_of, periods_between
from tests.unit.billing.conftest import t


def test_anchor_day_31_clamps_to_month_end_and_returns() -> None:
    anchor = t(2026, 1, 31, 9)
    starts = [add_months(anchor, k) for k in range(5)]
    assert starts == [
        t(2026, 1, 31, 9),
        t(2026, 2, 28, 9),
        t(2026, 3, 31, 9),
        t(2026, 4, 30, 9),
        t(2026, 5, 31, 9),
    ]
    assert add_months(t(2028, 1, 31), 1) == t(2028, 2, 29)  # leap year


def test_period_of_mid_month_anchor() -> None:
    anchor = t(2026, 1, 15, 10)
    assert period_of(anchor, t(2026, 2, 15, 9, 59)) == (t(2026, 1, 15, 10), t(2026, 2, 15, 10))
    assert period_of(anchor, t(2026, 2, 15, 10)) == (t(2026, 2, 15, 10), t(2026, 3, 15, 10))
    assert period_index(anchor, t(2026, 1, 15, 9)) == -1


def test_period_of_on_clamped_boundaries() -> None:
    anchor = t(2026, 1, 31)
    assert period_of(anchor, t(2026, 2, 27)) == (t(2026, 1, 31), t(2026, 2, 28))
    assert period_of(anchor, t(2026, 3, 30)) == (t(2026, 2, 28), t(2026, 3, 31))


def test_periods_between() -> None:
    anchor = t(2026, 1, 15)
    assert periods_between(anchor, t(2026, 2, 1), t(2026, 3, 1)) == [
        (t(2026, 1, 15), t(2026, 2, 15)),
        (t(2026, 2, 15), t(2026, 3, 15)),
    ]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        period_of(t(2026, 1, 1), datetime(2026, 1, 2))  # noqa: DTZ001
