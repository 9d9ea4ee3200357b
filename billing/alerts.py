"""Alert thresholds: which crossings raise or resolve an alert, with deterministic ids.

Credits and balance plans: a threshold `t` (percent) is "crossed" when the
remaining credits or money fall to `t`% of the last top-up or below (`<=`, so 0 %
means exhausted). It raises once per downward crossing and resolves when a top-up
or an adjustment brings the value back above the level.

Metered plans: a threshold is `t`% of a feature's included allowance; it raises
once per period when usage reaches it and resolves when the next period starts.

Ids are digests of (customer, kind, feature, threshold, crossing number or period),
so a replay of the same events yields the same ids and a resend is harmless.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from billing.events import AlertKind, AlertRaised, AlertResolved

Alert = AlertRaised | AlertResolved
HUNDRED = Decimal(100)


def alert_id(customer_id: str, kind: str, feature: str | None, threshold: int, nth: str) -> str:
    key = f"{customer_id}\x1f{kind}\x1f{feature or ''}\x1f{threshold}\x1f{nth}"
    return "alr_" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def resolved_id(raised_id: str) -> str:
    return "res_" + raised_id[4:]


def levels(thresholds: Iterable[int], reference: Decimal) -> list[tuple[int, Decimal]]:
    """(threshold, value level) pairs, highest level first."""
    return sorted(((t, reference * t / HUNDRED) for t in thresholds), key=lambda x: -x[1])


def next_level(
    thresholds: Iterable[int], reference: Decimal | None, raised: frozenset[int]
) -> Decimal | None:
    """The highest level not raised yet: the only comparison a usage event needs."""
    if reference is None:
        return None
    pending = [lvl for t, lvl in levels(thresholds, reference) if t not in raised]
    return max(pending) if pending else None


def evaluate(
    *,
    customer_id: str,
    kind: AlertKind,
    thresholds: Iterable[int],
    reference: Decimal | None,
    value: Decimal,
    raised: frozenset[int],
    counts: dict[int, int],
    at: datetime,
) -> tuple[list[Alert], frozenset[int], dict[int, int]]:
    """Alerts for `value` against thresholds of `reference`; returns (alerts, raised
    thresholds, raise counts). `counts` is not mutated."""
    if reference is None:
        return [], raised, counts
    out: list[Alert] = []
    now_raised = set(raised)
    new_counts = dict(counts)
    for t, lvl in levels(thresholds, reference):
        below = value <= lvl
        if below and t not in now_raised:
            new_counts[t] = new_counts.get(t, 0) + 1
            aid = alert_id(customer_id, kind, None, t, str(new_counts[t]))
            out.append(AlertRaised(aid, customer_id, kind, t, value, reference, at))
            now_raised.add(t)
        elif not below and t in now_raised:
            aid = alert_id(customer_id, kind, None, t, str(new_counts.get(t, 0)))
            out.append(AlertResolved(resolved_id(aid), aid, customer_id, kind, t, value, at))
            now_raised.discard(t)
    # A threshold no longer configured (after a plan change) must not stay raised.
    for t in sorted(now_raised - set(dict(levels(thresholds, reference)))):
        aid = alert_id(customer_id, kind, None, t, str(new_counts.get(t, 0)))
        out.append(AlertResolved(resolved_id(aid), aid, customer_id, kind, t, value, at))
        now_raised.discard(t)
    return out, frozenset(now_raised), new_counts


def allowance_raised(
    customer_id: str, feature: str, threshold: int, period_start: datetime,
    usage: Decimal, included: Decimal, at: datetime,
) -> AlertRaised:  # fmt: skip
    aid = alert_id(customer_id, "allowance_used", feature, threshold, period_start.isoformat())
    return AlertRaised(aid, customer_id, "allowance_used", threshold, usage, included, at, feature)


def allowance_resolved(
    customer_id: str, feature: str, threshold: int, period_start: datetime,
    usage: Decimal, at: datetime,
) -> AlertResolved:  # fmt: skip
    aid = alert_id(customer_id, "allowance_used", feature, threshold, period_start.isoformat())
    return AlertResolved(
        resolved_id(aid), aid, customer_id, "allowance_used", threshold, usage, at, feature
    )


def cap_alert(
    customer_id: str, period_start: datetime, spend: Decimal, cap: Decimal, at: datetime
) -> AlertRaised:
    aid = alert_id(customer_id, "spend_cap", None, 100, period_start.isoformat())
    return AlertRaised(aid, customer_id, "spend_cap", 100, spend, cap, at)


def cap_resolved(
    customer_id: str, period_start: datetime, spend: Decimal, at: datetime
) -> AlertResolved:
    aid = alert_id(customer_id, "spend_cap", None, 100, period_start.isoformat())
    return AlertResolved(resolved_id(aid), aid, customer_id, "spend_cap", 100, spend, at)
