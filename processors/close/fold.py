"""The pure middle of a close: records of a partition group in, invoices out.

`fold_group` reads the account and usage records of some partitions through a
`LogPort` and admits each one exactly as the live worker does (the doors of
`processors.fold.admission`, then `billing.admission.decide` per customer: lateness
against the customer's usage watermark, dedupe by `(customer_id, event_id)`),
folds the admitted ones per customer with `billing.ledger.apply` (the function
the live worker uses) and prices the periods with `billing.invoicing`. It writes
nothing. Customers live in one partition of both (co-partitioned) input topics,
so partition groups are independent and the job may run one group per process.

Fold order, per customer (deterministic for a given log and read plan):
1. phase A: usage records below the previous close's watermark, each preceded by
   the customer's account events below that watermark whose event time is not
   later than the usage's; then the rest of those account events. The state at
   the end of phase A is what the previous close billed ("billed so far").
2. phase B: the same with the records at or above the previous watermark. The state
   at the end is the state at this close's watermark.
Usage of metered customers whose event time is before the plan's horizon cannot
be priced from this window (its period's earlier usage was not read). Read before
the previous watermark, it was billed by an earlier close and is left alone. Read
after it (it arrived since), it is late usage of a period older than the window:
those customers are folded again from the start of that period (`_widen`), so
every event the worker accepted is billed by some close. Only before the first
close ever made is nothing adjusted (`beyond_horizon` lists those events).
Credits and balance customers carry credits and wallet across periods, so their
whole usage history is folded: their usage below the window is read from the log
start first, selected by key (other records are not decoded).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from billing.admission import AdmissionPolicy, to_ms
from billing.bounds import exact_context
from billing.events import Event, Invoice, UsageRecorded
from billing.invoicing import adjustment, period_invoice, periods_ending_in
from billing.ledger import CustomerState
from billing.replay import Replay
from processors.close.checkpoints import (
    Tracking,
    checkpoints_of,
    decide_pending,
    read_checkpoints,
    rebuild_seen,
    resume,
)
from processors.close.plan import (
    ACCOUNT,
    CHECKPOINTS,
    USAGE,
    Month,
    ReadPlan,
    usage_starts,
)
from processors.close.retention import check_resumable, check_retention
from processors.fold.admission import Doors, Rejection
from streambill.wire.log import LogPort, LogRecord


@dataclass(frozen=True, slots=True)
class TopicNames:
    usage: str
    account: str
    checkpoints: str = ""  # none: a close never resumes (`ReadPlan.resumes`)


@dataclass(frozen=True, slots=True)
class PricedInvoice:
    """An invoice of this close, with why it is emitted (`issued`, `late_issued`,
    `adjusted`)."""

    why: str
    invoice: Invoice


@dataclass
class GroupResult:
    invoices: list[PricedInvoice] = field(default_factory=list)
    events_read: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    undecodable: dict[str, int] = field(default_factory=dict)  # refused at the doors
    beyond_horizon: list[str] = field(default_factory=list)
    customers: int = 0
    # (key, value) of this close's checkpoints (`processors.close.checkpoints`)
    checkpoints: list[tuple[bytes, bytes]] = field(default_factory=list)
    resumed: bool = False  # started from the previous close's checkpoints
    # Where the time went, one dict per fold (per worker when folded in parallel):
    # phase -> seconds (wall clock), see `fold_group`; a worker adds its own entries.
    timings: list[dict[str, float]] = field(default_factory=list)

    def merge(self, other: GroupResult) -> None:
        self.invoices.extend(other.invoices)
        self.checkpoints.extend(other.checkpoints)
        self.resumed = self.resumed or other.resumed
        self.timings.extend(other.timings)
        self.events_read += other.events_read
        self.duplicates += other.duplicates
        self.customers += other.customers
        self.beyond_horizon.extend(other.beyond_horizon)
        for mine, theirs in (
            (self.rejected, other.rejected),
            (self.undecodable, other.undecodable),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v


def _read_batch(
    batch: Iterable[LogRecord], doors: Doors, result: GroupResult
) -> list[tuple[LogRecord, Event]]:
    """The records that pass the doors; the others are counted by reason (the
    worker dead-letters each of them with that reason)."""
    out: list[tuple[LogRecord, Event]] = []
    for record in batch:
        try:
            event = doors.read(record.topic, record.partition, record.key, record.value)
            out.append((record, event))
        except Rejection as rej:
            reason = str(rej.reason)
            result.undecodable[reason] = result.undecodable.get(reason, 0) + 1
    return out


def _fold_usage_batch(
    batch: list[LogRecord],
    doors: Doors,
    folder: Replay,
    result: GroupResult,
    horizon: datetime,
    history: frozenset[bytes],
    prev_use: dict[int, int],
    late: dict[bytes, datetime],
    track: Tracking,
    fold_old: bool,
) -> None:
    """The per-event loop of the close (doors, horizon, admission and fold), flat:
    it runs once per usage record (`_read_batch`'s counting is written inline).
    `fold_old`: usage older than the horizon is folded too (a resumed close: the
    checkpoints hold its periods) and still noted in `late`."""
    usage = folder.usage
    read = doors.read
    undecodable = result.undecodable
    skip = track.skip
    for record in batch:
        try:
            event = read(record.topic, record.partition, record.key, record.value)
        except Rejection as rej:
            reason = str(rej.reason)
            undecodable[reason] = undecodable.get(reason, 0) + 1
            continue
        if type(event) is not UsageRecorded:
            continue
        phase_b = record.offset >= prev_use.get(record.partition, 0)
        if event.timestamp < horizon and record.key not in history:
            if phase_b:  # arrived since the previous close: `_widen` bills it
                key = record.key or b""
                late[key] = min(late.get(key, event.timestamp), event.timestamp)
            if not fold_old:  # not folded here: not in the dedupe memory either
                skip(event.customer_id, record.offset, to_ms(event.timestamp), None)
                continue
        if not usage(event, phase_b=phase_b):
            skip(event.customer_id, record.offset, to_ms(event.timestamp), folder.last_refusal)


@exact_context
def fold_group(
    log: LogPort,
    names: TopicNames,
    plan: ReadPlan,
    partitions: Iterable[int],
    *,
    doors: Doors,
    policy: AdmissionPolicy,
    catalog: Any,
    keys: frozenset[bytes] | None = None,
    tick: Callable[[int, int], None] = lambda n, customers: None,
    now_ms: int | None = None,
) -> GroupResult:
    """Fold the records of `partitions` under `plan` and price this close's invoices
    and checkpoints. `now_ms` is the clock of the future rule (the close's plan time).
    Runs in the core's decimal context (`billing.bounds`), entered once."""
    parts = sorted(partitions)
    result = GroupResult()
    folder = Replay(catalog, policy, now_ms)
    track = Tracking()
    # read_* = waiting for/consuming records (librdkafka, LogRecord), fold_* = decode,
    # dedupe, ledger; diagnostics only (bench/close.py --timings).
    timings = {"read_account": 0.0, "fold_account": 0.0, "read_usage": 0.0, "fold_usage": 0.0}
    result.timings.append(timings)
    clock = time.perf_counter
    prev_acc = plan.prev.get(ACCOUNT, {})
    prev_use = plan.prev.get(USAGE, {})
    resumed = result.resumed = plan.resumes and bool(names.checkpoints)
    found = {}
    if resumed:
        found = read_checkpoints(log, names.checkpoints, plan, parts, doors.codec, keys)
        resume(folder, found, doors.codec, track)
        check_resumable(names, plan, parts)
        starts = {p: prev_acc.get(p, 0) for p in parts}
    else:
        starts = {p: plan.account_starts.get(p, 0) for p in parts}
    t = clock()
    for batch in log.read(names.account, starts, plan.ends[ACCOUNT], keys):
        t1 = clock()
        timings["read_account"] += t1 - t
        for record, event in _read_batch(batch, doors, result):
            folder.account(event, phase_b=record.offset >= prev_acc.get(record.partition, 0))
        result.events_read += len(batch)
        tick(len(batch), len(folder.customers))
        t = clock()
        timings["fold_account"] += t - t1
    timings["read_account"] += clock() - t

    ranges: list[tuple[dict[int, int], dict[int, int], frozenset[bytes] | None]] = []
    if resumed:
        # credits and balance customers: their whole history is in their state, so
        # their late usage is folded in place and never widened (as from the start)
        history = _carrying_state(folder, catalog, keys)
        rebuild_seen(log, names.usage, plan, parts, doors, folder, found, policy)
        decide_pending(log, names.usage, folder, found, doors, track)
        ranges.append(({p: prev_use.get(p, 0) for p in parts}, plan.ends[USAGE], keys))
    else:
        history = _carrying_state(folder, catalog, keys)
        check_retention(names, plan, parts, history)
        for customer_id in folder.customers:
            track.complete_from[customer_id] = (
                None if customer_id.encode() in history else plan.horizon
            )
        if history:
            starts = {p: plan.usage_low.get(p, 0) for p in parts}
            ranges.append((starts, plan.usage_starts, history))
        ranges.append(({p: plan.usage_starts[p] for p in parts}, plan.ends[USAGE], keys))
    late: dict[bytes, datetime] = {}
    for range_starts, range_ends, range_keys in ranges:
        t = clock()
        for batch in log.read(names.usage, range_starts, range_ends, range_keys):
            t1 = clock()
            timings["read_usage"] += t1 - t
            _fold_usage_batch(
                batch, doors, folder, result, plan.horizon, history, prev_use, late, track,
                resumed,
            )  # fmt: skip
            result.events_read += len(batch)
            tick(len(batch), len(folder.customers))
            t = clock()
            timings["fold_usage"] += t - t1
        timings["read_usage"] += clock() - t

    t = clock()
    folder.finish()
    result.customers = len(folder.customers)
    result.duplicates += folder.duplicates
    for reason, n in folder.rejected.items():
        result.rejected[reason] = result.rejected.get(reason, 0) + n
    from_log, adjust = _split_late(late, track, plan, resumed) if late else (late, {})
    widened = _widen(log, names, plan, parts, from_log, doors, policy, catalog, now_ms, result)
    for customer_id in sorted(folder.customers):
        if customer_id in widened:
            continue
        c = folder.customers[customer_id]
        own = adjust.get(customer_id)
        priced_plan = plan if own is None else replace(plan, adjust_from=own)
        result.invoices.extend(price_customer(c.state, c.prev or c.state, priced_plan, catalog))
    result.checkpoints.extend(
        checkpoints_of(
            folder, plan, policy, doors.codec, track, log, names.usage, leave_out=widened
        )
    )
    timings["price"] = clock() - t
    return result


def _split_late(
    late: dict[bytes, datetime], track: Tracking, plan: ReadPlan, resumed: bool
) -> tuple[dict[bytes, datetime], dict[str, Month]]:
    """Late usage older than the horizon: (customers to fold again from the log,
    customer -> the earliest month to adjust for those whose resumed state holds
    the period). A close that did not resume folds every such customer again."""
    if not resumed or plan.adjust_from is None:
        return late, {}
    from_log: dict[bytes, datetime] = {}
    adjust: dict[str, Month] = {}
    for key, oldest in late.items():
        complete = track.complete_from.get(key.decode())
        # the period holding `oldest` starts no earlier than the month before it
        if complete is not None and Month.of(oldest).shift(-1).start < complete:
            from_log[key] = oldest
        else:
            adjust[key.decode()] = min(Month.of(oldest), plan.adjust_from)
    return from_log, adjust


def _widen(
    log: LogPort,
    names: TopicNames,
    plan: ReadPlan,
    parts: list[int],
    late: dict[bytes, datetime],
    doors: Doors,
    policy: AdmissionPolicy,
    catalog: Any,
    now_ms: int | None,
    result: GroupResult,
) -> set[str]:
    """Fold the customers with late usage older than the plan's horizon again, from
    the start of the month before their oldest such event (a period containing it
    starts no earlier), adjusting every closed period from that month on. Returns
    their ids; their invoices are in `result`. Before the first close nothing was
    billed, so nothing is adjusted: those events are listed as `beyond_horizon`."""
    if not late:
        return set()
    if plan.adjust_from is None:
        result.beyond_horizon.extend(sorted(k.decode() for k in late))
        return set()
    oldest = Month.of(min(late.values()))
    horizon = oldest.shift(-1).start
    by_time = log.offsets_for_time(names.usage, to_ms(horizon))
    low, _ = log.watermarks(names.usage)
    wide = ReadPlan(
        month=plan.month,
        ends=plan.ends,
        usage_starts=usage_starts(
            by_time={p: by_time.get(p, -1) for p in parts},
            prev=plan.prev.get(USAGE),
            low={p: low.get(p, 0) for p in parts},
            ends={p: plan.ends[USAGE][p] for p in parts},
        ),
        usage_low=plan.usage_low,
        account_starts=plan.account_starts,
        prev={t: o for t, o in plan.prev.items() if t != CHECKPOINTS},  # from the log
        adjust_from=min(oldest, plan.adjust_from),
        horizon=horizon,
        planned_ms=plan.planned_ms,
    )
    again = fold_group(
        log, names, wide, parts, doors=doors, policy=policy, catalog=catalog,
        keys=frozenset(late), now_ms=now_ms,
    )  # fmt: skip
    result.invoices.extend(again.invoices)
    result.checkpoints.extend(again.checkpoints)
    result.beyond_horizon.extend(again.beyond_horizon)
    return {k.decode() for k in late}


def _carrying_state(
    folder: Replay, catalog: Any, keys: frozenset[bytes] | None
) -> frozenset[bytes]:
    """Keys of customers whose plan (ever) is a credits or balance plan: by the
    account events read, or by the plans a resumed state pinned."""
    out: set[bytes] = set()
    refs = catalog.refs
    for customer_id, c in folder.customers.items():
        for _, ref in c.state.plans:
            pinned = refs.get(ref)
            if pinned is not None and pinned.model != "metered":
                out.add(customer_id.encode())
                break
        for event in (*c.account_a, *c.account_b):
            plan_id = getattr(event, "plan_id", None)
            plan = catalog.plan(plan_id) if isinstance(plan_id, str) else None
            if plan is not None and plan.model != "metered":
                out.add(customer_id.encode())
                break
    return frozenset(out if keys is None else out & keys)


def price_customer(
    state: CustomerState, prev: CustomerState, plan: ReadPlan, catalog: Any
) -> list[PricedInvoice]:
    """This close's invoices for one customer: the periods ending in the month, then
    for every closed period inside the lookback the late issue or adjustment that
    brings what was billed ("billed so far" = priced from `prev`) to its recomputation."""
    out: list[PricedInvoice] = []
    for start, _end in periods_ending_in(state, plan.month.start, plan.month.end):
        invoice = period_invoice(state, catalog, start)
        if invoice is not None:
            out.append(PricedInvoice("issued", invoice))
    if plan.adjust_from is None:
        return out
    starts = {s for s, _ in periods_ending_in(state, plan.adjust_from.start, plan.month.start)}
    starts |= {s for s, _ in periods_ending_in(prev, plan.adjust_from.start, plan.month.start)}
    for start in sorted(starts):
        now = period_invoice(state, catalog, start)
        before = period_invoice(prev, catalog, start)
        if now is None:
            # The period stopped being billable (e.g. a late cancellation): a credit
            # note is out of scope; nothing is emitted (known gap, see the report).
            continue
        if before is None:
            out.append(PricedInvoice("late_issued", now))
            continue
        adj = adjustment(before, now)
        if adj is not None:
            out.append(PricedInvoice("adjusted", adj))
    return out
