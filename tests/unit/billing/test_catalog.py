from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing.catalog import Catalog, CreditCost, CreditPack, FeaturePrice, parse_catalog
from billing.errors import CatalogError
from billing.events import UsageRecorded
from billing.money import currency
from billing.pricing import QuantityPricing
from billing.pricing.graduated import Graduated
from billing.pricing.included import WithAllowance
from billing.pricing.per_minute import PerMinute
from billing.pricing.per_token import TokenRate
from billing.pricing.per_unit import PerUnit
from billing.pricing.tiers import Tier
from billing.rating import credit_cost
from tests.unit.billing.conftest import EXAMPLE, t

D = Decimal
USD = currency("USD")


def seed() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def plan(data: dict[str, Any], plan_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in data["plans"] if p["id"] == plan_id)
    return found


def problems(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(CatalogError) as info:
        parse_catalog(data)
    return info.value.problems


def test_seed_catalog_has_the_issue_plans(catalog: Catalog) -> None:
    assert set(catalog.plans) == {
        "starter", "writer", "scale", "team", "voice", "image-credits", "query-credits", "dev-api",
    }  # fmt: skip
    writer = catalog.plans["writer"]
    assert (writer.model, writer.base_fee, writer.currency.code) == (
        "metered",
        Decimal("19.00"),
        "USD",
    )
    assert writer.prices["tokens"].included == 100_000
    assert writer.alert_thresholds == (80, 100)
    assert catalog.plans["team"].seat_fee == Decimal("20.00")
    assert catalog.plans["image-credits"].alert_thresholds == (20, 10, 0)
    props = {"complexity": "ultra"}
    ultra = UsageRecorded("e", "c", "image_generation", D(2), t(2026, 1, 1), props)
    assert credit_cost(catalog.plans["image-credits"], ultra, D(2)) == 20
    assert catalog.credit_packs["credits-500k"].credits == 500_000
    rates = catalog.plans["dev-api"].prices["tokens"].tokens
    assert rates is not None and rates.rates["large"].output == Decimal("15.00")


def test_seed_catalog_numbers_equal_the_issue_table(catalog: Catalog) -> None:
    """Every number of the issue's table, structurally (frozen values compare by value)
    and by price at the allowance and tier edges."""
    plans = catalog.plans
    for p in plans.values():
        assert (p.version, p.currency, p.spend_cap) == (1, USD, None)
    expected = {  # plan: (model, base fee, seat fee)
        "starter": ("metered", D("29.00"), D(0)), "writer": ("metered", D("19.00"), D(0)),
        "scale": ("metered", D("99.00"), D(0)), "team": ("metered", D(0), D("20.00")),
        "voice": ("metered", D(0), D(0)), "image-credits": ("credits", D(0), D(0)),
        "query-credits": ("credits", D(0), D(0)), "dev-api": ("balance", D(0), D(0)),
    }  # fmt: skip
    assert {k: (p.model, p.base_fee, p.seat_fee) for k, p in plans.items()} == expected
    assert dict(plans["starter"].prices) == {"tokens": _allowance(50_000, "0.03")}
    assert dict(plans["writer"].prices) == {"tokens": _allowance(100_000, "0.02")}
    assert dict(plans["team"].prices) == {"tokens": _allowance(200_000, "0.02")}
    tiers = (Tier(D(0), D(9_000_000), D("0.015")), Tier(D(9_000_000), None, D("0.010")))
    scale = plans["scale"].prices["tokens"]
    assert scale == _price("tokens", "graduated", 1_000_000, Graduated(tiers, D(1000)))
    # 1M included; the next 9M at 0.015 per 1,000 (135.00); beyond 10M at 0.010 per 1,000
    assert [_amount(scale, q) for q in (1_000_000, 10_000_000, 11_000_000)] == [0, 135, 145]
    voice = plans["voice"].prices
    assert dict(voice) == {
        "transcription": _price("transcription", "per_minute", 0, PerMinute(D("0.006")))
    }
    assert _amount(voice["transcription"], 90) == D("0.009")  # pro rata per second
    assert _amount(plans["starter"].prices["tokens"], 51_001) == D("0.03003")  # per token
    _assert_credit_plans(catalog)
    _assert_dev_api(catalog)


def _price(feature: str, strategy: str, included: int, pricing: QuantityPricing) -> FeaturePrice:
    """The value the catalog must hold: allowance wrapped around the strategy, alert
    levels at the default 80 % and 100 % of the allowance."""
    levels = tuple((t, D(included) * t / 100) for t in (80, 100)) if included else ()
    wrapped = WithAllowance(D(included), pricing) if included else pricing
    return FeaturePrice(feature, strategy, D(included), wrapped, None, False, levels)


def _allowance(included: int, per_1000: str) -> FeaturePrice:
    """`included` tokens free, then `per_1000` per 1,000 tokens, pro rata."""
    unit = PerUnit(D(per_1000), D(1000), per_started_block=False)
    return _price("tokens", "per_unit", included, unit)


def _amount(price: FeaturePrice, quantity: int) -> Decimal:
    assert price.pricing is not None
    return price.pricing.amount(D(quantity))


def _assert_credit_plans(catalog: Catalog) -> None:
    assert dict(catalog.credit_packs) == {
        "credits-100": CreditPack("credits-100", D(100), D("10.00"), USD),
        "credits-500k": CreditPack("credits-500k", D(500_000), D("50.00"), USD),
    }
    image, query = catalog.plans["image-credits"], catalog.plans["query-credits"]
    assert (image.credit_packs, query.credit_packs) == (("credits-100",), ("credits-500k",))
    assert dict(image.prices) == {} and dict(query.prices) == {}
    assert dict(image.credit_costs) == {
        "image_generation": CreditCost("complexity", _costs(standard=1, complex=5, ultra=10), None)
    }
    assert dict(query.credit_costs) == {
        "query": CreditCost("kind", _costs(simple=100, complex=1000), None)
    }


def _costs(**per_value: int) -> dict[str, Decimal]:
    return {k: D(v) for k, v in per_value.items()}


def _assert_dev_api(catalog: Catalog) -> None:
    plan = catalog.plans["dev-api"]
    assert dict(plan.credit_costs) == {} and plan.credit_packs == ()
    price = plan.prices["tokens"]
    assert (price.strategy, price.included, price.pricing, price.alert_levels) == (
        "per_token",
        D(0),
        None,
        (),
    )
    tokens = price.tokens
    assert tokens is not None
    assert (tokens.property, tokens.per) == ("model", D(1_000_000))
    assert dict(tokens.rates) == {
        "small": TokenRate(D("0.50"), D("1.50"), (D("0.0000005"), D("0.0000015"))),
        "large": TokenRate(D("3.00"), D("15.00"), (D("0.000003"), D("0.000015"))),
    }
    # one million input and one million output tokens of each model
    million = D(1_000_000)
    costs = [tokens.cost(tokens.rates[m], million, million) for m in ("small", "large")]
    assert costs == [D("2.00"), D("18.00")]


def test_every_problem_is_listed_with_plan_and_field() -> None:
    data = seed()
    plan(data, "dev-api")["credit_costs"] = {"tokens": 3}  # mixes models
    plan(data, "writer")["prices"]["images"] = {"strategy": "per_unit", "unit_price": "1"}
    plan(data, "starter")["base_fee"] = "-5"
    plan(data, "voice")["currency"] = "XYZ"
    plan(data, "scale")["prices"]["tokens"]["tiers"] = [
        {"from": 0, "up_to": 100, "unit_price": "0.1"},
        {"from": 200, "up_to": None, "unit_price": "0.05"},
    ]
    found = problems(data)
    assert len(found) == 5
    text = "\n".join(found)
    assert "plan 'dev-api' field 'credit_costs': mixes consumption models" in text
    assert "plan 'writer' field 'prices.images': price on unknown feature 'images'" in text
    assert "plan 'starter' field 'base_fee': negative price -5" in text
    assert "plan 'voice' field 'currency': unknown currency 'XYZ'" in text
    assert "plan 'scale' field 'prices.tokens.tiers': tier 2: gap between 100 and 200" in text


def test_overlapping_tiers_and_credits_plan_with_money_prices() -> None:
    data = seed()
    plan(data, "scale")["prices"]["tokens"]["tiers"] = [
        {"up_to": 100, "unit_price": "0.1"},
        {"from": 50, "up_to": None, "unit_price": "0.05"},
    ]
    plan(data, "image-credits")["prices"] = {
        "image_generation": {"strategy": "per_request", "unit_price": "1"}
    }
    text = "\n".join(problems(data))
    assert "overlaps the previous tier" in text
    assert "plan 'image-credits' field 'prices': mixes consumption models" in text


def test_floats_negative_tier_prices_and_unknown_packs() -> None:
    data = seed()
    plan(data, "writer")["prices"]["tokens"]["unit_price"] = 0.02
    plan(data, "scale")["prices"]["tokens"]["tiers"][0]["unit_price"] = "-1"
    plan(data, "image-credits")["credit_packs"] = ["credits-999"]
    text = "\n".join(problems(data))
    assert "quoted decimal string" in text
    assert "prices.tokens.tiers[0].unit_price': negative price -1" in text
    assert "unknown credit pack 'credits-999'" in text


def test_spend_cap_only_on_metered_and_volume_not_on_balance() -> None:
    data = seed()
    plan(data, "dev-api")["spend_cap"] = "100"
    plan(data, "dev-api")["prices"]["tokens"] = {
        "strategy": "volume", "tiers": [{"up_to": None, "unit_price": "1"}],
    }  # fmt: skip
    text = "\n".join(problems(data))
    assert "'spend_cap' belongs to metered plans" in text
    assert "not allowed on a balance plan" in text


def test_catalog_values_are_read_only(catalog: Catalog) -> None:
    with pytest.raises(TypeError):
        catalog.plans["x"] = catalog.plans["writer"]  # type: ignore[index]


def test_seed_file_unchanged_by_tests(tmp_path: Path) -> None:
    # parse_catalog must not mutate the data it is given
    data = seed()
    before = copy.deepcopy(data)
    parse_catalog(data)
    assert data == before
