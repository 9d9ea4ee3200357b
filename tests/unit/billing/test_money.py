from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import CurrencyError
from billing.money import Money, allocate, currency

USD = currency("USD")
JPY = currency("JPY")


def test_half_up_to_minor_unit() -> None:
    assert USD.round(Decimal("0.005")) == Decimal("0.01")
    assert USD.round(Decimal("0.0049")) == Decimal("0.00")
    assert USD.round(Decimal("-0.005")) == Decimal("-0.01")  # half away from zero
    assert USD.round(Decimal("2.675")) == Decimal("2.68")  # not banker's rounding
    assert JPY.round(Decimal("10.5")) == Decimal("11")


def test_unknown_currency() -> None:
    with pytest.raises(CurrencyError, match="XXX"):
        currency("XXX")


def test_money_refuses_mixed_currencies_and_floats() -> None:
    a = Money.of("1.10", "USD")
    assert (a + Money.of("2", "USD")).amount == Decimal("3.10")
    with pytest.raises(CurrencyError):
        _ = a + Money.of("1", "EUR")
    with pytest.raises(TypeError):
        Money.of(1.1, "USD")  # type: ignore[arg-type]
    assert (a * 3).rounded() == Money.of("3.30", "USD")


def test_allocate_largest_remainder_with_index_tie_break() -> None:
    # 1.00 in three equal parts: the leftover cent goes to the first share.
    assert allocate(Decimal("1.00"), [Decimal(1)] * 3, USD) == [
        Decimal("0.34"),
        Decimal("0.33"),
        Decimal("0.33"),
    ]
    # Largest remainder wins over index.
    assert allocate(Decimal("0.10"), [Decimal(1), Decimal(2)], USD) == [
        Decimal("0.03"),
        Decimal("0.07"),
    ]
    assert allocate(Decimal("-1.00"), [Decimal(1)] * 3, USD)[0] == Decimal("-0.34")


@given(
    total=st.integers(min_value=-(10**9), max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12),
)
def test_allocation_shares_sum_to_the_total(total: int, weights: list[int]) -> None:
    amount = Decimal(total) / 100
    shares = allocate(amount, [Decimal(w) for w in weights], USD)
    assert sum(shares) == amount
    assert all(USD.round(s) == s for s in shares)
    assert len(shares) == len(weights)
