"""Shared pieces of the ledger fold: effects, record placement, wallet and credit
arithmetic, and credits/balance alert evaluation.

Everything here works on *fresh* copies made by the caller (see `billing.state`):
a function that changes a state receives one that nobody else has seen yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing import alerts as al
from billing.catalog import Catalog, Plan
from billing.events import (
    AlertKind,
    AlertRaised,
    AlertResolved,
    EventRejected,
    Invoice,
    RejectReason,
)
from billing.periods import period_of
from billing.rating import Unrateable
from billing.state import CustomerState, PeriodRecord, new_record

ZERO = Decimal(0)


@dataclass(frozen=True)
class Effects:
    """What applying one event did besides changing the state.

    `rejection`: the event was not applied (reason code + detail; the edge adds
    bytes and offsets). `duplicate`: the same event (id and payload) was applied
    before; nothing changed. `invoices`: purchase invoices (credit packs, deposits).
    `credits_deducted` / `money_deducted`: exact real-time deductions.

    Deliberately not slotted: the defaults stay class attributes, so the hot path
    (`deducted`) builds one by writing only the fields that differ, which is much
    cheaper than the generated `__init__`.
    """

    rejection: EventRejected | None = None
    alerts: tuple[AlertRaised | AlertResolved, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    duplicate: bool = False
    credits_deducted: Decimal = ZERO
    money_deducted: Decimal = ZERO


NO_EFFECTS = Effects()
DUPLICATE = Effects(duplicate=True)
_new_effects = object.__new__


def deducted(
    credits: Decimal, money: Decimal, alerts: tuple[AlertRaised | AlertResolved, ...]
) -> Effects:
    """`Effects(alerts=alerts, credits_deducted=credits, money_deducted=money)`, fast.

    Equivalent to the constructor: the instance dict holds exactly the fields that
    differ from their (class-level) defaults; the dataclass stays frozen."""
    e: Effects = _new_effects(Effects)
    d = e.__dict__
    if credits:
        d["credits_deducted"] = credits
    if money:
        d["money_deducted"] = money
    if alerts:
        d["alerts"] = alerts
    return e


def subscribed_period(state: CustomerState, at: datetime) -> tuple[datetime, datetime]:
    """The period containing `at`, checking the customer can be billed then."""
    if state.status == "none" or state.anchor is None:
        raise Unrateable(
            RejectReason.NO_SUBSCRIPTION, f"customer {state.customer_id!r} has no subscription"
        )
    if at < state.anchor:
        raise Unrateable(
            RejectReason.NO_SUBSCRIPTION,
            f"{at.isoformat()} is before the subscription start {state.anchor.isoformat()}",
        )
    if state.cancel_at is not None and at >= state.cancel_at:
        raise Unrateable(
            RejectReason.NO_SUBSCRIPTION,
            f"subscription ended at {state.cancel_at.isoformat()}",
        )
    if state.horizon is not None and at < state.horizon:
        raise Unrateable(
            RejectReason.TOO_LATE,
            f"periods before {state.horizon.isoformat()} are closed and pruned",
        )
    return period_of(state.anchor, at)


def locate(state: CustomerState, at: datetime) -> PeriodRecord:
    """The record of the period containing `at` (existing, or a fresh empty one)."""
    last = state.last
    if last is not None and last.start <= at < last.end:
        return last
    start, end = subscribed_period(state, at)
    rec = state.record(start)
    if rec is not None:
        return rec
    plan_id = state.plan_at(start)
    if plan_id is None:  # cannot happen for a subscribed customer; keep it a value
        raise Unrateable(RejectReason.NO_SUBSCRIPTION, "no plan in effect")
    return new_record(start, end, plan_id)


def plan_of(catalog: Catalog, rec: PeriodRecord) -> Plan:
    plan = catalog.refs.get(rec.plan_id)
    if plan is None:
        raise Unrateable(RejectReason.INVALID_FIELD, f"plan {rec.plan_id!r} is not in the catalog")
    return plan


def put_record(new: CustomerState, rec: PeriodRecord) -> bool:
    """Store `rec` (a fresh copy) in the fresh state `new`; True if it is a new
    latest period (a rollover)."""
    last = new.last
    if last is None or last.start == rec.start:  # the live period: the hot path
        new.last = rec
        return False
    earlier = new.earlier.copy()
    if rec.start > last.start:  # a new live period
        earlier[last.start] = last
        new.earlier, new.last = earlier, rec
        return True
    earlier[rec.start] = rec  # a late event for an earlier period
    new.earlier = earlier
    return False


def wallet_closes(state: CustomerState) -> dict[datetime, Decimal]:
    """Each retained period's closing wallet balance, before settlement.

    A period opens with the previous close floored at zero: a negative close is
    billed on that period's invoice as the amount owed, which settles it."""
    opening = state.wallet_opening
    closes: dict[datetime, Decimal] = {}
    for start, rec in state.records().items():
        close = opening + rec.topped - rec.spent
        closes[start] = close
        opening = close if close > ZERO else ZERO
    return closes


def live_balance(state: CustomerState) -> Decimal:
    closes = wallet_closes(state)
    return closes[max(closes)] if closes else state.wallet_opening


def consume_credits(
    grants: tuple[tuple[datetime | None, Decimal], ...], cost: Decimal, at: datetime
) -> tuple[tuple[datetime | None, Decimal], ...]:
    """Deduct `cost` credits at time `at`: expiring grants first, earliest expiry
    first; the never-expiring bucket (always last) absorbs the rest and may go
    negative. Grants expired at `at` are dropped."""
    if len(grants) == 1 and grants[0][0] is None:  # the common case: one bucket
        return ((None, grants[0][1] - cost),)
    out: list[tuple[datetime | None, Decimal]] = []
    rest = cost
    for expires, left in grants:
        if expires is None:
            out.append((None, left - rest))
            rest = ZERO
            continue
        if expires <= at:
            continue
        take = min(left, rest)
        left -= take
        rest -= take
        if left > ZERO:
            out.append((expires, left))
    if rest != ZERO or not out or out[-1][0] is not None:
        out.append((None, -rest))
    return tuple(out)


def add_credits(
    grants: tuple[tuple[datetime | None, Decimal], ...], credits: Decimal, expires: datetime | None
) -> tuple[tuple[datetime | None, Decimal], ...]:
    """Grants with `credits` added to the bucket of `expires` (merged if present)."""
    buckets: dict[datetime | None, Decimal] = dict(grants)
    buckets.setdefault(None, ZERO)
    buckets[expires] = buckets.get(expires, ZERO) + credits
    dated = sorted((e, c) for e, c in buckets.items() if e is not None)
    return (*dated, (None, buckets[None]))


def value_alerts(
    new: CustomerState, plan: Plan, value: Decimal, at: datetime
) -> tuple[AlertRaised | AlertResolved, ...]:
    """Evaluate credits/balance thresholds for `value` and update the fresh state."""
    kind: AlertKind = "credits_low" if plan.model == "credits" else "balance_low"
    out, raised, counts = al.evaluate(
        customer_id=new.customer_id,
        kind=kind,
        thresholds=plan.alert_thresholds,
        reference=new.last_topup,
        value=value,
        raised=new.alerts_raised,
        counts=new.alert_counts,
        at=at,
    )
    new.alerts_raised, new.alert_counts = raised, counts
    new.alert_next = al.next_level(plan.alert_thresholds, new.last_topup, raised)
    return tuple(out)


def rejection(
    reason: RejectReason, detail: str, event_id: str | None, customer_id: str | None
) -> Effects:
    return Effects(rejection=EventRejected(reason, detail, event_id, customer_id))
