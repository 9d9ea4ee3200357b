"""Folding account events (subscriptions, seats, purchases, grants, deposits).

Same contract as `billing.usage_fold`: the given state is never mutated; a fresh
state and effects come back, or `Unrateable` for an event that cannot apply.
Account events are deduplicated by `event_id` like usage (by the ledger).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.catalog import Catalog, Plan, plan_ref
from billing.events import (
    AccountEvent,
    AlertRaised,
    AlertResolved,
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    RejectReason,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    WalletDeposited,
)
from billing.fold import (
    NO_EFFECTS,
    Effects,
    add_credits,
    live_balance,
    locate,
    plan_of,
    put_record,
    subscribed_period,
    value_alerts,
)
from billing.invoicing import purchase_invoice
from billing.pricing import LineItem
from billing.rating import Unrateable, out_of_range
from billing.state import CustomerState

ZERO = Decimal(0)
Result = tuple[CustomerState, Effects, datetime]


def _pin(catalog: Catalog, plan_id: str, version: int | None) -> str:
    """What the state records as the plan of a subscription event: the pinned version
    (`plan_ref`), or for an event without one the bare plan id, which always means
    the plan's lowest version (`Catalog.refs`). An unknown plan or version is refused."""
    if version is None:
        if "@" in plan_id or plan_id not in catalog.plans:
            raise Unrateable(RejectReason.INVALID_FIELD, f"unknown plan {plan_id!r}")
        return plan_id
    if catalog.version(plan_id, version) is None:
        known = catalog.versions(plan_id)
        raise Unrateable(
            RejectReason.INVALID_FIELD,
            f"unknown plan version {plan_id!r} v{version}"
            + (f" (the catalog has {', '.join(f'v{n}' for n in known)})" if known else ""),
        )
    return plan_ref(plan_id, version)


def _seats(seats: int) -> int:
    if not isinstance(seats, int) or seats < 0:
        raise Unrateable(RejectReason.INVALID_FIELD, f"seats {seats!r} must be a whole number >= 0")
    return seats


def _started(state: CustomerState, e: SubscriptionStarted, catalog: Catalog) -> Result:
    if state.status != "none":
        raise Unrateable(RejectReason.INVALID_FIELD, "customer is already subscribed")
    pinned = _pin(catalog, e.plan_id, e.plan_version)
    new = state.copy()
    new.status, new.anchor = "active", e.timestamp
    new.plans = ((e.timestamp, pinned),)
    new.seats = ((e.timestamp, _seats(e.seats)),)
    return new, NO_EFFECTS, e.timestamp


def _changed(state: CustomerState, e: SubscriptionChanged, catalog: Catalog) -> Result:
    """The new plan applies from the next period boundary; retained records of
    periods from then on (possible when the change arrives late) switch plan."""
    start, end = subscribed_period(state, e.timestamp)
    pinned = _pin(catalog, e.plan_id, e.plan_version)
    new = state.copy()
    new.plans = tuple(sorted({**dict(state.plans), end: pinned}.items()))
    records = state.records()
    for s, rec in records.items():
        if s >= end and rec.plan_id != pinned:
            moved = rec.copy()
            moved.plan_id = new.plan_at(s) or rec.plan_id
            records[s] = moved
    new.with_records(records)
    return new, NO_EFFECTS, start


def _cancelled(state: CustomerState, e: SubscriptionCancelled, catalog: Catalog) -> Result:
    start, end = subscribed_period(state, e.timestamp)
    new = state.copy()
    new.status = "cancelled"
    new.cancel_at = end if state.cancel_at is None else min(end, state.cancel_at)
    return new, NO_EFFECTS, start


def _seats_changed(state: CustomerState, e: SeatsChanged, catalog: Catalog) -> Result:
    start, _ = subscribed_period(state, e.timestamp)
    new = state.copy()
    timeline = dict(state.seats)
    timeline[e.timestamp] = _seats(e.seats)
    new.seats = tuple(sorted(timeline.items()))
    return new, NO_EFFECTS, start


def _topped_up(
    new: CustomerState, plan: Plan, amount: Decimal, value: Decimal, at: datetime
) -> tuple[AlertRaised | AlertResolved, ...]:
    new.last_topup = amount
    return value_alerts(new, plan, value, at)


def _purchased(state: CustomerState, e: CreditsPurchased, catalog: Catalog) -> Result:
    rec = locate(state, e.timestamp)
    plan = plan_of(catalog, rec)
    if plan.model != "credits":
        raise Unrateable(RejectReason.INVALID_FIELD, f"plan {plan.id!r} does not use credits")
    pack = catalog.credit_packs.get(e.pack_id)
    if pack is None or e.pack_id not in plan.credit_packs:
        raise Unrateable(
            RejectReason.INVALID_FIELD, f"pack {e.pack_id!r} is not sold on plan {plan.id!r}"
        )
    if not isinstance(e.quantity, int) or e.quantity < 1:
        raise Unrateable(RejectReason.INVALID_FIELD, f"quantity {e.quantity!r} must be >= 1")
    credits = pack.credits * e.quantity
    new = state.copy()
    put_record(new, rec.copy())
    new.grants = add_credits(state.grants, credits, None)
    alerts = _topped_up(new, plan, credits, new.credits_remaining(e.timestamp), e.timestamp)
    item = LineItem(
        f"Credit pack {pack.id} ({pack.credits} credits)", Decimal(e.quantity), pack.price,
        pack.price * e.quantity,
    )  # fmt: skip
    invoice = purchase_invoice(
        customer_id=state.customer_id, plan=plan, event_id=e.event_id, at=e.timestamp,
        period=(rec.start, rec.end), items=[item],
    )  # fmt: skip
    return new, Effects(alerts=alerts, invoices=(invoice,)), rec.start


def _granted(state: CustomerState, e: CreditsGranted, catalog: Catalog) -> Result:
    rec = locate(state, e.timestamp)
    plan = plan_of(catalog, rec)
    if plan.model != "credits":
        raise Unrateable(RejectReason.INVALID_FIELD, f"plan {plan.id!r} does not use credits")
    if not e.credits.is_finite() or e.credits < 0:
        raise Unrateable(RejectReason.INVALID_FIELD, f"credits {e.credits} must be >= 0")
    out_of_range("credits", e.credits)
    if e.expires_at is not None and e.expires_at.tzinfo is None:
        raise Unrateable(RejectReason.INVALID_FIELD, "expires_at must be timezone-aware")
    new = state.copy()
    put_record(new, rec.copy())
    new.grants = add_credits(state.grants, e.credits, e.expires_at)
    alerts = _topped_up(new, plan, e.credits, new.credits_remaining(e.timestamp), e.timestamp)
    return new, Effects(alerts=alerts), rec.start


def _wallet(
    state: CustomerState, e: WalletDeposited | BalanceAdjusted, catalog: Catalog
) -> tuple[CustomerState, Plan, tuple[datetime, datetime]]:
    rec = locate(state, e.timestamp)
    plan = plan_of(catalog, rec)
    if plan.model != "balance":
        raise Unrateable(RejectReason.INVALID_FIELD, f"plan {plan.id!r} has no wallet")
    if e.currency != plan.currency.code:
        raise Unrateable(
            RejectReason.INVALID_FIELD,
            f"currency {e.currency!r} but the wallet is in {plan.currency.code}",
        )
    if not e.amount.is_finite():
        raise Unrateable(RejectReason.INVALID_FIELD, f"amount {e.amount} is not finite")
    out_of_range("amount", e.amount)
    new_rec = rec.copy()
    new_rec.topped = rec.topped + e.amount
    new = state.copy()
    put_record(new, new_rec)
    new.balance = live_balance(new)
    return new, plan, (rec.start, rec.end)


def _deposited(state: CustomerState, e: WalletDeposited, catalog: Catalog) -> Result:
    if e.amount.is_finite() and e.amount <= 0:
        raise Unrateable(RejectReason.INVALID_FIELD, f"deposit {e.amount} must be positive")
    new, plan, period = _wallet(state, e, catalog)
    alerts = _topped_up(new, plan, e.amount, new.balance, e.timestamp)
    item = LineItem("Wallet deposit", Decimal(1), e.amount, e.amount)
    invoice = purchase_invoice(
        customer_id=state.customer_id, plan=plan, event_id=e.event_id, at=e.timestamp,
        period=period, items=[item],
    )  # fmt: skip
    return new, Effects(alerts=alerts, invoices=(invoice,)), period[0]


def _adjusted(state: CustomerState, e: BalanceAdjusted, catalog: Catalog) -> Result:
    """A correction, not a top-up: the alert reference stays, alerts re-evaluate."""
    new, plan, period = _wallet(state, e, catalog)
    alerts = value_alerts(new, plan, new.balance, e.timestamp)
    return new, Effects(alerts=alerts), period[0]


HANDLERS: dict[type, Callable[[CustomerState, Any, Catalog], Result]] = {
    SubscriptionStarted: _started,
    SubscriptionChanged: _changed,
    SubscriptionCancelled: _cancelled,
    SeatsChanged: _seats_changed,
    CreditsPurchased: _purchased,
    CreditsGranted: _granted,
    WalletDeposited: _deposited,
    BalanceAdjusted: _adjusted,
}


def fold_account(state: CustomerState, event: AccountEvent, catalog: Catalog) -> Result:
    return HANDLERS[type(event)](state, event, catalog)
