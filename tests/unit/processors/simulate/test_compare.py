"""`processors.simulate.compare`: no plan is priced at 0.00 for lack of it, a plan map
re-prices subscriptions in the other run only, prepayments are apart from revenue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing.events import (
    CreditsPurchased,
    Event,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from processors.simulate.compare import (
    CompareError,
    check_plans,
    compare,
    parse_plan_map,
    remap,
    subscribed_plans,
)
from processors.simulate.simulation import simulate
from streambill.config.catalog_file import load_catalog

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "catalog.yaml"
WRITER_ONLY = (
    Path(__file__).resolve().parents[2] / "fixtures" / "simulate" / "writer_price_rise.yaml"
)
AT = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)

HISTORY: list[Event] = [
    SubscriptionStarted("s1", "cus_w", AT, "writer"),
    SubscriptionStarted("s2", "cus_i", AT, "image-credits"),
    CreditsPurchased("p1", "cus_i", AT, "credits-100"),
    SubscriptionStarted("s3", "cus_d", AT, "dev-api"),
    WalletDeposited("d1", "cus_d", AT, Decimal("5.00"), "USD"),
    SubscriptionChanged("c1", "cus_w", END, "starter"),  # at `end`: not in the range
    UsageRecorded("u1", "cus_w", "tokens", Decimal(150000), AT, {}),
]


def test_plan_maps_parse_and_refuse_malformed_items() -> None:
    assert parse_plan_map(["a=b", " c = d ", "a=b"]) == {"a": "b", "c": "d"}
    for bad in (["a"], ["=b"], ["a="], ["a=b", "a=c"]):
        with pytest.raises(CompareError):
            parse_plan_map(bad)


def test_subscribed_plans_are_those_before_the_end() -> None:
    assert subscribed_plans(HISTORY, END) == {"writer", "image-credits", "dev-api"}


def test_plans_missing_from_the_other_catalog_are_refused_by_name() -> None:
    base, other = load_catalog(EXAMPLE), load_catalog(WRITER_ONLY)
    with pytest.raises(CompareError) as refused:
        check_plans(HISTORY, END, base, other, {}, "other.yaml")
    assert "missing from other.yaml: dev-api, image-credits" in str(refused.value)
    check_plans(HISTORY, END, base, other, {"dev-api": "writer", "image-credits": "writer"})
    with pytest.raises(CompareError) as refused:
        check_plans(HISTORY, END, base, other, {"dev-api": "writer", "image-credits": "nope"})
    assert "--map target plan(s) missing from the other catalog: nope" in str(refused.value)


def test_a_plan_neither_catalog_has_is_not_the_comparisons_business() -> None:
    base = other = load_catalog(WRITER_ONLY)
    check_plans(HISTORY, END, base, other, {})  # both runs reject them alike


def test_remap_moves_subscriptions_only() -> None:
    moved = remap(HISTORY, {"writer": "starter"})
    assert [getattr(e, "plan_id", None) for e in moved] == [
        "starter", "image-credits", None, "dev-api", None, "starter", None,
    ]  # fmt: skip
    assert moved[2:5] == HISTORY[2:5] and moved[6] is HISTORY[6]


def test_prepayments_are_compared_apart_from_revenue() -> None:
    catalog = load_catalog(EXAMPLE)
    events = HISTORY[:-2]
    base = simulate(catalog, events, AT, END)
    other = simulate(catalog, remap(events, {"dev-api": "writer"}), AT, END)
    result = compare(base, other, {"dev-api": "writer"})
    prepaid = {(r.customer_id, r.revenue, r.other_revenue) for r in result.prepayments}
    # The wallet deposit is a purchase of a balance plan only: as a writer the deposit
    # is rejected, and that shows as a rejection the other run alone made.
    assert ("cus_d", Decimal("5.00"), Decimal("0.00")) in prepaid
    assert ("cus_i", Decimal("10.00"), Decimal("10.00")) in prepaid
    assert (None, Decimal("15.00"), Decimal("10.00")) in prepaid
    assert all(r.customer_id != "cus_i" or r.revenue == 0 for r in result.revenue)
    writer = next(r for r in result.revenue if r.customer_id == "cus_d")
    assert writer.other_revenue == Decimal("19.00")  # the writer base fee
    assert result.plan_map == {"dev-api": "writer"}
    assert sum(result.other_only_rejections.values()) >= 1
