"""The catalog as topic records (`billing.catalog_records`) and the live catalog, its
revision and the diff against a file (`billing.catalog_live`)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.admission import canonical_decimal
from billing.catalog import Catalog, parse_catalog
from billing.catalog_live import (
    Difference,
    LiveCatalog,
    diff,
    live_catalog,
    revision,
    with_records,
)
from billing.catalog_records import (
    FeaturePublished,
    PlanRetired,
    PlanVersionPublished,
    catalog_records,
    records_catalog,
)
from billing.errors import CatalogError
from tests.unit.billing.conftest import EXAMPLE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FILES = [EXAMPLE, *sorted((FIXTURES / "simulate").glob("*.yaml"))]
FILES = [f for f in FILES if f.name != "bad_catalog.yaml"]


def data_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def plan_data(data: dict[str, Any], plan_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in data["plans"] if p["id"] == plan_id)
    return found


def published(catalog: Catalog) -> LiveCatalog:
    return with_records(live_catalog([]), catalog_records(catalog))


def exact(records: list[Any]) -> list[str]:
    """`repr` shows each Decimal with its scale: equal lists are equal to the digit."""
    return [repr(r) for r in records]


# ------------------------------------------------------------------- round trip


def every_catalog() -> list[tuple[str, Catalog]]:
    from tests.unit.test_readme_catalogs import snippets

    found = [(f.name, parse_catalog(data_of(f))) for f in FILES]
    return found + [(f"README snippet {i}", c) for i, c in enumerate(snippets())]


@pytest.mark.parametrize(("name", "catalog"), every_catalog(), ids=lambda v: str(v)[:40])
def test_every_catalog_file_and_snippet_round_trips_exactly(name: str, catalog: Catalog) -> None:
    records = catalog_records(catalog)
    assert len(records) == len(catalog.features) + len(catalog.credit_packs) + len(catalog.plans)
    back = records_catalog(records)
    assert back == catalog
    assert exact(catalog_records(back)) == exact(records)


def test_records_keep_the_scale_written_and_come_in_publication_order() -> None:
    data = data_of(EXAMPLE)
    plan_data(data, "writer")["prices"]["tokens"]["unit_price"] = "0.0200"
    records = catalog_records(parse_catalog(data))
    kinds = [r.key.split("/")[0] for r in records]
    assert kinds == sorted(kinds, key=["feature", "pack", "plan"].index)
    writer = next(r for r in records if r.key == "plan/writer/1")
    assert isinstance(writer, PlanVersionPublished)
    assert str(writer.prices[0].unit_price) == "0.0200"
    back = records_catalog(records).plans["writer"].prices["tokens"].pricing
    assert "0.0200" in repr(back)


_amount = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False).map(str)
_positive = st.integers(min_value=1, max_value=10**6).map(str)


@st.composite
def _price(draw: st.DrawFn, model: str) -> dict[str, Any]:
    kinds = ["per_unit", "graduated", "per_request", "per_token", "per_minute"]
    kind = draw(st.sampled_from(kinds + ([] if model == "balance" else ["volume"])))
    spec: dict[str, Any] = {"strategy": kind}
    if draw(st.booleans()):
        spec["included"] = draw(_positive)
    if kind in ("per_unit", "per_minute", "per_request"):
        spec["unit_price"] = draw(_amount)
    if kind in ("per_unit", "per_minute"):
        spec["rounding"] = draw(st.sampled_from(["pro_rata", "per_started_block"]))
    if kind in ("per_unit", "graduated", "volume", "per_token"):
        spec["per"] = draw(_positive)
    if kind in ("graduated", "volume"):
        bounds = sorted(draw(st.sets(st.integers(1, 10**7), max_size=3)))
        ups: list[int | None] = [*bounds, None]
        spec["tiers"] = [{"up_to": u, "unit_price": draw(_amount)} for u in ups]
    if kind == "per_token":
        spec["property"] = "model"
        values = draw(st.sets(st.sampled_from(["small", "large", "x"]), min_size=1))
        spec["rates"] = {v: {"input": draw(_amount), "output": draw(_amount)} for v in values}
    return spec


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, Any]:
    features = ["tokens", "seconds", "images"]
    packs = [{"id": "p1", "credits": 100, "price": draw(_amount), "currency": "USD"}]
    plans = []
    for i in range(draw(st.integers(1, 4))):
        model = draw(st.sampled_from(["metered", "credits", "balance"]))
        plan: dict[str, Any] = {
            "id": f"plan-{i}",
            "version": draw(st.integers(1, 5)),
            "model": model,
            "currency": "USD",
            "base_fee": draw(_amount),
            "seat_fee": draw(_amount),
            "name": draw(st.sampled_from(["", "Pro", "Équipe"])),
        }
        if draw(st.booleans()):
            plan["alerts"] = draw(st.lists(st.integers(0, 100), max_size=3))
        priced = draw(st.lists(st.sampled_from(features), unique=True, max_size=3))
        if model == "credits":
            plan["credit_packs"] = ["p1"]
            plan["credit_costs"] = {
                f: draw(
                    st.one_of(
                        _positive,
                        st.fixed_dictionaries(
                            {"property": st.just("kind"), "costs": st.just({"a": "1", "b": "2.5"})},
                            optional={"default": _amount},
                        ),
                    )
                )
                for f in priced
            }
        else:
            plan["prices"] = {f: draw(_price(model)) for f in priced}
            if model == "metered" and draw(st.booleans()):
                plan["spend_cap"] = draw(_amount)
        plans.append(plan)
    return {
        "features": [{"id": f, "unit": "unit"} for f in features],
        "credit_packs": packs,
        "plans": plans,
    }


@settings(max_examples=150, deadline=None)
@given(catalogs())
def test_any_valid_catalog_round_trips_exactly(data: dict[str, Any]) -> None:
    catalog = parse_catalog(data)
    records = catalog_records(catalog)
    back = records_catalog(records)
    assert back == catalog
    assert exact(catalog_records(back)) == exact(records)
    assert published(back).revision == published(catalog).revision


def test_invalid_records_are_refused_like_a_file() -> None:
    records = catalog_records(parse_catalog(data_of(EXAMPLE)))
    without_tokens = [r for r in records if r.key != "feature/tokens"]
    with pytest.raises(CatalogError) as info:
        records_catalog(without_tokens)
    assert any("unknown feature 'tokens'" in p for p in info.value.problems)


# ------------------------------------------------------------------------- diff


def test_a_first_publication_adds_everything_and_a_second_nothing() -> None:
    catalog = parse_catalog(data_of(EXAMPLE))
    first = diff(live_catalog([]), catalog)
    assert first.ok and first.unchanged == () and first.staying == ()
    assert [r.key for r in first.added] == [r.key for r in catalog_records(catalog)]
    live = with_records(live_catalog([]), first.added)
    again = diff(live, catalog)
    assert again.ok and again.added == () and again.staying == ()
    assert sorted(again.unchanged) == sorted(live.records)
    assert with_records(live, again.added).revision == live.revision


def test_a_changed_price_under_the_same_version_is_refused_with_the_field_path() -> None:
    data = data_of(EXAMPLE)
    live = published(parse_catalog(data))
    changed = copy.deepcopy(data)
    plan_data(changed, "writer")["prices"]["tokens"]["unit_price"] = "0.03"
    plan_data(changed, "writer")["base_fee"] = "21.00"
    result = diff(live, parse_catalog(changed))
    assert not result.ok
    assert [r.key for r in result.refused] == ["plan/writer/1"]
    assert result.refused[0].differences == (
        Difference("base_fee", "19.00", "21.00"),
        Difference("prices.tokens.unit_price", "0.02", "0.03"),
    )
    assert "plan/starter/1" in result.unchanged and result.added == ()


def test_nested_paths_name_tiers_rates_costs_and_absent_fields() -> None:
    data = data_of(EXAMPLE)
    live = published(parse_catalog(data))
    changed = copy.deepcopy(data)
    plan_data(changed, "scale")["prices"]["tokens"]["tiers"][1]["unit_price"] = "0.009"
    plan_data(changed, "dev-api")["prices"]["tokens"]["rates"]["large"]["output"] = "16.00"
    plan_data(changed, "image-credits")["credit_costs"]["image_generation"]["costs"]["ultra"] = 12
    plan_data(changed, "starter")["spend_cap"] = "500"
    plan_data(changed, "voice")["alerts"] = [50, 100]
    refused = {r.key: r.differences for r in diff(live, parse_catalog(changed)).refused}
    assert refused == {
        "plan/scale/1": (Difference("prices.tokens.tiers[1].unit_price", "0.010", "0.009"),),
        "plan/dev-api/1": (Difference("prices.tokens.rates.large.output", "15.00", "16.00"),),
        "plan/image-credits/1": (
            Difference("credit_costs.image_generation.costs.ultra", "10", "12"),
        ),
        "plan/starter/1": (Difference("spend_cap", None, "500"),),
        "plan/voice/1": (Difference("alerts", "[80, 100]", "[50, 100]"),),
    }


def test_the_same_value_written_otherwise_is_unchanged() -> None:
    data = data_of(EXAMPLE)
    live = published(parse_catalog(data))
    same = copy.deepcopy(data)
    plan_data(same, "writer")["prices"]["tokens"]["unit_price"] = "0.020"
    plan_data(same, "writer")["base_fee"] = 19
    result = diff(live, parse_catalog(same))
    assert result.ok and result.added == () and "plan/writer/1" in result.unchanged


def test_a_bumped_version_is_added_and_the_old_one_stays_live() -> None:
    data = data_of(EXAMPLE)
    live = published(parse_catalog(data))
    bumped = copy.deepcopy(data)
    writer = plan_data(bumped, "writer")
    writer["version"] = 2
    writer["prices"]["tokens"]["unit_price"] = "0.03"
    bumped["plans"] = [p for p in bumped["plans"] if p["id"] != "voice"]
    result = diff(live, parse_catalog(bumped))
    assert result.ok
    assert [r.key for r in result.added] == ["plan/writer/2"]
    assert result.staying == ("plan/voice/1", "plan/writer/1")
    after = with_records(live, result.added)
    assert after.plan_versions()["writer"] == (1, 2)
    assert after.catalog().plans["writer"].version == 2
    assert after.revision != live.revision

    both = after.catalog()  # every version stays priced: v1's subscribers keep v1
    assert both.versions("writer") == (1, 2) and both.refs["writer@1"].version == 1


def test_a_new_version_below_a_live_one_or_with_another_model_is_refused() -> None:
    data = data_of(EXAMPLE)
    v3 = copy.deepcopy(data)
    plan_data(v3, "writer")["version"] = 3
    live = published(parse_catalog(v3))
    lower = diff(live, parse_catalog(data))  # writer v1 after v3: would move unpinned subs
    assert [(r.key, r.differences[0].path) for r in lower.refused] == [("plan/writer/1", "version")]
    assert "above the live ones" in lower.refused[0].why and lower.added == ()
    other = copy.deepcopy(v3)
    writer = plan_data(other, "writer")
    writer["version"], writer["model"] = 4, "balance"
    writer["prices"]["tokens"] = {"strategy": "per_unit", "unit_price": "0.02", "per": 1000}
    changed = diff(live, parse_catalog(other))
    assert [(r.key, r.differences[0].path) for r in changed.refused] == [("plan/writer/4", "model")]


def test_features_and_packs_are_immutable_too() -> None:
    data = data_of(EXAMPLE)
    live = published(parse_catalog(data))
    changed = copy.deepcopy(data)
    changed["features"][0]["unit"] = "kilotoken"
    changed["credit_packs"][0]["price"] = "12.00"
    refused = {r.key: r.differences for r in diff(live, parse_catalog(changed)).refused}
    assert refused == {
        "feature/tokens": (Difference("unit", "token", "kilotoken"),),
        "pack/credits-100": (Difference("price", "10.00", "12.00"),),
    }


# ------------------------------------------------------- live catalog, revision


def test_the_latest_record_of_a_key_wins_and_a_tombstone_removes_it() -> None:
    a, b = FeaturePublished("tokens", "token"), FeaturePublished("tokens", "kilotoken")
    c = FeaturePublished("query", "query")
    live = live_catalog([(a.key, a), (c.key, c), (b.key, b), (c.key, None)])
    assert dict(live.records) == {"feature/tokens": b}


def test_retirement_is_recorded_and_never_staying() -> None:
    live = published(parse_catalog(data_of(EXAMPLE)))
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    retired = with_records(live, [PlanRetired("voice", at)])
    assert retired.retired() == {"voice": at}
    assert retired.revision != live.revision
    result = diff(retired, parse_catalog(data_of(EXAMPLE)))
    assert result.ok and result.added == () and result.staying == ()
    assert retired.catalog() == live.catalog()  # subscribers of voice are still billed


def test_the_revision_depends_on_content_only() -> None:
    records = catalog_records(parse_catalog(data_of(EXAMPLE)))
    assert revision(records) == revision(list(reversed(records)))
    assert len(revision(records)) == 64
    assert revision([]) != revision(records)
    assert canonical_decimal(Decimal("19.00")) == "19"
    assert canonical_decimal(Decimal("0.0250")) == "0.025"
    assert canonical_decimal(Decimal("1E+3")) == "1000"
    assert canonical_decimal(Decimal("0.000")) == "0"
