"""The catalog: features, plans and credit packs as frozen, validated values.

A plan has exactly one consumption model:
- `metered`: usage accumulates per feature per period and is invoiced in arrears
  (`prices`, optional `included` allowances, optional hard `spend_cap`);
- `credits`: each event costs credits (`credit_costs`), bought as `credit_packs`;
- `balance`: each event's money cost (`prices`) is deducted from a prepaid wallet.

Every plan may carry a base fee and a per-seat fee per period. Alert thresholds are
percentages: of the allowance for metered plans (default 80 and 100), of the last
top-up for credits and balance plans (default 20, 10 and 0).

`parse_catalog` turns plain data (what YAML gives) into a `Catalog` or raises
`CatalogError` listing every problem, each naming the plan and the field. Reading
YAML is the edge's job (`streambill.config.catalog_file`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

from billing.money import Currency
from billing.pricing import QuantityPricing
from billing.pricing.per_token import PerToken

Model = Literal["metered", "credits", "balance"]
MODELS: tuple[Model, ...] = ("metered", "credits", "balance")
DEFAULT_THRESHOLDS: Mapping[Model, tuple[int, ...]] = {
    "metered": (80, 100),
    "credits": (20, 10, 0),
    "balance": (20, 10, 0),
}


@dataclass(frozen=True, slots=True)
class Feature:
    id: str
    unit: str


@dataclass(frozen=True, slots=True)
class CreditPack:
    id: str
    credits: Decimal
    price: Decimal
    currency: Currency


@dataclass(frozen=True, slots=True)
class CreditCost:
    """Credits per unit of quantity: by the value of `property` (if set), else `default`.
    The rule that applies it is `billing.rating.credit_cost` (nowhere else)."""

    property: str | None
    costs: Mapping[str, Decimal]
    default: Decimal | None


@dataclass(frozen=True, slots=True)
class FeaturePrice:
    """How one feature is priced on a metered or balance plan.

    Exactly one of `pricing` (quantity-based, allowance already folded in) and
    `tokens` (input/output per property value) is set. `counts_requests`: the
    quantity priced is the number of events. `alert_levels` are the metered
    allowance thresholds as (percent, usage level), ascending."""

    feature_id: str
    strategy: str
    included: Decimal
    pricing: QuantityPricing | None
    tokens: PerToken | None
    counts_requests: bool
    alert_levels: tuple[tuple[int, Decimal], ...]


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    version: int
    currency: Currency
    model: Model
    base_fee: Decimal
    seat_fee: Decimal
    prices: Mapping[str, FeaturePrice]
    credit_costs: Mapping[str, CreditCost]
    credit_packs: tuple[str, ...]
    alert_thresholds: tuple[int, ...]
    spend_cap: Decimal | None
    name: str = ""
    # A hard cap refuses usage that would take the period's spend past `spend_cap`
    # (`spend_cap_exceeded`, never billed); a soft one (default) alerts and bills on.
    hard_cap: bool = False


def plan_ref(plan_id: str, version: int) -> str:
    """How a customer's state pins one plan version: `"<plan id>@<version>"` (plan ids
    may not contain `@`, so a reference is never a plan id)."""
    return f"{plan_id}@{version}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """Features, credit packs and every version of every plan.

    `plans` holds each plan id at its highest version (what a new subscription is
    offered); `older` the other versions, still billed to the customers pinned to
    them. `refs` resolves what a customer's state records as its plan: a pin
    (`plan_ref`) to that exact version, or a bare plan id (states and subscription
    events from before versions were pinned) to the plan's lowest version, so a
    later version never reprices them. Lookups on the fold's path are one `refs.get`."""

    features: Mapping[str, Feature]
    plans: Mapping[str, Plan]
    credit_packs: Mapping[str, CreditPack]
    older: tuple[Plan, ...] = ()
    refs: Mapping[str, Plan] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        refs: dict[str, Plan] = {}
        for plan in sorted((*self.older, *self.plans.values()), key=lambda p: -p.version):
            refs[plan_ref(plan.id, plan.version)] = plan
            refs[plan.id] = plan  # the lowest version wins (sorted by descending version)
        object.__setattr__(self, "refs", MappingProxyType(refs))

    def plan(self, plan_id: str) -> Plan | None:
        """The highest version of `plan_id`."""
        return self.plans.get(plan_id)

    def version(self, plan_id: str, version: int) -> Plan | None:
        return None if "@" in plan_id else self.refs.get(plan_ref(plan_id, version))

    def versions(self, plan_id: str) -> tuple[int, ...]:
        """The versions of `plan_id` in this catalog, ascending."""
        return tuple(
            sorted(p.version for p in (*self.older, *self.plans.values()) if p.id == plan_id)
        )


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Validate plain data into a `Catalog`; `CatalogError` lists every problem."""
    from billing.bounds import exact_context
    from billing.catalog_parse import parse

    return exact_context(parse)(data)
