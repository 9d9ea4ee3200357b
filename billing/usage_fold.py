"""Folding one usage event into a customer state, per consumption model.

Each function receives the current state (never mutated) and returns a fresh
state plus effects, or raises `Unrateable` (turned into a rejection by the ledger).
The period an event lands in follows its event time: a late event for an earlier
period that is still retained updates that period's record.

This is the hot path of the whole product (bench/rating.py holds its target), hence
the inlined dictionary updates; every container touched is a fresh copy.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from billing import alerts as al
from billing.bounds import LIMIT
from billing.catalog import Catalog, FeaturePrice, Plan
from billing.events import AlertRaised, AlertResolved, RejectReason, UsageRecorded
from billing.fold import (
    NO_EFFECTS,
    Effects,
    consume_credits,
    deducted,
    live_balance,
    locate,
    plan_of,
    put_record,
    value_alerts,
)
from billing.rating import (
    ONE,
    Unrateable,
    check_quantity,
    credit_cost,
    feature_price,
    token_breakdown,
    usage_amount,
)
from billing.state import CustomerState, PeriodRecord

ZERO = Decimal(0)
NO_TOKENS = (ZERO, ZERO)
Alert = AlertRaised | AlertResolved
Folded = tuple[CustomerState, Effects, PeriodRecord]


def fold_usage(state: CustomerState, event: UsageRecorded, catalog: Catalog) -> Folded:
    quantity = event.quantity
    if not quantity.is_finite() or quantity < ZERO or quantity >= LIMIT:
        check_quantity(event)  # raises with the right reason
    rec = state.last
    at = event.timestamp
    if rec is None or not (rec.start <= at < rec.end):  # not the live period
        rec = locate(state, at)
    plan = catalog.refs.get(rec.plan_id) or plan_of(catalog, rec)
    model = plan.model
    if model == "metered":
        return _metered(state, event, plan, rec, quantity, catalog)
    if model == "credits":
        return _credits(state, event, plan, rec, quantity)
    return _balance(state, event, plan, rec, quantity)


def _accumulate(
    rec: PeriodRecord, new_rec: PeriodRecord, price: FeaturePrice, event: UsageRecorded, q: Decimal
) -> tuple[Decimal, Decimal, Decimal | None]:
    """Add the event to `new_rec` (a fresh copy of `rec`): usage, and for token
    pricing the input/output counts. Returns (usage before, usage after, the money
    the event adds to the period's price if that is known cheaply, else None).

    Token prices without an allowance are linear, so the event adds exactly its own
    tokens times their rates; anything else (tiers, allowances) goes through
    `_price_delta`, which recomputes the period's price before and after."""
    fid = event.feature_id
    usage = rec.usage.copy()
    before = usage.get(fid, ZERO)
    after = before + (ONE if price.counts_requests else q)
    usage[fid] = after
    new_rec.usage = usage
    tokens = price.tokens
    if tokens is None:
        return before, after, None
    props = event.properties
    try:  # token_breakdown() inlined for the common, valid case
        i, o = Decimal(props["input_tokens"]), Decimal(props["output_tokens"])
        key = props[tokens.property]
        rate = tokens.rates[key]
        # Bounded by q before adding (no overflow); NaN raises InvalidOperation here.
        valid = ZERO <= i <= q and ZERO <= o <= q and i + o == q
    except (KeyError, InvalidOperation, TypeError, ValueError):
        valid = False
    if not valid:  # the checked path: raises with the precise reason
        key, rate, i, o = token_breakdown(tokens, event, q)
    counts = rec.tokens.copy()
    bucket = (fid, key)
    pi, po = counts.get(bucket, NO_TOKENS)
    counts[bucket] = (pi + i, po + o)
    new_rec.tokens = counts
    if price.included:
        return before, after, None
    unit = rate.per_token  # tokens.cost(rate, i, o), inlined
    if unit is not None:
        return before, after, i * unit[0] + o * unit[1]
    return before, after, tokens.cost(rate, i, o)


def _price_delta(
    price: FeaturePrice, rec: PeriodRecord, new_rec: PeriodRecord, before: Decimal, after: Decimal
) -> Decimal:
    """What the event adds to the period's price: amount(after) - amount(before),
    so tiers and allowances deduct exactly and independently of event order."""
    return usage_amount(price, after, new_rec.tokens) - usage_amount(price, before, rec.tokens)


def _metered(
    state: CustomerState,
    event: UsageRecorded,
    plan: Plan,
    rec: PeriodRecord,
    q: Decimal,
    catalog: Catalog,
) -> Folded:
    price = plan.prices.get(event.feature_id) or feature_price(plan, event.feature_id)
    new_rec = rec.copy()
    before, after, cost = _accumulate(rec, new_rec, price, event, q)
    alerts: list[Alert] = []
    levels = price.alert_levels
    if levels:
        idx = rec.alert_idx.get(event.feature_id, 0)
        if idx < len(levels) and after >= levels[idx][1]:
            alerts += _allowance_alerts(state, event, price, rec, new_rec, idx, after)
    cap = plan.spend_cap
    if cap is not None:
        if cost is None:
            cost = _price_delta(price, rec, new_rec, before, after)
        new_rec.spend = rec.spend + cost
        if plan.hard_cap and new_rec.spend > cap:  # refused whole, never billed
            raise Unrateable(
                RejectReason.SPEND_CAP_EXCEEDED,
                f"the event's {cost} would take the period's usage charges to"
                f" {new_rec.spend}, past the plan's hard spend cap {cap}",
            )
        if not rec.capped and new_rec.spend >= cap:
            new_rec.capped = True
            alerts.append(
                al.cap_alert(state.customer_id, rec.start, new_rec.spend, cap, event.timestamp)
            )
    new = state.copy()
    if put_record(new, new_rec):
        alerts = rollover_resolutions(state, catalog, event.timestamp) + alerts
    return new, (Effects(alerts=tuple(alerts)) if alerts else NO_EFFECTS), new_rec


def _allowance_alerts(
    state: CustomerState,
    event: UsageRecorded,
    price: FeaturePrice,
    rec: PeriodRecord,
    new_rec: PeriodRecord,
    idx: int,
    after: Decimal,
) -> list[Alert]:
    """Raise every allowance threshold the period's usage reached with this event."""
    levels = price.alert_levels
    out: list[Alert] = []
    while idx < len(levels) and after >= levels[idx][1]:
        out.append(al.allowance_raised(
            state.customer_id, event.feature_id, levels[idx][0], rec.start,
            after, price.included, event.timestamp,
        ))  # fmt: skip
        idx += 1
    marks = rec.alert_idx.copy()
    marks[event.feature_id] = idx
    new_rec.alert_idx = marks
    return out


def rollover_resolutions(state: CustomerState, catalog: Catalog, at: datetime) -> list[Alert]:
    """A new period started: the previous live period's allowance and cap alerts
    no longer hold."""
    old = state.last
    out: list[Alert] = []
    if old is None:
        return out
    old_plan = catalog.refs.get(old.plan_id)
    for fid, idx in sorted(old.alert_idx.items()):
        price = old_plan.prices.get(fid) if old_plan is not None else None
        levels = price.alert_levels if price is not None else ()
        for threshold, _ in levels[:idx]:
            out.append(al.allowance_resolved(
                state.customer_id, fid, threshold, old.start, old.usage.get(fid, ZERO), at
            ))  # fmt: skip
    if old.capped:
        out.append(al.cap_resolved(state.customer_id, old.start, old.spend, at))
    return out


def _credits(
    state: CustomerState, event: UsageRecorded, plan: Plan, rec: PeriodRecord, q: Decimal
) -> Folded:
    fid = event.feature_id
    cost = credit_cost(plan, event, q)
    new_rec = rec.copy()
    usage = rec.usage.copy()
    usage[fid] = usage.get(fid, ZERO) + q
    new_rec.usage = usage
    new_rec.credits_used = rec.credits_used + cost
    new = state.copy()
    if rec is state.last:
        new.last = new_rec  # put_record's hot path, without the call
    else:
        put_record(new, new_rec)
    grants = state.grants
    value: Decimal | None = None
    if len(grants) == 1 and grants[0][0] is None:  # one never-expiring bucket: the common case
        value = grants[0][1] - cost
        new.grants = ((None, value),)
    else:
        new.grants = consume_credits(grants, cost, event.timestamp)
    alerts: tuple[Alert, ...] = ()
    nxt = state.acct.alert_next
    if nxt is not None:
        if value is None:
            value = new.credits_remaining()
        if value <= nxt:
            alerts = value_alerts(new, plan, value, event.timestamp)
    return new, deducted(cost, ZERO, alerts), new_rec


def _balance(
    state: CustomerState, event: UsageRecorded, plan: Plan, rec: PeriodRecord, q: Decimal
) -> Folded:
    price = plan.prices.get(event.feature_id) or feature_price(plan, event.feature_id)
    new_rec = rec.copy()
    before, after, cost = _accumulate(rec, new_rec, price, event, q)
    if cost is None:
        cost = _price_delta(price, rec, new_rec, before, after)
    new_rec.spent = rec.spent + cost
    new = state.copy()
    if rec is state.last:  # the live period: plain real-time deduction at full precision
        new.last = new_rec  # put_record's hot path, without the call
        balance = new.balance = state.balance - cost
        nxt = state.acct.alert_next
        if nxt is None or balance > nxt:  # no threshold reached: the common case
            return new, deducted(ZERO, cost, ()), new_rec
        return new, deducted(ZERO, cost, value_alerts(new, plan, balance, event.timestamp)), new_rec
    put_record(new, new_rec)
    return new, deducted(ZERO, cost, settle_wallet(state, new, plan, event.timestamp)), new_rec


def settle_wallet(
    state: CustomerState, new: CustomerState, plan: Plan, at: datetime
) -> tuple[Alert, ...]:
    """`new` (`state` with a record of an earlier or a new period put in) gets its
    balance settled through the period chain; settlement may have raised the
    balance, so the thresholds are re-evaluated. Returns the alerts at `at`."""
    new.balance = live_balance(new)
    nxt = state.acct.alert_next
    if (nxt is not None and new.balance <= nxt) or new.last_topup is not None:
        return value_alerts(new, plan, new.balance, at)
    return ()
