from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing.catalog import Catalog, parse_catalog
from billing.errors import CatalogError
from tests.unit.billing.conftest import EXAMPLE


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
    cost = catalog.plans["image-credits"].credit_costs["image_generation"]
    assert cost.per_unit({"complexity": "ultra"}) == 10
    assert catalog.credit_packs["credits-500k"].credits == 500_000
    rates = catalog.plans["dev-api"].prices["tokens"].tokens
    assert rates is not None and rates.rates["large"].output == Decimal("15.00")


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
