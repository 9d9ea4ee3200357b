"""The catalog as records of the catalog topic, and back.

Each feature, credit pack and plan version of a `Catalog` becomes one record, keyed
`feature/<id>`, `pack/<id>`, `plan/<id>/<version>`; retiring a plan is a record of
its own (`retired/<id>`). The topic is compacted, so the live catalog is the latest
record of each key (`billing.catalog_live`).

A plan version's record holds its content in the catalog file's own terms (strategy,
unit price, block size, rounding, tiers, token rates, allowance, credit costs,
alert thresholds...), complete enough that `records_catalog(catalog_records(c))`
rebuilds `c` exactly: the way back goes through `parse_catalog`, so a record is
validated by the same rules as a file. `plan_tree` is that content as plain data,
with the file's field names, which the diff compares field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.catalog import Catalog, CreditCost, CreditPack, Feature, FeaturePrice, Plan
from billing.catalog import parse_catalog as _parse_catalog
from billing.pricing.graduated import Graduated
from billing.pricing.included import WithAllowance
from billing.pricing.per_minute import PerMinute
from billing.pricing.per_request import PerRequest
from billing.pricing.per_unit import PerUnit
from billing.pricing.volume import Volume

PRO_RATA, PER_STARTED_BLOCK = "pro_rata", "per_started_block"


@dataclass(frozen=True, slots=True)
class TierSpec:
    up_to: Decimal | None  # None: unbounded (the last tier)
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class TokenRateSpec:
    value: str  # the property value (e.g. the model "large")
    input: Decimal
    output: Decimal


@dataclass(frozen=True, slots=True)
class PriceSpec:
    """One feature's price as the catalog file writes it; fields a strategy does not
    use are None or empty (`unit_price`: per_unit, per_minute, per_request; `per`:
    per_unit, graduated, volume, per_token; `rounding`: per_unit, per_minute)."""

    feature_id: str
    strategy: str
    included: Decimal
    unit_price: Decimal | None = None
    per: Decimal | None = None
    rounding: str | None = None
    tiers: tuple[TierSpec, ...] = ()
    token_property: str | None = None
    token_rates: tuple[TokenRateSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class CreditCostSpec:
    feature_id: str
    property: str | None
    costs: tuple[tuple[str, Decimal], ...]  # (property value, credits per unit), sorted
    default: Decimal | None


@dataclass(frozen=True, slots=True)
class PlanVersionPublished:
    """A plan version, immutable once published."""

    plan_id: str
    version: int
    name: str
    currency: str
    model: str
    base_fee: Decimal
    seat_fee: Decimal
    spend_cap: Decimal | None
    alert_thresholds: tuple[int, ...]
    credit_packs: tuple[str, ...]
    prices: tuple[PriceSpec, ...]  # sorted by feature id
    credit_costs: tuple[CreditCostSpec, ...]  # sorted by feature id
    hard_cap: bool = False  # `spend_cap_mode: hard` (records before it: soft)

    @property
    def key(self) -> str:
        return plan_key(self.plan_id, self.version)


@dataclass(frozen=True, slots=True)
class FeaturePublished:
    feature_id: str
    unit: str

    @property
    def key(self) -> str:
        return f"feature/{self.feature_id}"


@dataclass(frozen=True, slots=True)
class CreditPackPublished:
    pack_id: str
    credits: Decimal
    price: Decimal
    currency: str

    @property
    def key(self) -> str:
        return f"pack/{self.pack_id}"


@dataclass(frozen=True, slots=True)
class PlanRetired:
    """The plan takes no new subscriptions from `retired_at` on; existing subscribers
    keep being billed on the version they are on."""

    plan_id: str
    retired_at: datetime

    @property
    def key(self) -> str:
        return retired_key(self.plan_id)


CatalogRecord = PlanVersionPublished | FeaturePublished | CreditPackPublished | PlanRetired


def plan_key(plan_id: str, version: int) -> str:
    return f"plan/{plan_id}/{version}"


def retired_key(plan_id: str) -> str:
    return f"retired/{plan_id}"


# ------------------------------------------------------------- Catalog -> records


def _price_spec(price: FeaturePrice) -> PriceSpec:
    """The file form of a parsed price: the strategy objects keep every number the
    file gave that changes a price (a new strategy needs its case here)."""
    fid, kind, included = price.feature_id, price.strategy, price.included
    if price.tokens is not None:
        rates = tuple(
            TokenRateSpec(value, rate.input, rate.output)
            for value, rate in sorted(price.tokens.rates.items())
        )
        return PriceSpec(
            fid, kind, included, per=price.tokens.per,
            token_property=price.tokens.property, token_rates=rates,
        )  # fmt: skip
    pricing = price.pricing
    if isinstance(pricing, WithAllowance):
        pricing = pricing.inner
    if isinstance(pricing, PerUnit) and kind == "per_unit":
        rounding = PER_STARTED_BLOCK if pricing.per_started_block else PRO_RATA
        return PriceSpec(fid, kind, included, pricing.unit_price, pricing.block_size, rounding)
    if isinstance(pricing, PerMinute) and kind == "per_minute":
        rounding = PER_STARTED_BLOCK if pricing.per_started_minute else PRO_RATA
        return PriceSpec(fid, kind, included, pricing.price_per_minute, rounding=rounding)
    if isinstance(pricing, PerRequest) and kind == "per_request":
        return PriceSpec(fid, kind, included, pricing.price)
    if isinstance(pricing, Graduated | Volume) and kind in ("graduated", "volume"):
        tiers = tuple(TierSpec(t.up_to, t.unit_price) for t in pricing.tiers)
        return PriceSpec(fid, kind, included, per=pricing.block_size, tiers=tiers)
    raise ValueError(f"no record form for strategy {kind!r} ({type(pricing).__name__})")


def _credit_cost_spec(feature_id: str, cost: CreditCost) -> CreditCostSpec:
    return CreditCostSpec(
        feature_id, cost.property, tuple(sorted(cost.costs.items())), cost.default
    )


def plan_record(plan: Plan) -> PlanVersionPublished:
    return PlanVersionPublished(
        plan_id=plan.id,
        version=plan.version,
        name=plan.name,
        currency=plan.currency.code,
        model=plan.model,
        base_fee=plan.base_fee,
        seat_fee=plan.seat_fee,
        spend_cap=plan.spend_cap,
        hard_cap=plan.hard_cap,
        alert_thresholds=tuple(plan.alert_thresholds),
        credit_packs=tuple(plan.credit_packs),
        prices=tuple(_price_spec(plan.prices[f]) for f in sorted(plan.prices)),
        credit_costs=tuple(
            _credit_cost_spec(f, plan.credit_costs[f]) for f in sorted(plan.credit_costs)
        ),
    )


def feature_record(feature: Feature) -> FeaturePublished:
    return FeaturePublished(feature.id, feature.unit)


def pack_record(pack: CreditPack) -> CreditPackPublished:
    return CreditPackPublished(pack.id, pack.credits, pack.price, pack.currency.code)


def catalog_records(catalog: Catalog) -> list[CatalogRecord]:
    """Every record of `catalog`: features, then credit packs, then plans (so a reader
    at any offset has seen what a plan refers to), each sorted by id."""
    out: list[CatalogRecord] = [
        feature_record(catalog.features[f]) for f in sorted(catalog.features)
    ]
    out += [pack_record(catalog.credit_packs[p]) for p in sorted(catalog.credit_packs)]
    every = sorted((*catalog.older, *catalog.plans.values()), key=lambda p: (p.id, p.version))
    out += [plan_record(plan) for plan in every]
    return out


# ------------------------------------------------------------ records -> plain data


def _price_tree(spec: PriceSpec) -> dict[str, Any]:
    tree: dict[str, Any] = {"strategy": spec.strategy, "included": spec.included}
    if spec.unit_price is not None:
        tree["unit_price"] = spec.unit_price
    if spec.per is not None:
        tree["per"] = spec.per
    if spec.rounding is not None:
        tree["rounding"] = spec.rounding
    if spec.tiers:
        tree["tiers"] = [{"up_to": t.up_to, "unit_price": t.unit_price} for t in spec.tiers]
    if spec.token_property is not None:
        tree["property"] = spec.token_property
    if spec.token_rates:
        tree["rates"] = {r.value: {"input": r.input, "output": r.output} for r in spec.token_rates}
    return tree


def _credit_cost_tree(spec: CreditCostSpec) -> dict[str, Any]:
    tree: dict[str, Any] = {"costs": dict(spec.costs)}
    if spec.property is not None:
        tree["property"] = spec.property
    if spec.default is not None:
        tree["default"] = spec.default
    return tree


def plan_tree(record: PlanVersionPublished) -> dict[str, Any]:
    """The plan version as a catalog file writes it, numbers as `Decimal`s (None:
    an unbounded tier's `up_to`). Its paths (`prices.tokens.unit_price`) are the
    file's field names."""
    tree: dict[str, Any] = {
        "id": record.plan_id,
        "version": record.version,
        "name": record.name,
        "model": record.model,
        "currency": record.currency,
        "base_fee": record.base_fee,
        "seat_fee": record.seat_fee,
        "alerts": list(record.alert_thresholds),
    }
    if record.spend_cap is not None:
        tree["spend_cap"] = record.spend_cap
    if record.hard_cap:
        tree["spend_cap_mode"] = "hard"
    if record.prices:
        tree["prices"] = {p.feature_id: _price_tree(p) for p in record.prices}
    if record.credit_costs:
        tree["credit_costs"] = {c.feature_id: _credit_cost_tree(c) for c in record.credit_costs}
    if record.credit_packs:
        tree["credit_packs"] = list(record.credit_packs)
    return tree


def record_tree(record: CatalogRecord) -> dict[str, Any]:
    """Any record's content as plain data (`Decimal` numbers, `datetime` times)."""
    if isinstance(record, PlanVersionPublished):
        return plan_tree(record)
    if isinstance(record, FeaturePublished):
        return {"id": record.feature_id, "unit": record.unit}
    if isinstance(record, CreditPackPublished):
        return {
            "id": record.pack_id,
            "credits": record.credits,
            "price": record.price,
            "currency": record.currency,
        }
    return {"plan_id": record.plan_id, "retired_at": record.retired_at}


def _file_form(value: Any) -> Any:
    """Plain data as `parse_catalog` reads it: decimals as strings in plain notation."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {k: _file_form(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_file_form(v) for v in value]
    return value


def catalog_data(records: Iterable[CatalogRecord]) -> dict[str, Any]:
    """The catalog file (plain data) of `records`: every feature, pack and plan
    version. Retirements are not part of a file."""
    features: dict[str, FeaturePublished] = {}
    packs: dict[str, CreditPackPublished] = {}
    plans: dict[tuple[str, int], PlanVersionPublished] = {}
    for r in records:
        if isinstance(r, FeaturePublished):
            features[r.feature_id] = r
        elif isinstance(r, CreditPackPublished):
            packs[r.pack_id] = r
        elif isinstance(r, PlanVersionPublished):
            plans[(r.plan_id, r.version)] = r
    return {
        "features": [_file_form(record_tree(features[f])) for f in sorted(features)],
        "credit_packs": [_file_form(record_tree(packs[p])) for p in sorted(packs)],
        "plans": [_file_form(plan_tree(plans[p])) for p in sorted(plans)],
    }


def records_catalog(records: Iterable[CatalogRecord]) -> Catalog:
    """The `Catalog` of `records` (every plan version), validated by
    `parse_catalog`: raises `billing.errors.CatalogError` naming every problem."""
    return _parse_catalog(catalog_data(records))
