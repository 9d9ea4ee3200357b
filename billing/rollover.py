"""Advancing a customer's state to an instant, without an event: `advance`.

The fold is event-driven: a billing period is rolled over when the first event of
a later period arrives (`billing.usage_fold`, `billing.account_fold`). Until then a
state still describes the last period that saw an event; for a wallet that closed
below zero it still shows the negative balance that the period's invoice has
already billed as the amount owed.

`advance(state, at, catalog)` performs, at `at`, exactly the rollover an event at
`at` would perform before applying itself, and applies nothing:
- the period containing `at` becomes the live period (an empty record, which every
  computation treats like a missing one);
- by the plan of that period, as the fold does: metered, the previous live
  period's allowance and spend-cap alerts are resolved; balance, the wallet is
  settled through the period chain (a period that closed below zero opens the next
  at zero) and its thresholds re-evaluated; credits, nothing (credits are not
  settled by periods: a negative count carries over until a top-up, and expired
  grants are already left out by `credits_remaining(at)`).

Nothing else changes: not `seq`, `updated_at` or the memory of applied ids, so
advancing is invisible to deduplication and versioning. Where an event at `at`
would roll nothing over (`at` inside or before the live period) or would be
rejected (no subscription then, at or after the cancellation, before the pruning
horizon, plan missing from the catalog), the state is returned as is.

Invariant (property-tested): for any event `e` at or after `at`,
`apply(advance(s, at)[0], e)` equals `apply(s, e)` up to empty period records, and
the alerts of both steps are those of the direct apply.
"""

from __future__ import annotations

from datetime import datetime

from billing.bounds import exact_context
from billing.catalog import Catalog
from billing.events import AlertRaised, AlertResolved
from billing.fold import NO_EFFECTS, Effects, locate, plan_of, put_record
from billing.rating import Unrateable
from billing.state import CustomerState
from billing.usage_fold import rollover_resolutions, settle_wallet

__all__ = ["advance"]

Alert = AlertRaised | AlertResolved


@exact_context
def advance(state: CustomerState, at: datetime, catalog: Catalog) -> tuple[CustomerState, Effects]:
    """The state as of `at`: every period that ended by `at` rolled over, as the first
    event at `at` would roll it, with no usage applied. Returns `state` itself and no
    effects when there is nothing to roll over: `at` falls inside or before the live
    period, or an event at `at` would be rejected. `state` is never changed."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: billing needs timezone-aware UTC times")
    last = state.last
    if last is not None and at < last.end:
        return state, NO_EFFECTS
    try:
        rec = locate(state, at)  # the fold's own checks: subscribed, not ended, not pruned
        plan = plan_of(catalog, rec)
    except Unrateable:
        return state, NO_EFFECTS
    new = state.copy()
    put_record(new, rec)
    alerts: tuple[Alert, ...] = ()
    if plan.model == "metered":
        alerts = tuple(rollover_resolutions(state, catalog, at))
    elif plan.model == "balance":
        alerts = settle_wallet(state, new, plan, at)  # as the first event of the period
    return new, (Effects(alerts=alerts) if alerts else NO_EFFECTS)
