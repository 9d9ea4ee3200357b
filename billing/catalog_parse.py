"""Validation of plain catalog data (see `billing.catalog` for the model).

Every check appends a problem naming where it is ("plan 'writer' field
'prices.tokens.unit_price': ...") and carries on, so `CatalogError` reports all
problems of a file in one run instead of the first one only.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from billing import bounds as number_bounds
from billing.catalog import (
    DEFAULT_THRESHOLDS,
    MODELS,
    Catalog,
    CreditCost,
    CreditPack,
    Feature,
    FeaturePrice,
    Model,
    Plan,
)
from billing.errors import CatalogError, CurrencyError
from billing.money import Currency, currency
from billing.pricing import QuantityPricing
from billing.pricing.graduated import Graduated
from billing.pricing.included import WithAllowance
from billing.pricing.per_minute import PerMinute
from billing.pricing.per_request import PerRequest
from billing.pricing.per_token import PerToken, TokenRate, token_rate
from billing.pricing.per_unit import PerUnit
from billing.pricing.tiers import build_tiers, tier_problems
from billing.pricing.volume import Volume

ZERO = Decimal(0)
STRATEGIES = ("per_unit", "graduated", "volume", "per_request", "per_token", "per_minute")
MODEL_ONLY_FIELDS: Mapping[str, Model] = {
    "credit_costs": "credits",
    "credit_packs": "credits",
    "spend_cap": "metered",
    "spend_cap_mode": "metered",
}


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, field: str, message: str) -> None:
        self.items.append(f"{where} field '{field}': {message}")


def _number(
    value: Any, where: str, field: str, p: _Problems, *, what: str = "price", positive: bool = False
) -> Decimal | None:
    """A non-negative Decimal from an int or a decimal string, within the bounds of
    `billing.bounds`; floats are refused because YAML floats are binary
    approximations of what the author wrote."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        hint = " (write it as a quoted decimal string)" if isinstance(value, float) else ""
        p.add(where, field, f"{what} must be an integer or a decimal string, got {value!r}{hint}")
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        p.add(where, field, f"{what} {value!r} is not a number")
        return None
    if not d.is_finite():
        p.add(where, field, f"{what} {value!r} is not finite")
        return None
    if d < 0:
        p.add(where, field, f"negative {what} {value}")
        return None
    beyond = number_bounds.problem(d)
    if beyond is not None:  # the bounds of billing.bounds, like every input number
        p.add(where, field, f"{what} {beyond}")
        return None
    if positive and d == 0:
        p.add(where, field, f"{what} must be greater than zero")
        return None
    return d


def _mapping(value: Any, where: str, field: str, p: _Problems) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        p.add(where, field, f"must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _list(value: Any, where: str, field: str, p: _Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add(where, field, f"must be a list, got {type(value).__name__}")
        return []
    return value


def _features(data: Mapping[str, Any], p: _Problems) -> dict[str, Feature]:
    out: dict[str, Feature] = {}
    for i, raw in enumerate(_list(data.get("features"), "catalog", "features", p)):
        where = f"feature #{i + 1}"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            p.add(where, "id", "every feature needs a string id")
            continue
        fid = raw["id"]
        if fid in out:
            p.add(f"feature '{fid}'", "id", "duplicate feature id")
        out[fid] = Feature(fid, str(raw.get("unit", "unit")))
    return out


def _packs(data: Mapping[str, Any], p: _Problems) -> dict[str, CreditPack]:
    out: dict[str, CreditPack] = {}
    for i, raw in enumerate(_list(data.get("credit_packs"), "catalog", "credit_packs", p)):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            p.add(f"credit pack #{i + 1}", "id", "every credit pack needs a string id")
            continue
        where = f"credit pack '{raw['id']}'"
        credits = _number(raw.get("credits"), where, "credits", p, what="credits", positive=True)
        price = _number(raw.get("price"), where, "price", p)
        cur = _currency(raw.get("currency"), where, p)
        if raw["id"] in out:
            p.add(where, "id", "duplicate credit pack id")
        if credits is not None and price is not None and cur is not None:
            out[raw["id"]] = CreditPack(raw["id"], credits, price, cur)
    return out


def _currency(code: Any, where: str, p: _Problems) -> Currency | None:
    try:
        return currency(str(code))
    except CurrencyError:
        p.add(where, "currency", f"unknown currency {code!r}")
        return None


def _tiers(raw: Mapping[str, Any], where: str, field: str, p: _Problems) -> Any:
    rows = _list(raw.get("tiers"), where, f"{field}.tiers", p)
    bounds: list[tuple[Decimal | None, Decimal | None]] = []
    priced: list[tuple[Decimal | None, Decimal]] = []
    ok = True
    for j, row in enumerate(rows):
        f = f"{field}.tiers[{j}]"
        if not isinstance(row, Mapping):
            p.add(where, f, "a tier must be a mapping with up_to and unit_price")
            ok = False
            continue
        start = (
            None
            if row.get("from") is None
            else _number(row["from"], where, f + ".from", p, what="bound")
        )
        up_to = (
            None
            if row.get("up_to") is None
            else _number(row["up_to"], where, f + ".up_to", p, what="bound")
        )
        price = _number(row.get("unit_price"), where, f + ".unit_price", p)
        if price is None or (row.get("up_to") is not None and up_to is None):
            ok = False
            continue
        bounds.append((start, up_to))
        priced.append((up_to, price))
    for problem in tier_problems(bounds):
        p.add(where, f"{field}.tiers", problem)
        ok = False
    return build_tiers(priced) if ok else None


def _quantity_pricing(
    kind: str, raw: Mapping[str, Any], where: str, field: str, p: _Problems
) -> QuantityPricing | None:
    block = _number(raw.get("per", 1), where, f"{field}.per", p, what="block size", positive=True)
    rounding = raw.get("rounding", "pro_rata")
    if rounding not in ("pro_rata", "per_started_block"):
        p.add(
            where, f"{field}.rounding", f"must be pro_rata or per_started_block, got {rounding!r}"
        )
    started = rounding == "per_started_block"
    if kind in ("graduated", "volume"):
        tiers = _tiers(raw, where, field, p)
        if tiers is None or block is None:
            return None
        return Graduated(tiers, block) if kind == "graduated" else Volume(tiers, block)
    price = _number(raw.get("unit_price"), where, f"{field}.unit_price", p)
    if price is None or block is None:
        return None
    if kind == "per_unit":
        return PerUnit(price, block, started)
    if kind == "per_minute":
        return PerMinute(price, started)
    return PerRequest(price)


def _per_token(raw: Mapping[str, Any], where: str, field: str, p: _Problems) -> PerToken | None:
    prop = raw.get("property", "model")
    per = _number(
        raw.get("per", 1_000_000), where, f"{field}.per", p, what="block size", positive=True
    )
    rates: dict[str, TokenRate] = {}
    table = _mapping(raw.get("rates"), where, f"{field}.rates", p)
    if not table:
        p.add(where, f"{field}.rates", "per_token needs rates by property value")
    for key, rate in table.items():
        r = _mapping(rate, where, f"{field}.rates.{key}", p)
        i = _number(r.get("input"), where, f"{field}.rates.{key}.input", p)
        o = _number(r.get("output"), where, f"{field}.rates.{key}.output", p)
        if i is not None and o is not None and per is not None:
            rates[str(key)] = token_rate(i, o, per)
    if per is None or len(rates) != len(table) or not isinstance(prop, str):
        return None
    return PerToken(prop, MappingProxyType(rates), per)


def _price(
    fid: str, raw: Any, model: Model, thresholds: tuple[int, ...], where: str, p: _Problems
) -> FeaturePrice | None:
    field = f"prices.{fid}"
    spec = _mapping(raw, where, field, p)
    kind = spec.get("strategy")
    if kind not in STRATEGIES:
        p.add(
            where,
            f"{field}.strategy",
            f"unknown strategy {kind!r} (one of {', '.join(STRATEGIES)})",
        )
        return None
    if kind == "volume" and model == "balance":
        p.add(
            where,
            f"{field}.strategy",
            "volume tiers can lower the price of past usage; "
            "not allowed on a balance plan (deducted in real time)",
        )
    included = _number(spec.get("included", 0), where, f"{field}.included", p, what="allowance")
    if included is None:
        return None
    levels = tuple((t, included * t / 100) for t in sorted(thresholds)) if included > 0 else ()
    if kind == "per_token":
        tokens = _per_token(spec, where, field, p)
        if tokens is None:
            return None
        return FeaturePrice(fid, kind, included, None, tokens, False, levels)
    pricing = _quantity_pricing(str(kind), spec, where, field, p)
    if pricing is None:
        return None
    if included > 0:
        pricing = WithAllowance(included, pricing)
    return FeaturePrice(fid, str(kind), included, pricing, None, kind == "per_request", levels)


def _credit_cost(fid: str, raw: Any, where: str, p: _Problems) -> CreditCost | None:
    field = f"credit_costs.{fid}"
    if isinstance(raw, int | str) and not isinstance(raw, bool):
        flat = _number(raw, where, field, p, what="credit cost")
        return None if flat is None else CreditCost(None, MappingProxyType({}), flat)
    spec = _mapping(raw, where, field, p)
    prop = spec.get("property")
    costs: dict[str, Decimal] = {}
    for key, value in _mapping(spec.get("costs"), where, f"{field}.costs", p).items():
        c = _number(value, where, f"{field}.costs.{key}", p, what="credit cost")
        if c is not None:
            costs[str(key)] = c
    default = None
    if spec.get("default") is not None:
        default = _number(spec["default"], where, f"{field}.default", p, what="credit cost")
    if prop is None and default is None:
        p.add(where, field, "needs a property with costs, or a default cost")
        return None
    return CreditCost(None if prop is None else str(prop), MappingProxyType(costs), default)


def _thresholds(raw: Any, model: Model, where: str, p: _Problems) -> tuple[int, ...]:
    if raw is None:
        return DEFAULT_THRESHOLDS[model]
    values = _list(raw, where, "alerts", p)
    good = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100]
    if len(good) != len(values):
        p.add(where, "alerts", "thresholds must be integer percentages between 0 and 100")
    return tuple(sorted(set(good), reverse=model != "metered"))


def _plan(
    raw: Mapping[str, Any],
    features: Mapping[str, Feature],
    packs: Mapping[str, CreditPack],
    p: _Problems,
) -> Plan | None:
    pid = raw["id"]
    where = f"plan '{pid}'"
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        p.add(where, "version", f"must be a positive integer, got {version!r}")
    cur = _currency(raw.get("currency"), where, p)
    model = raw.get("model")
    if model not in MODELS:
        p.add(where, "model", f"must be one of {', '.join(MODELS)}, got {model!r}")
        return None
    for field, owner in MODEL_ONLY_FIELDS.items():
        if raw.get(field) is not None and model != owner:
            p.add(
                where,
                field,
                f"mixes consumption models: '{field}' belongs to {owner} plans, "
                f"this plan is {model}",
            )
    if model == "credits" and raw.get("prices"):
        p.add(
            where,
            "prices",
            "mixes consumption models: a credits plan prices usage in "
            "credits (credit_costs), not money (prices)",
        )
    base = _number(raw.get("base_fee", 0), where, "base_fee", p)
    seat = _number(raw.get("seat_fee", 0), where, "seat_fee", p)
    cap = None if raw.get("spend_cap") is None else _number(raw["spend_cap"], where, "spend_cap", p)
    mode = raw.get("spend_cap_mode", "soft")
    if mode not in ("soft", "hard"):
        p.add(where, "spend_cap_mode", f"must be 'soft' or 'hard', got {mode!r}")
    elif mode == "hard" and cap is None:
        p.add(where, "spend_cap_mode", "'hard' needs a spend_cap")
    thresholds = _thresholds(raw.get("alerts"), model, where, p)
    prices: dict[str, FeaturePrice] = {}
    if model != "credits":
        for fid, spec in _mapping(raw.get("prices"), where, "prices", p).items():
            if fid not in features:
                p.add(where, f"prices.{fid}", f"price on unknown feature {fid!r}")
            fp = _price(str(fid), spec, model, thresholds, where, p)
            if fp is not None:
                prices[str(fid)] = fp
    costs: dict[str, CreditCost] = {}
    plan_packs: list[str] = []
    if model == "credits":
        for fid, spec in _mapping(raw.get("credit_costs"), where, "credit_costs", p).items():
            if fid not in features:
                p.add(where, f"credit_costs.{fid}", f"credit cost on unknown feature {fid!r}")
            cc = _credit_cost(str(fid), spec, where, p)
            if cc is not None:
                costs[str(fid)] = cc
        for pack_id in _list(raw.get("credit_packs"), where, "credit_packs", p):
            pack = packs.get(str(pack_id))
            if pack is None:
                p.add(where, "credit_packs", f"unknown credit pack {pack_id!r}")
            elif cur is not None and pack.currency != cur:
                p.add(
                    where,
                    "credit_packs",
                    f"pack {pack_id!r} is in {pack.currency.code}, the plan in {cur.code}",
                )
            plan_packs.append(str(pack_id))
    if cur is None or base is None or seat is None or not isinstance(version, int):
        return None
    return Plan(
        id=pid,
        version=version,
        currency=cur,
        model=model,
        base_fee=base,
        seat_fee=seat,
        prices=MappingProxyType(prices),
        credit_costs=MappingProxyType(costs),
        credit_packs=tuple(plan_packs),
        alert_thresholds=thresholds,
        spend_cap=cap,
        name=str(raw.get("name", "")),
        hard_cap=mode == "hard",
    )


def parse(data: Mapping[str, Any]) -> Catalog:
    p = _Problems()
    if not isinstance(data, Mapping):
        raise CatalogError([f"catalog must be a mapping, got {type(data).__name__}"])
    features = _features(data, p)
    packs = _packs(data, p)
    versions: dict[tuple[str, int], Plan] = {}
    for i, raw in enumerate(_list(data.get("plans"), "catalog", "plans", p)):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            p.add(f"plan #{i + 1}", "id", "every plan needs a string id")
            continue
        if "@" in raw["id"] or not raw["id"].strip():
            p.add(f"plan '{raw['id']}'", "id", "a plan id is not empty and has no '@'")
            continue
        plan = _plan(raw, features, packs, p)
        if plan is None:
            continue
        if (plan.id, plan.version) in versions:
            p.add(f"plan '{plan.id}'", "id", f"duplicate plan id and version {plan.version}")
        versions[(plan.id, plan.version)] = plan
    plans: dict[str, Plan] = {}
    for plan in versions.values():
        first = plans.setdefault(plan.id, plan)
        if first.model != plan.model:  # credits and wallets carry over between versions
            p.add(f"plan '{plan.id}'", "model", "every version of a plan has the same model")
        if plan.version > first.version:
            plans[plan.id] = plan
    older = tuple(versions[k] for k in sorted(versions) if plans[k[0]].version != k[1])
    if p.items:
        raise CatalogError(p.items)
    return Catalog(
        MappingProxyType(features), MappingProxyType(plans), MappingProxyType(packs), older
    )
