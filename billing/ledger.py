"""The ledger fold: `apply(state, event, catalog) -> (state, effects)`.

Pure and deterministic: no I/O, no clock; the same events in the same order give
the same states and effects, in the fold worker, the period close, `simulate` and
the tests. A state passed in is never changed (see `billing.state` for how that
stays O(1) per event).

Idempotence: the state remembers every applied `event_id` with its payload; the
same event again returns the same state with `Effects.duplicate`; the same id
with another payload is rejected as `duplicate_conflict`. That memory is kept per
period and dropped by `prune(state, before)`, after which events older than the
retained periods are rejected as `too_late` (the edge must not re-deliver them).
A caller that deduplicates by itself may drop the memory altogether with
`forget_ids(state)` (and store states with `state_to_dict(s, remember_ids=False)`).

Rejections are values: `Effects.rejection` carries the reason code and a detail.

Every public function here computes in `billing.bounds.CONTEXT` (exact arithmetic
on numbers within the documented bounds, whatever the caller's decimal context);
a number beyond them is rejected as `out_of_range`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, setcontext
from typing import TypeVar

from billing.account_fold import fold_account
from billing.bounds import enter, exact_context
from billing.catalog import Catalog
from billing.events import AccountEvent, CustomerStateChanged, Event, RejectReason, UsageRecorded
from billing.fold import DUPLICATE, Effects, rejection, wallet_closes
from billing.invoicing import period_invoice
from billing.periods import period_of
from billing.rating import Unrateable
from billing.rollover import advance
from billing.state import CustomerState, SeenLog, new_state, same_payload
from billing.state_codec import state_from_dict, state_to_dict
from billing.usage_fold import fold_usage

__all__ = [
    "CustomerState",
    "Effects",
    "advance",
    "apply",
    "forget_ids",
    "new_state",
    "prune",
    "snapshot",
    "state_from_dict",
    "state_to_dict",
]

ZERO = Decimal(0)
T = TypeVar("T")


def apply(
    state: CustomerState, event: Event, catalog: Catalog, *, remember: bool = True
) -> tuple[CustomerState, Effects]:
    """One event folded into one customer's state. Never raises for bad events.
    Computes in `billing.bounds.CONTEXT`, switched by hand (`enter`): the hot path.

    `remember=False`: the caller decided admission (`billing.admission`: dedupe,
    lateness) and the state keeps no memory of ids; the result is then the same
    whatever the caller's batches were (the fold worker, the close, simulate)."""
    old = enter()
    try:
        entry = state.seen.entries.get(event.event_id) if remember else None
        if entry is not None and entry[1] < state.seq:
            if same_payload(entry[0], event):
                return state, DUPLICATE
            return state, rejection(
                RejectReason.DUPLICATE_CONFLICT,
                f"event_id {event.event_id!r} was applied before with another payload",
                event.event_id,
                event.customer_id,
            )
        if event.customer_id != state.customer_id:
            return state, rejection(
                RejectReason.INVALID_FIELD,
                f"event for {event.customer_id!r} applied to the state of {state.customer_id!r}",
                event.event_id,
                event.customer_id,
            )
        at = event.timestamp
        if at.tzinfo is None:
            return state, rejection(
                RejectReason.INVALID_FIELD, "timestamp is not timezone-aware",
                event.event_id, event.customer_id,
            )  # fmt: skip
        horizon = state.acct.horizon
        if horizon is not None and at < horizon:
            return state, rejection(
                RejectReason.TOO_LATE,
                f"periods before {horizon.isoformat()} are closed and pruned",
                event.event_id,
                event.customer_id,
            )
        try:
            if type(event) is UsageRecorded:
                new, effects, rec = fold_usage(state, event, catalog)
                period_start = rec.start
            else:
                account: AccountEvent = event  # type: ignore[assignment]
                new, effects, period_start = fold_account(state, account, catalog)
        except Unrateable as bad:
            return state, rejection(bad.reason, bad.detail, event.event_id, event.customer_id)
        if new.updated_at is None or at > new.updated_at:
            new.updated_at = at
        log = new.seen
        if not remember:
            if log.head == new.seq:
                log.head = new.seq + 1
            new.seq += 1
        elif log.head == new.seq:  # `new` extends the log's lineage: append in place
            log.entries[event.event_id] = (event, new.seq, period_start)
            new.seq = log.head = new.seq + 1
        else:
            new.remember(event.event_id, event, period_start)
        return new, effects
    finally:
        if old is not None:
            setcontext(old)


@exact_context
def prune(state: CustomerState, before: datetime) -> CustomerState:
    """Forget periods that ended at or before `before` (their invoices are issued
    and no adjustment will be computed for them any more). Events older than the
    first retained period are then rejected as `too_late`; the wallet carries the
    settled balance forward. Returns a new state; `state` is unchanged."""
    acct = state.acct  # read once: the worker prunes every changed customer per batch
    anchor = acct.anchor
    if anchor is None:
        return state
    horizon = period_of(anchor, max(before, anchor))[0]
    if acct.horizon is not None and horizon <= acct.horizon:
        return state
    new = state.copy()
    closes = wallet_closes(state)
    records = state.records()
    dropped = [s for s in records if s < horizon]
    if dropped:
        close = closes[max(dropped)]
        new.wallet_opening = close if close > ZERO else ZERO
    new.with_records({s: r for s, r in records.items() if s >= horizon})
    new.horizon = horizon
    new.seats = _keep_from(state.seats, horizon)
    new.plans = _keep_from(state.plans, horizon)
    new.seen = SeenLog(
        {k: v for k, v in state.seen.entries.items() if v[1] < state.seq and v[2] >= horizon},
        state.seq,
    )
    return new


def forget_ids(state: CustomerState) -> CustomerState:
    """The same state without its memory of applied event ids: O(1), `state` is
    unchanged. It folds every event like `state` does, except that an event applied
    before is no longer recognized (applied again, or not flagged as a conflict).
    For callers that deduplicate before calling `apply` (the fold worker: offsets
    per source partition and a windowed table of event ids with fingerprints);
    they get a state whose size no longer grows with the events applied, and
    which equals `state_from_dict(state_to_dict(state, remember_ids=False))`."""
    if not state.seen.entries:
        return state
    new = state.copy()
    new.seen = SeenLog({}, state.seq)
    return new


def _keep_from(
    timeline: tuple[tuple[datetime, T], ...], horizon: datetime
) -> tuple[tuple[datetime, T], ...]:
    """Entries at or after `horizon`, plus the last one before it (still in force)."""
    before = [x for x in timeline if x[0] < horizon]
    return tuple(before[-1:] + [x for x in timeline if x[0] >= horizon])


@exact_context
def snapshot(
    state: CustomerState,
    catalog: Catalog,
    *,
    source_offsets: Mapping[str, int],
    as_of: datetime,
) -> CustomerStateChanged:
    """The customer's live state as of `as_of`, with the current period's
    upcoming-invoice preview (the period containing `as_of`)."""
    acct = state.acct  # read once: one snapshot per changed customer per batch
    anchor = acct.anchor
    if anchor is None or acct.status == "none":
        return CustomerStateChanged(
            customer_id=state.customer_id, version=state.seq, status="none", plan_id=None,
            plan_version=None, model=None, currency=None, period_start=None, period_end=None,
            seats=0, usage={}, allowance_remaining={}, credits_remaining=None, balance=None,
            last_topup=None, allowed=False, upcoming_invoice=None,
            source_offsets=dict(source_offsets), updated_at=state.updated_at,
        )  # fmt: skip
    start, end = period_of(anchor, max(as_of, anchor))
    rec = state.record(start)
    plan_id = rec.plan_id if rec is not None else state.plan_at(start)
    plan = catalog.refs.get(plan_id) if plan_id is not None else None
    ended = acct.cancel_at is not None and as_of >= acct.cancel_at
    usage = dict(rec.usage) if rec is not None else {}
    allowance: dict[str, Decimal] = {}
    credits = balance = None
    allowed = not ended
    if plan is not None:
        for fid, price in plan.prices.items():
            if price.included > 0:
                allowance[fid] = max(price.included - usage.get(fid, ZERO), ZERO)
        if plan.model == "credits":
            credits = state.credits_remaining(as_of)
            allowed = allowed and credits > 0
        elif plan.model == "balance":
            balance = state.balance
            allowed = allowed and balance > 0
        else:
            allowed = allowed and not (rec is not None and rec.capped)
    seats = 0
    for at, count in acct.seats:
        if at <= as_of:
            seats = count
    preview = None if ended or plan is None else period_invoice(state, catalog, start)
    return CustomerStateChanged(
        customer_id=state.customer_id,
        version=state.seq,
        status=acct.status,
        plan_id=plan.id if plan is not None else plan_id,
        plan_version=plan.version if plan is not None else None,
        model=plan.model if plan is not None else None,
        currency=plan.currency.code if plan is not None else None,
        period_start=start,
        period_end=end,
        seats=seats,
        usage=usage,
        allowance_remaining=allowance,
        credits_remaining=credits,
        balance=balance,
        last_topup=acct.last_topup,
        allowed=allowed,
        upcoming_invoice=preview,
        source_offsets=dict(source_offsets),
        updated_at=state.updated_at,
    )
