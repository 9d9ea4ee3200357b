"""Read-model views: what the API and the portal show, read from the store only.

Values stay exact: decimal strings come out of the store and go to the caller as
the same strings; arithmetic for display (percentages) uses `Decimal`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.catalog import Catalog
from billing.entitlement import refusal
from projections.read.errors import NotFound
from projections.read.series import ALERT_HISTORY_LIMIT
from projections.read.store import ReadModelStore


@dataclass(frozen=True, slots=True)
class Freshness:
    """The customer-state record an answer reflects, and what that snapshot folded."""

    topic: str
    partition: int
    offset: int
    source_offsets: dict[str, int]
    updated_at: str | None

    @classmethod
    def parse(cls, offset: str | None, sources: str | None, updated: str | None) -> Freshness:
        topic, partition, number = (offset or "//-1").rsplit("/", 2)
        return cls(
            topic=topic,
            partition=int(partition or -1),
            offset=int(number),
            source_offsets=json.loads(sources) if sources else {},
            updated_at=updated,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "source_offsets": self.source_offsets,
            "updated_at": self.updated_at,
        }


def state_or_404(store: ReadModelStore, customer_id: str) -> dict[str, str]:
    state = store.state(customer_id)
    if not state:
        raise NotFound(f"no billing state for customer {customer_id}")
    return state


def freshness(state: dict[str, str]) -> Freshness:
    return Freshness.parse(
        state.get("offset"), state.get("source_offsets"), state.get("updated_at")
    )


def _per_feature(state: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix) :]: v for k, v in sorted(state.items()) if k.startswith(prefix)}


def usage(state: dict[str, str]) -> dict[str, Any]:
    used = _per_feature(state, "usage:")
    remaining = _per_feature(state, "remaining:")
    features = []
    for feature in sorted(set(used) | set(remaining)):
        u, r = used.get(feature), remaining.get(feature)
        # The allowance is used + remaining while some remains; once it is used up the
        # snapshot no longer tells how large it was, so none is claimed.
        allowance = None
        if r is not None and Decimal(r) > 0:
            allowance = str(Decimal(u or "0") + Decimal(r))
        features.append(
            {"feature_id": feature, "used": u or "0", "remaining": r, "allowance": allowance}
        )
    return {
        "customer_id": state["customer_id"],
        "plan_id": state.get("plan_id"),
        "model": state.get("model"),
        "period_start": state.get("period_start"),
        "period_end": state.get("period_end"),
        "features": features,
        "freshness": freshness(state).as_dict(),
    }


def balance(state: dict[str, str], trend: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Credits or balance and the last top-up; `trend` is `views.trend` (read apart)."""
    model = state.get("model")
    current = state.get("credits_remaining") if model == "credits" else state.get("balance")
    topup = state.get("last_topup")
    used_since = None
    if current is not None and topup is not None:
        used_since = str(Decimal(topup) - Decimal(current))
    return {
        "customer_id": state["customer_id"],
        "model": model,
        "currency": state.get("currency"),
        "credits_remaining": state.get("credits_remaining"),
        "balance": state.get("balance"),
        "last_topup": topup,
        "used_since_topup": used_since,
        "trend": trend or [],
        "allowed": state.get("allowed") == "1",
        "freshness": freshness(state).as_dict(),
    }


def upcoming_invoice(state: dict[str, str]) -> dict[str, Any]:
    raw = state.get("upcoming_invoice")
    return {
        "customer_id": state["customer_id"],
        "invoice": json.loads(raw) if raw else None,
        "freshness": freshness(state).as_dict(),
    }


def alerts(store: ReadModelStore, customer_id: str) -> list[dict[str, Any]]:
    items = [json.loads(v) for v in store.alerts(customer_id).values()]
    return sorted(items, key=lambda a: (a["timestamp"] or "", a["alert_id"]), reverse=True)


def alert_history(store: ReadModelStore, customer_id: str) -> list[dict[str, Any]]:
    """The recent alert events, raised and resolved, newest first (log order)."""
    return [json.loads(entry) for entry in store.alert_history(customer_id)]


def recent_alerts(store: ReadModelStore, customer_id: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "limit": ALERT_HISTORY_LIMIT,
        "recent": alert_history(store, customer_id),
    }


def trend(store: ReadModelStore, customer_id: str) -> list[dict[str, Any]]:
    """{at, value} points of the credits or balance since the last top-up, oldest first."""
    return [json.loads(point) for point in store.trend(customer_id)]


def invoices(store: ReadModelStore, customer_id: str) -> list[dict[str, Any]]:
    items = [json.loads(v) for v in store.invoices(customer_id).values()]
    return sorted(items, key=lambda i: (i["issued_at"] or "", i["invoice_id"]), reverse=True)


ENTITLEMENT_FIELDS = (
    "customer_id",
    "allowed",
    "status",
    "plan_id",
    "plan_version",
    "model",
    "credits_remaining",
    "balance",
    "offset",
    "source_offsets",
    "updated_at",
)


def entitlement(
    store: ReadModelStore, customer_id: str, feature_id: str, catalog: Catalog | None = None
) -> dict[str, Any]:
    """One HMGET: allowed, why not (`billing.entitlement.refusal`: a feature the
    customer's plan version does not bill is denied, when `catalog` holds that
    version), what remains (allowance, credits or money) and freshness."""
    values = store.state_fields(customer_id, [*ENTITLEMENT_FIELDS, f"remaining:{feature_id}"])
    row = dict(zip(ENTITLEMENT_FIELDS, values[:-1], strict=True))
    if row["customer_id"] is None:
        raise NotFound(f"no billing state for customer {customer_id}")
    model = row["model"]
    if model == "credits":
        remaining, unit = row["credits_remaining"], "credits"
    elif model == "balance":
        remaining, unit = row["balance"], "money"
    else:
        remaining, unit = values[-1], "quantity"
    plan = None
    if catalog is not None and row["plan_id"] is not None:
        version = row["plan_version"]
        plan = (
            catalog.plan(row["plan_id"])
            if version is None
            else catalog.version(row["plan_id"], int(version))
        )
    reason = refusal(
        allowed=row["allowed"] == "1",
        status=row["status"],
        model=model,
        credits=None if row["credits_remaining"] is None else Decimal(row["credits_remaining"]),
        balance=None if row["balance"] is None else Decimal(row["balance"]),
        plan=plan,
        feature_id=feature_id,
    )
    return {
        "customer_id": customer_id,
        "feature_id": feature_id,
        "allowed": reason is None,
        "reason": reason,
        "remaining": remaining,
        "unit": unit,
        "model": model,
        "freshness": Freshness.parse(
            row["offset"], row["source_offsets"], row["updated_at"]
        ).as_dict(),
    }
