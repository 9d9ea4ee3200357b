"""`streambill simulate --compare`: the same history priced under a second catalog.

A back-test must not report a difference it did not compute. A customer whose plan
the other catalog lacks would have every event rejected there and show an "other"
revenue of 0.00, which reads as a price cut; so `check_plans` refuses the comparison
and names those plans, unless a plan map (`--map OLD_PLAN=NEW_PLAN`) says under which
plan of the other catalog to price them. `remap` rewrites the subscriptions of the
history for the other run only; the base run always prices the history as it is.

Prepayments (the purchase invoices of credit packs and wallet deposits) are money
received in advance for usage, not revenue of the range; they are compared apart
from revenue (the period invoices and adjustments). Rejections that only the other
run made are reported too, so nothing the other catalog refuses disappears silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.catalog import Catalog
from billing.events import Event, Invoice, SubscriptionChanged, SubscriptionStarted
from processors.simulate.simulation import SimulationResult


class CompareError(Exception):
    """The comparison cannot be made as asked; the message says why and what to do."""


def parse_plan_map(pairs: Sequence[str]) -> dict[str, str]:
    """`OLD_PLAN=NEW_PLAN` items to a mapping; a malformed item or one plan mapped to
    two different plans raises `CompareError`."""
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise CompareError(f"--map {pair!r}: expected OLD_PLAN=NEW_PLAN")
        if out.get(old, new) != new:
            raise CompareError(f"--map maps plan {old!r} to both {out[old]!r} and {new!r}")
        out[old] = new
    return out


def subscribed_plans(events: Iterable[Event], end: datetime) -> set[str]:
    """Plan ids that the subscriptions of the history (before `end`) name."""
    return {
        e.plan_id
        for e in events
        if isinstance(e, SubscriptionStarted | SubscriptionChanged) and e.timestamp < end
    }


def check_plans(
    events: Iterable[Event],
    end: datetime,
    base: Catalog,
    other: Catalog,
    plan_map: Mapping[str, str],
    other_name: str = "the other catalog",
) -> None:
    """Raise `CompareError` listing every plan the history subscribes to that the base
    catalog prices and `other` lacks, unless `plan_map` maps it, and every map target
    `other` lacks as well. A plan neither catalog has is rejected alike in both runs."""
    problems: list[str] = []
    missing = sorted(
        plan
        for plan in subscribed_plans(events, end)
        if base.plan(plan) is not None and other.plan(plan) is None and plan not in plan_map
    )
    if missing:
        problems.append(
            f"plan(s) missing from {other_name}: {', '.join(missing)}; their customers would"
            " be priced at 0.00 there. Map each to a plan it has with"
            " --map OLD_PLAN=NEW_PLAN"
        )
    targets = sorted({new for new in plan_map.values() if other.plan(new) is None})
    if targets:
        problems.append(f"--map target plan(s) missing from {other_name}: {', '.join(targets)}")
    if problems:
        raise CompareError("; ".join(problems))


def remap(events: Iterable[Event], plan_map: Mapping[str, str]) -> list[Event]:
    """The history with every subscription to a mapped plan moved to its target (at
    the target's lowest version: a pin names a version of the plan it was made for)."""
    out: list[Event] = []
    for e in events:
        if isinstance(e, SubscriptionStarted | SubscriptionChanged) and e.plan_id in plan_map:
            e = replace(e, plan_id=plan_map[e.plan_id], plan_version=None)
        out.append(e)
    return out


@dataclass(frozen=True)
class RevenueDiff:
    customer_id: str | None  # None: the total over all customers
    currency: str
    revenue: Decimal
    other_revenue: Decimal

    @property
    def difference(self) -> Decimal:
        return self.other_revenue - self.revenue


@dataclass(frozen=True)
class Comparison:
    """Revenue (period invoices, adjustments) and prepayments (purchase invoices), each
    per customer and currency followed by totals per currency; the plan map applied;
    the count per reason of rejections only the other run made."""

    revenue: list[RevenueDiff]
    prepayments: list[RevenueDiff]
    plan_map: Mapping[str, str] = field(default_factory=dict)
    other_only_rejections: Mapping[str, int] = field(default_factory=dict)


def _is_prepayment(inv: Invoice) -> bool:
    return inv.kind == "purchase"


def _totals(result: SimulationResult, prepaid: bool) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for inv in result.invoices:
        if _is_prepayment(inv) == prepaid:
            key = (inv.customer_id, inv.currency)
            out[key] = out.get(key, Decimal(0)) + inv.total
    return out


def _rows(
    a: Mapping[tuple[str, str], Decimal], b: Mapping[tuple[str, str], Decimal]
) -> list[RevenueDiff]:
    zero = Decimal("0.00")
    rows = [
        RevenueDiff(c, cur, a.get((c, cur), zero), b.get((c, cur), zero))
        for c, cur in sorted({*a, *b})
    ]
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for r in rows:
        x, y = totals.get(r.currency, (zero, zero))
        totals[r.currency] = (x + r.revenue, y + r.other_revenue)
    return rows + [RevenueDiff(None, cur, x, y) for cur, (x, y) in sorted(totals.items())]


def compare(
    base: SimulationResult, other: SimulationResult, plan_map: Mapping[str, str] | None = None
) -> Comparison:
    """Per customer and currency, then totals per currency (customer None), for revenue
    and for prepayments apart."""
    seen = {(r.event_id, r.reason) for r in base.rejected}
    extra = Counter(r.reason for r in other.rejected if (r.event_id, r.reason) not in seen)
    return Comparison(
        revenue=_rows(_totals(base, False), _totals(other, False)),
        prepayments=_rows(_totals(base, True), _totals(other, True)),
        plan_map=dict(plan_map or {}),
        other_only_rejections=dict(sorted(extra.items())),
    )


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """Revenue rows at the top level (`revenue`, `other_revenue`, `difference`), the
    prepayments' under `prepayments` (`prepaid`, `other_prepaid`, `difference`)."""

    def section(rows: list[RevenueDiff], name: str) -> dict[str, Any]:
        def row(r: RevenueDiff) -> dict[str, Any]:
            return {
                "currency": r.currency,
                name: str(r.revenue),
                f"other_{name}": str(r.other_revenue),
                "difference": str(r.difference),
            }

        return {
            "customers": [{"customer_id": r.customer_id, **row(r)} for r in rows if r.customer_id],
            "totals": [row(r) for r in rows if r.customer_id is None],
        }

    return {
        **section(comparison.revenue, "revenue"),
        "prepayments": section(comparison.prepayments, "prepaid"),
        "plan_map": dict(comparison.plan_map),
        "other_only_rejections": dict(comparison.other_only_rejections),
    }
