from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from billing.pricing.graduated import Graduated
from billing.pricing.included import WithAllowance
from billing.pricing.per_minute import PerMinute
from billing.pricing.per_request import PerRequest
from billing.pricing.per_seat import seat_line_items
from billing.pricing.per_token import PerToken, TokenRate
from billing.pricing.per_unit import PerUnit
from billing.pricing.tiers import Tier, build_tiers, tier_problems
from billing.pricing.volume import Volume
from tests.unit.billing.conftest import t

TIERS = build_tiers([(D(1000), D("1.00")), (D(5000), D("0.50")), (None, D("0.25"))])
quantities = st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False)


def test_per_unit_pro_rata_and_per_started_block() -> None:
    pro_rata = PerUnit(D("0.03"), D(1000))
    blocks = PerUnit(D("0.03"), D(1000), per_started_block=True)
    assert pro_rata.amount(D(1500)) == D("0.045")
    assert blocks.amount(D(1500)) == D("0.06")
    assert blocks.amount(D(1000)) == D("0.03")
    assert blocks.amount(D(0)) == 0
    (line,) = pro_rata.line_items(D(1500), "tokens")
    assert line.quantity * line.unit_price == line.amount


def test_graduated_prices_each_unit_in_its_tier() -> None:
    g = Graduated(TIERS)
    assert g.amount(D(500)) == D(500)
    assert g.amount(D(1500)) == D(1000) + D(250)
    assert g.amount(D(6000)) == D(1000) + D(2000) + D(250)
    assert sum(i.amount for i in g.line_items(D(6000), "x")) == g.amount(D(6000))


def test_volume_prices_all_units_at_the_reached_tier() -> None:
    v = Volume(TIERS)
    assert v.amount(D(1000)) == D(1000)  # up_to is inclusive
    assert v.amount(D(1001)) == D("500.50")
    assert v.amount(D(6000)) == D(1500)


def test_included_allowance_then_overage() -> None:
    p = WithAllowance(D(100_000), PerUnit(D("0.02"), D(1000)))
    assert p.amount(D(100_000)) == 0
    assert p.amount(D(250_000)) == D("3.00")
    free, overage = p.line_items(D(250_000), "tokens")
    assert (free.quantity, free.amount) == (D(100_000), 0)
    assert (overage.quantity, overage.amount) == (D(150_000), D("3.00"))


def test_per_request_and_per_minute() -> None:
    assert PerRequest(D("0.002")).amount(D(7)) == D("0.014")
    assert PerMinute(D("0.006")).amount(D(90)) == D("0.009")
    assert PerMinute(D("0.006"), per_started_minute=True).amount(D(61)) == D("0.012")


def test_per_token_by_model_with_and_without_allowance() -> None:
    p = PerToken("model", {"small": TokenRate(D("0.50"), D("1.50"))})
    buckets = {"small": (D(1_000_000), D(2_000_000))}
    assert p.amount(buckets, D(0)) == D("3.50")
    # 3M tokens, 1M included: 2/3 of every bucket is billable.
    assert p.amount(buckets, D(1_000_000)) == D("3.50") * 2 / 3
    assert p.amount(buckets, D(5_000_000)) == 0


def test_seats_prorated_to_the_second() -> None:
    start, end = t(2026, 1, 1), t(2026, 2, 1)  # 31 days
    lines = seat_line_items(D(20), [(start, 2), (t(2026, 1, 11), 5)], start, end)
    assert [line.quantity for line in lines] == [D(2) * 10 / 31, D(5) * 21 / 31]
    # 28 significant digits: prorating by 10/31 of a period is not a finite decimal.
    assert abs(sum(line.amount for line in lines) - D(20) * D(125) / 31) < D("1e-24")
    (whole,) = seat_line_items(D(20), [(start, 3)], start, end)
    assert (whole.quantity, whole.amount) == (D(3), D(60))


def test_tier_gaps_and_overlaps_are_named() -> None:
    assert tier_problems([(None, D(10)), (None, None)]) == []
    assert "gap" in tier_problems([(D(0), D(10)), (D(20), None)])[0]
    assert "overlaps" in tier_problems([(D(0), D(10)), (D(5), None)])[0]
    assert any("last tier" in p for p in tier_problems([(None, D(10))]))
    assert any("only the last" in p for p in tier_problems([(None, None), (None, D(5))]))


@given(a=quantities, b=quantities)
def test_graduated_never_decreases_as_quantity_grows(a: D, b: D) -> None:
    lo, hi = sorted((a, b))
    g = Graduated(TIERS, D(1000))
    assert g.amount(lo) <= g.amount(hi)
    assert WithAllowance(D(777), g).amount(lo) <= WithAllowance(D(777), g).amount(hi)


@given(q=quantities)
def test_volume_price_is_tier_rate_times_whole_quantity(q: D) -> None:
    v = Volume(TIERS)
    tier: Tier = v.tier_for(q)
    assert v.amount(q) == (q * tier.unit_price if q > 0 else 0)
    assert tier.up_to is None or q <= tier.up_to
    assert q > tier.start or tier.start == 0
