"""Bounded per-customer series kept beside the read models: the recent alert history
and the credits or balance trend since the last top-up. Pure rules: the in-memory
adapter runs these functions, the Redis adapter's write script mirrors them step by
step (`redis_store._WRITE`), and `tests/projections/test_store_contract.py` holds both
to the same lists. Both series are written in the same atomic write as the record
they come from, so the offset check that skips a redelivered record skips them too.

Recent alert history (`sb:{cus}:alert_history`, a list, newest first): every
AlertRaised and AlertResolved applied pushes one entry (`model.alert_event`) at the
head, and the list keeps the newest `ALERT_HISTORY_LIMIT` (20). "Newest" is log order
(offset order in the customer's partition), not event time, so any replay orders the
entries identically.

Trend since the last top-up (`sb:{cus}:trend`, a list, oldest first): a credits or
balance snapshot brings the point (`updated_at`, the latest event time folded; its
credits or balance). The snapshot has no top-up marker, only `last_topup` (the size
of the last top-up), so a new series starts when
  - the snapshot's `last_topup` or `model` differs from the previous snapshot's (the
    first top-up, one of another size, a plan of another model), or
  - the value rose above the series' last point (a top-up of the same size as the
    one before; a positive `BalanceAdjusted` raises the balance too and so also
    starts a series: the snapshot cannot tell it from a deposit).
A point whose value equals the last point's adds nothing (a seat change, say), so the
capacity goes to changes. A point that would make the series longer than
`TREND_LIMIT` (50) thins it: the points at even positions from the oldest are kept
(0, 2, ..., 50: 26 points), which keeps the top-up point and the newest and halves
the density of the rest. A snapshot without credits or balance (metered plan, no
plan) deletes the series.

Everything here is a function of the customer's records in log order, so a rebuild
and a refill after Redis loss give the same lists as the live projector. One limit:
customer-state is compacted; once the broker has compacted a customer's older
snapshots, a rebuild sees fewer of them and draws a coarser trend than live did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from projections.read.model import TrendPoint

ALERT_HISTORY_LIMIT = 20
TREND_LIMIT = 50


def push_alert_event(history: Sequence[str], entry: str) -> list[str]:
    """The history with `entry` at the head, capped at `ALERT_HISTORY_LIMIT`."""
    return [entry, *history][:ALERT_HISTORY_LIMIT]


def next_trend(
    series: Sequence[str], previous: tuple[str, str], point: TrendPoint | None
) -> list[str]:
    """The series after one snapshot. `previous` is the (model, last_topup) of the
    snapshot it replaces, "" where absent."""
    if point is None:
        return []
    if not series or previous != (point.model, point.topup):
        return [point.payload]
    last = Decimal(json.loads(series[-1])["value"])
    value = Decimal(point.value)
    if value > last:
        return [point.payload]
    if value == last:
        return list(series)
    grown = [*series, point.payload]
    return grown[::2] if len(grown) > TREND_LIMIT else grown
