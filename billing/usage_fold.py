"""Folding one usage event into a customer state, per consumption model.

Each function receives the current state (never mutated) and returns a fresh
state plus effects, or raises `Unrateable` (turned into a rejection by the ledger).
The period an event lands in follows its event time: a late event for an earlier
period that is still retained updates that period's record.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from billing import alerts as al
from billing.catalog import Catalog, FeaturePrice, Plan
from billing.events import AlertRaised, AlertResolved, UsageRecorded
from billing.fold import (
    NO_EFFECTS,
    Effects,
    consume_credits,
    live_balance,
    locate,
    plan_of,
    put_record,
    value_alerts,
)
from billing.rating import (
    check_quantity,
    counted,
    credit_cost,
    feature_price,
    token_breakdown,
    token_cost,
    usage_amount,
)
from billing.state import CustomerState, PeriodRecord

ZERO = Decimal(0)
Alert = AlertRaised | AlertResolved


def fold_usage(
    state: CustomerState, event: UsageRecorded, catalog: Catalog
) -> tuple[CustomerState, Effects, PeriodRecord]:
    quantity = check_quantity(event)
    rec = locate(state, event.timestamp)
    plan = plan_of(catalog, rec)
    model = plan.model
    if model == "metered":
        return _metered(state, event, plan, rec, quantity, catalog)
    if model == "credits":
        return _credits(state, event, plan, rec, quantity)
    return _balance(state, event, plan, rec, quantity)


def _add_usage(
    rec: PeriodRecord, new_rec: PeriodRecord, price: FeaturePrice, event: UsageRecorded, q: Decimal
) -> tuple[Decimal, Decimal]:
    """Accumulate the event into `new_rec`; returns (usage before, usage after) and,
    for token pricing, stores the per-model input/output counts."""
    fid = event.feature_id
    usage = rec.usage.copy()
    before = usage.get(fid, ZERO)
    after = before + counted(price, q)
    usage[fid] = after
    new_rec.usage = usage
    return before, after


def _add_tokens(
    rec: PeriodRecord, new_rec: PeriodRecord, price: FeaturePrice, event: UsageRecorded, q: Decimal
) -> Decimal:
    """Accumulate a token event's input/output counts; returns its money cost."""
    assert price.tokens is not None
    key, rate, i, o = token_breakdown(price.tokens, event, q)
    fid = event.feature_id
    tokens = rec.tokens.copy()
    before = tokens.get(fid, {})
    bucket = before.copy()
    pi, po = bucket.get(key, (ZERO, ZERO))
    bucket[key] = (pi + i, po + o)
    tokens[fid] = bucket
    new_rec.tokens = tokens
    return token_cost(price, rate, i, o, before, bucket)


def _metered(
    state: CustomerState,
    event: UsageRecorded,
    plan: Plan,
    rec: PeriodRecord,
    q: Decimal,
    catalog: Catalog,
) -> tuple[CustomerState, Effects, PeriodRecord]:
    price = feature_price(plan, event.feature_id)
    new_rec = rec.copy()
    if price.tokens is not None:
        _add_tokens(rec, new_rec, price, event, q)
    before, after = _add_usage(rec, new_rec, price, event, q)
    alerts: list[Alert] = []
    levels = price.alert_levels
    if levels:
        idx = rec.alert_idx.get(event.feature_id, 0)
        if idx < len(levels) and after >= levels[idx][1]:
            new_idx = idx
            while new_idx < len(levels) and after >= levels[new_idx][1]:
                alerts.append(al.allowance_raised(
                    state.customer_id, event.feature_id, levels[new_idx][0], rec.start,
                    after, price.included, event.timestamp,
                ))  # fmt: skip
                new_idx += 1
            idx_map = rec.alert_idx.copy()
            idx_map[event.feature_id] = new_idx
            new_rec.alert_idx = idx_map
    if plan.spend_cap is not None:
        delta = usage_amount(price, after, new_rec.tokens.get(event.feature_id)) - usage_amount(
            price, before, rec.tokens.get(event.feature_id)
        )
        new_rec.spend = rec.spend + delta
        if not rec.capped and new_rec.spend >= plan.spend_cap:
            new_rec.capped = True
            alerts.append(
                al.cap_alert(
                    state.customer_id, rec.start, new_rec.spend, plan.spend_cap, event.timestamp
                )
            )
    new = state.copy()
    if put_record(new, new_rec):
        alerts = rollover_resolutions(state, catalog, event.timestamp) + alerts
    return new, (Effects(alerts=tuple(alerts)) if alerts else NO_EFFECTS), new_rec


def rollover_resolutions(state: CustomerState, catalog: Catalog, at: datetime) -> list[Alert]:
    """A new period started: the previous live period's allowance and cap alerts
    no longer hold."""
    old = state.last
    out: list[Alert] = []
    if old is None:
        return out
    old_plan = catalog.plans.get(old.plan_id)
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
) -> tuple[CustomerState, Effects, PeriodRecord]:
    cost = credit_cost(plan, event, q)
    new_rec = rec.copy()
    usage = rec.usage.copy()
    usage[event.feature_id] = usage.get(event.feature_id, ZERO) + q
    new_rec.usage = usage
    new_rec.credits_used = rec.credits_used + cost
    new = state.copy()
    put_record(new, new_rec)
    new.grants = consume_credits(state.grants, cost, event.timestamp)
    alerts: tuple[Alert, ...] = ()
    nxt = state.alert_next
    if nxt is not None:
        value = new.credits_remaining()
        if value <= nxt:
            alerts = value_alerts(new, plan, value, event.timestamp)
    return new, Effects(alerts=alerts, credits_deducted=cost), new_rec


def _balance(
    state: CustomerState, event: UsageRecorded, plan: Plan, rec: PeriodRecord, q: Decimal
) -> tuple[CustomerState, Effects, PeriodRecord]:
    price = feature_price(plan, event.feature_id)
    new_rec = rec.copy()
    if price.tokens is not None:
        cost = _add_tokens(rec, new_rec, price, event, q)
        _add_usage(rec, new_rec, price, event, q)
    else:
        before, after = _add_usage(rec, new_rec, price, event, q)
        cost = usage_amount(price, after, None) - usage_amount(price, before, None)
    new_rec.spent = rec.spent + cost
    new = state.copy()
    rolled = put_record(new, new_rec)
    if rec is state.last:  # the live period: plain real-time deduction
        new.balance = state.balance - cost
    else:  # an earlier period or a new one: settle through the period chain
        new.balance = live_balance(new)
    alerts: tuple[Alert, ...] = ()
    nxt = state.alert_next
    moved_up = rolled or rec is not state.last  # settlement may raise the balance
    if (nxt is not None and new.balance <= nxt) or (moved_up and new.last_topup is not None):
        alerts = value_alerts(new, plan, new.balance, event.timestamp)
    return new, Effects(alerts=alerts, money_deducted=cost), new_rec
