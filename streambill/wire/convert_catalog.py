"""Avro records of the catalog topic (`streambill.catalog.v1.*`, see `convert`).

`from_avro_*` checks structure only (decimal strings, non-empty ids, known models);
whether the records make a valid catalog (known strategies, tiers that tile, prices
within the bounds, features that exist) is `billing.catalog_records.records_catalog`'s
job, the same rules as a catalog file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.catalog import MODELS
from billing.catalog_records import (
    CreditCostSpec,
    CreditPackPublished,
    FeaturePublished,
    PlanRetired,
    PlanVersionPublished,
    PriceSpec,
    TierSpec,
    TokenRateSpec,
)
from streambill.wire.fields import (
    InvalidField,
    dec_from,
    dec_map_from,
    dec_map_to,
    dec_to,
    field_path,
    int_from,
    int_to,
    opt_dec_from,
    opt_dec_to,
    opt_str_from,
    str_from,
    time_from,
    time_to,
)

Record = dict[str, Any]


def _items(r: Mapping[str, Any], name: str, path: str = "") -> list[Any]:
    values = r.get(name, [])
    field = field_path(path, name)
    if not isinstance(values, list):
        raise InvalidField(field, "expected an array")
    return values


def _record(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidField(field, "expected a record")
    return value


# ------------------------------------------------------------------ plan version


def _price_to(p: PriceSpec, path: str) -> Record:
    return {
        "feature_id": p.feature_id,
        "strategy": p.strategy,
        "included": dec_to(p.included, f"{path}.included"),
        "unit_price": opt_dec_to(p.unit_price, f"{path}.unit_price"),
        "per": opt_dec_to(p.per, f"{path}.per"),
        "rounding": p.rounding,
        "tiers": [
            {
                "up_to": opt_dec_to(t.up_to, f"{path}.tiers[{i}].up_to"),
                "unit_price": dec_to(t.unit_price, f"{path}.tiers[{i}].unit_price"),
            }
            for i, t in enumerate(p.tiers)
        ],
        "token_property": p.token_property,
        "token_rates": [
            {
                "value": r.value,
                "input": dec_to(r.input, f"{path}.token_rates[{i}].input"),
                "output": dec_to(r.output, f"{path}.token_rates[{i}].output"),
            }
            for i, r in enumerate(p.token_rates)
        ],
    }


def _price_from(raw: Any, path: str) -> PriceSpec:
    r = _record(raw, path)
    tiers = []
    for i, t in enumerate(_items(r, "tiers", path)):
        where = f"{path}.tiers[{i}]"
        tr = _record(t, where)
        tiers.append(
            TierSpec(opt_dec_from(tr, "up_to", path=where), dec_from(tr, "unit_price", path=where))
        )
    rates = []
    for i, t in enumerate(_items(r, "token_rates", path)):
        where = f"{path}.token_rates[{i}]"
        tr = _record(t, where)
        rates.append(
            TokenRateSpec(
                str_from(tr, "value", path=where),
                dec_from(tr, "input", path=where),
                dec_from(tr, "output", path=where),
            )
        )
    return PriceSpec(
        feature_id=str_from(r, "feature_id", path=path),
        strategy=str_from(r, "strategy", path=path),
        included=dec_from(r, "included", path=path),
        unit_price=opt_dec_from(r, "unit_price", path=path),
        per=opt_dec_from(r, "per", path=path),
        rounding=opt_str_from(r, "rounding", path=path),
        tiers=tuple(tiers),
        token_property=opt_str_from(r, "token_property", path=path),
        token_rates=tuple(rates),
    )


def _cost_to(c: CreditCostSpec, path: str) -> Record:
    return {
        "feature_id": c.feature_id,
        "property": c.property,
        "costs": dec_map_to(dict(c.costs), f"{path}.costs"),
        "default": opt_dec_to(c.default, f"{path}.default"),
    }


def _cost_from(raw: Any, path: str) -> CreditCostSpec:
    r = _record(raw, path)
    return CreditCostSpec(
        feature_id=str_from(r, "feature_id", path=path),
        property=opt_str_from(r, "property", path=path),
        costs=tuple(sorted(dec_map_from(r, "costs", path=path).items())),
        default=opt_dec_from(r, "default", path=path),
    )


def to_avro_plan_version_published(p: PlanVersionPublished) -> Record:
    return {
        "plan_id": p.plan_id,
        "version": int_to(p.version, "version"),
        "name": p.name,
        "currency": p.currency,
        "model": p.model,
        "base_fee": dec_to(p.base_fee, "base_fee"),
        "seat_fee": dec_to(p.seat_fee, "seat_fee"),
        "spend_cap": opt_dec_to(p.spend_cap, "spend_cap"),
        "hard_cap": p.hard_cap,
        "alert_thresholds": [int_to(t, "alert_thresholds") for t in p.alert_thresholds],
        "credit_packs": list(p.credit_packs),
        "prices": [_price_to(x, f"prices[{i}]") for i, x in enumerate(p.prices)],
        "credit_costs": [_cost_to(x, f"credit_costs[{i}]") for i, x in enumerate(p.credit_costs)],
    }


def _hard_cap(r: Mapping[str, Any]) -> bool:
    value = r.get("hard_cap", False)  # absent in records written with schema v1
    if not isinstance(value, bool):
        raise InvalidField("hard_cap", f"expected a boolean, got {value!r}")
    return value


def from_avro_plan_version_published(r: Mapping[str, Any]) -> PlanVersionPublished:
    model = str_from(r, "model")
    if model not in MODELS:
        raise InvalidField("model", f"unknown consumption model {model!r}")
    thresholds = _items(r, "alert_thresholds")
    packs = _items(r, "credit_packs")
    if not all(isinstance(x, str) and x for x in packs):
        raise InvalidField("credit_packs", "expected non-empty pack ids")
    return PlanVersionPublished(
        plan_id=str_from(r, "plan_id"),
        version=int_from(r, "version"),
        name=str_from(r, "name", empty_ok=True),
        currency=str_from(r, "currency"),
        model=model,
        base_fee=dec_from(r, "base_fee"),
        seat_fee=dec_from(r, "seat_fee"),
        spend_cap=opt_dec_from(r, "spend_cap"),
        hard_cap=_hard_cap(r),
        alert_thresholds=tuple(int_to(t, "alert_thresholds") for t in thresholds),
        credit_packs=tuple(packs),
        prices=tuple(_price_from(x, f"prices[{i}]") for i, x in enumerate(_items(r, "prices"))),
        credit_costs=tuple(
            _cost_from(x, f"credit_costs[{i}]") for i, x in enumerate(_items(r, "credit_costs"))
        ),
    )


# --------------------------------------------------- features, packs, retirements


def to_avro_feature_published(f: FeaturePublished) -> Record:
    return {"feature_id": f.feature_id, "unit": f.unit}


def from_avro_feature_published(r: Mapping[str, Any]) -> FeaturePublished:
    return FeaturePublished(str_from(r, "feature_id"), str_from(r, "unit"))


def to_avro_credit_pack_published(p: CreditPackPublished) -> Record:
    return {
        "pack_id": p.pack_id,
        "credits": dec_to(p.credits, "credits"),
        "price": dec_to(p.price, "price"),
        "currency": p.currency,
    }


def from_avro_credit_pack_published(r: Mapping[str, Any]) -> CreditPackPublished:
    return CreditPackPublished(
        str_from(r, "pack_id"),
        dec_from(r, "credits"),
        dec_from(r, "price"),
        str_from(r, "currency"),
    )


def to_avro_plan_retired(p: PlanRetired) -> Record:
    return {"plan_id": p.plan_id, "retired_at": time_to(p.retired_at, "retired_at")}


def from_avro_plan_retired(r: Mapping[str, Any]) -> PlanRetired:
    return PlanRetired(str_from(r, "plan_id"), time_from(r, "retired_at"))
