"""The period-close job: replay a window of the log into the invoices of a month.

`close_period` closes month M (every customer period whose end falls in M, UTC;
an end at midnight on the 1st of M+1 counts as M: see `processors.close.plan`).
An invoice is a pure function of (customer, period, catalog, every event below a
watermark), so a close is a replay that anyone can repeat with identical bytes.

Commit order (what is written, in which order, what a crash between steps does):

 0. Read the period-closes topic (completed closes `YYYY-MM`, plan records
    `YYYY-MM/plan`: `PeriodClosePlanned`, or a `PeriodClosed` with no invoices from
    closes before that schema). Refuse a month out of order or not yet over (end + grace).
 1. Fix the watermarks: those of PeriodClosed(M) if M was closed already (re-run:
    verify and no-op), else those of the plan record of an interrupted attempt,
    else snapshot the high watermarks of usage-events, account-events and invoices
    and WRITE THE PLAN RECORD (flushed, acks=all) before anything else.
    Crash before the plan record is durable: nothing was written; the next run
    snapshots afresh. Crash after: every later attempt reads exactly these events.
 2. Read and fold (nothing written): account-events from the start, usage-events by
    the rule of `processors.close.plan`, up to the watermarks (or from the previous
    close's checkpoints and watermarks on, when it wrote them); dedupe by event_id;
    `billing.ledger.apply`; price with `billing.invoicing`. Crash: nothing to undo.
 3. Read the invoices topic from the plan's invoices watermark to its end and index
    what an interrupted attempt (or an earlier run) already wrote, by invoice id.
    An id already there with identical bytes is not sent again; an id there with
    other bytes stops the close (recomputation is not deterministic, or the catalog
    changed between attempts) before anything more is written.
 4. Produce the missing invoices (key = customer id, idempotent producer, acks=all)
    and flush; a record not acknowledged raises, and PeriodClosed is not written.
    Crash during 4: a subset is on the topic; the re-run (same plan) recomputes the
    same invoices, finds that subset in step 3 and sends only the rest.
 4b. Produce every customer's checkpoint (`processors.close.checkpoints`; key =
    customer id) and flush. Crash during or after 4b: the re-run recomputes the same
    checkpoints and writes them again; the next close reads the records between the
    two plans' positions and keeps the last one per customer: identical copies.
 5. Write PeriodClosed(M) with the watermarks (key = `YYYY-MM`), flush. Crash
    before it is durable: the re-run finds every invoice in step 3, sends nothing
    and writes PeriodClosed. After it: a re-run recomputes, verifies, reports no-op
    and writes no checkpoint (the next close may have written newer ones).

Duplicates on the wire: the idempotent producer removes those of its own retries.
Across a crash, a record of the dead process that the broker had not yet appended
when the re-run scanned (step 3) could be appended later and duplicated; the
process restart takes far longer than an in-flight request, and a duplicate would
carry the same id and bytes, so downstream dedupe by invoice id absorbs it. No
other duplicate can occur: every invoice id is deterministic and step 3 runs
before every send.

Idempotence of adjustments ("never bill twice"): the fold keeps each customer's
state at the previous close's watermark ("billed so far": by induction the sum of
the issued invoice and every adjustment sent since) and at this close's watermark;
an adjustment bills the difference of the period priced from each. Its id is
derived by `billing.invoicing.adjustment` from what it bills, so a re-run with the
same watermarks yields the same adjustment and step 3 keeps it from being resent.
`--customer` closes one customer under the month's plan record and does not write
PeriodClosed; the later full close finds that customer's invoices in step 3.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TextIO

from billing.admission import AdmissionPolicy
from billing.catalog_live import catalog_revision
from billing.events import Invoice, PeriodClosed, PeriodClosePlanned
from processors.close.fold import GroupResult, PricedInvoice, fold_group
from processors.close.plan import (
    ACCOUNT,
    CHECKPOINTS,
    INVOICES,
    PLAN_SUFFIX,
    USAGE,
    CloseHistory,
    Month,
    ReadPlan,
    Watermarks,
    as_watermarks,
    build_plan,
    check_closable,
    lateness_lookback,
    window_start,
)
from processors.close.progress import CloseMetrics, Progress
from processors.close.setup import paused_gc
from processors.close.topics import CloseTopics
from processors.fold.admission import DEFAULT_POLICY, Doors
from streambill.wire.codec import Codec
from streambill.wire.convert import decode_value, encode_value
from streambill.wire.log import LogPort, TopicMissing


class CloseError(Exception):
    """The close stopped without writing anything further (see the message)."""


class GroupRunner(Protocol):
    """Runs the fold of every partition group (in this process or in several)."""

    def __call__(
        self, plan: ReadPlan, keys: frozenset[bytes] | None, tick: Callable[[int, int], None]
    ) -> GroupResult: ...

    def warm_up(self) -> None:
        """Get ready for a call (start processes) while the job plans; optional work."""
        ...

    def shutdown(self) -> None:
        """Release what `warm_up` started and no call used (the close stopped early)."""
        ...


@dataclass
class CloseDeps:
    log: LogPort
    codec: Codec
    catalog: Any
    topics: CloseTopics
    clock: Callable[[], datetime]
    policy: AdmissionPolicy = DEFAULT_POLICY  # the worker's admission settings
    metrics: CloseMetrics | None = None
    progress_out: TextIO | None = None
    runner: GroupRunner | None = None  # None: fold every partition in this process


@dataclass(frozen=True, slots=True)
class CloseOptions:
    month: Month
    grace: timedelta = timedelta(days=1)
    dry_run: bool = False
    customer: str | None = None
    lookback: int = 1


@dataclass
class CloseReport:
    month: Month
    status: str  # closed | no_op | dry_run
    watermarks: Watermarks
    invoices: list[tuple[PricedInvoice, bytes]] = field(default_factory=list)
    sent: int = 0
    already_on_topic: int = 0
    fold: GroupResult = field(default_factory=GroupResult)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Wall-clock seconds per step of the commit order (diagnostics, not results).
    timings: dict[str, float] = field(default_factory=dict)

    def lap(self, step: str) -> None:
        """Charge the time since the previous lap to `step`."""
        now = time.perf_counter()
        self.timings[step] = self.timings.get(step, 0.0) + now - self._lap_at
        self._lap_at = now

    _lap_at: float = field(default_factory=time.perf_counter, repr=False)

    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for priced, _ in self.invoices:
            inv = priced.invoice
            out[inv.currency] = out.get(inv.currency, Decimal(0)) + inv.total
        return out


def read_history(log: LogPort, topic: str, codec: Codec) -> CloseHistory:
    low, high = log.watermarks(topic)
    records: list[tuple[str, PeriodClosed]] = []
    for batch in log.read(topic, low, high):
        for r in batch:
            value = decode_value(codec, r.value)
            if isinstance(value, PeriodClosePlanned) and r.key is not None:
                # the history keeps a plan as the close it plans, with no invoices yet
                value = PeriodClosed(value.period_id, value.watermarks, value.planned_at, 0)
            if not isinstance(value, PeriodClosed) or r.key is None:
                raise CloseError(
                    f"{topic}[{r.partition}]@{r.offset} is neither a PeriodClosed nor a"
                    " PeriodClosePlanned"
                )
            records.append((r.key.decode(), value))
    return CloseHistory.from_records(records)


def snapshot(log: LogPort, topics: CloseTopics) -> Watermarks:
    """The high watermarks a close fixes; the checkpoints topic's only if it exists
    (created by `topics create` since checkpoints were added: without it the close
    writes none and the next one folds from the log start)."""
    marks = {
        USAGE: log.watermarks(topics.usage)[1],
        ACCOUNT: log.watermarks(topics.account)[1],
        INVOICES: log.watermarks(topics.invoices)[1],
    }
    if topics.checkpoints:  # "": checkpoints off (a close then always reads from the start)
        with contextlib.suppress(TopicMissing):
            marks[CHECKPOINTS] = log.watermarks(topics.checkpoints)[1]
    return marks


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _write_closed(deps: CloseDeps, key: str, record: PeriodClosed | PeriodClosePlanned) -> None:
    # Kafka timestamp 0: the producer's wall clock (the injected clock may be frozen far
    # from now, and brokers refuse timestamps too far in the future).
    deps.log.produce(deps.topics.closes, key.encode(), encode_value(deps.codec, record), 0)
    deps.log.flush()


def fix_watermarks(deps: CloseDeps, opts: CloseOptions, history: CloseHistory) -> Watermarks:
    """Step 1 of the commit order."""
    month = opts.month
    if month in history.closed:
        return as_watermarks(history.closed[month].watermarks)
    if month in history.planned:
        return as_watermarks(history.planned[month].watermarks)
    ends = snapshot(deps.log, deps.topics)
    if not opts.dry_run:
        plan_record = PeriodClosePlanned(str(month), ends, deps.clock())
        _write_closed(deps, f"{month}{PLAN_SUFFIX}", plan_record)
    return ends


def make_plan(
    deps: CloseDeps, opts: CloseOptions, history: CloseHistory, ends: Watermarks
) -> ReadPlan:
    """The read plan; its clock for the future rule is the time the watermarks were
    fixed (recorded by the plan record), so a re-run decides the same."""
    recorded = history.closed.get(opts.month) or history.planned.get(opts.month)
    planned_at = recorded.closed_at if recorded is not None else deps.clock()
    lateness = timedelta(milliseconds=deps.policy.max_lateness_ms)
    lookback = max(opts.lookback, lateness_lookback(opts.month, lateness))
    horizon, _ = window_start(opts.month, history, lookback)
    by_time = deps.log.offsets_for_time(deps.topics.usage, _ms(horizon))
    low = {
        USAGE: deps.log.watermarks(deps.topics.usage)[0],
        ACCOUNT: deps.log.watermarks(deps.topics.account)[0],
    }
    return build_plan(
        month=opts.month,
        history=history,
        ends=ends,
        low=low,
        by_time=by_time,
        lookback=lookback,
        planned_ms=_ms(planned_at),
    )


def on_topic(deps: CloseDeps, start: dict[int, int]) -> dict[str, bytes]:
    """Step 3: invoice id -> bytes of every invoice at or after `start`."""
    _, high = deps.log.watermarks(deps.topics.invoices)
    starts = {p: start.get(p, 0) for p in high}
    found: dict[str, bytes] = {}
    for batch in deps.log.read(deps.topics.invoices, starts, high):
        for r in batch:
            value = decode_value(deps.codec, r.value)
            if isinstance(value, Invoice):
                found.setdefault(value.invoice_id, r.value)
    return found


def _fold(deps: CloseDeps, opts: CloseOptions, plan: ReadPlan) -> GroupResult:
    total = sum(plan.ends[USAGE][p] - s for p, s in plan.usage_starts.items())
    total += sum(plan.ends[ACCOUNT][p] - s for p, s in plan.account_starts.items())
    progress = Progress(f"close {opts.month}", total, deps.progress_out, deps.metrics)
    keys = frozenset({opts.customer.encode()}) if opts.customer else None
    if deps.runner is not None:
        result = deps.runner(plan, keys, progress.tick)  # the workers pause their gc
    else:
        names = deps.topics.inputs
        with paused_gc():  # see processors.close.setup
            result = fold_group(
                deps.log,
                names,
                plan,
                plan.ends[USAGE],
                doors=Doors(deps.codec, names.usage, names.account, len(plan.ends[USAGE])),
                policy=deps.policy,
                catalog=deps.catalog,
                keys=keys,
                tick=progress.tick,
                now_ms=plan.planned_ms,
            )
    if total >= 100_000:
        progress.line()
    return result


def close_period(deps: CloseDeps, opts: CloseOptions) -> CloseReport:
    """Close `opts.month` following the commit order of the module docstring."""
    started = time.monotonic()
    if not opts.dry_run:
        deps.log.prepare_writes()  # overlaps the producer's start with the reads below
    history = read_history(deps.log, deps.topics.closes, deps.codec)
    if not opts.dry_run:
        history.check_order(opts.month)
        check_closable(opts.month, opts.grace, deps.clock())
    if deps.runner is None:
        return _close(deps, opts, history, started)
    deps.runner.warm_up()  # worker start-up overlaps the plan record write (step 1)
    try:
        return _close(deps, opts, history, started)
    finally:
        deps.runner.shutdown()


def _close(
    deps: CloseDeps, opts: CloseOptions, history: CloseHistory, started: float
) -> CloseReport:
    already_closed = opts.month in history.closed
    report = CloseReport(opts.month, "dry_run" if opts.dry_run else "closed", {})
    report.timings["history"] = time.monotonic() - started
    ends = report.watermarks = fix_watermarks(deps, opts, history)
    report.lap("watermarks")
    plan = make_plan(deps, opts, history, ends)
    report.lap("plan")
    result = report.fold = _fold(deps, opts, plan)
    report.lap("fold")
    for priced in sorted(
        result.invoices, key=lambda pi: (pi.invoice.customer_id, pi.invoice.period_start, pi.why)
    ):
        report.invoices.append((priced, encode_value(deps.codec, priced.invoice)))
    report.lap("encode")
    existing = on_topic(deps, ends.get(INVOICES, {}))
    to_send = _not_yet_sent(report, existing)
    report.lap("scan_invoices")
    if opts.dry_run:
        return _finish(deps, report, started)
    for priced, data in to_send:
        inv = priced.invoice
        deps.log.produce(deps.topics.invoices, inv.customer_id.encode(), data, _ms(inv.issued_at))
    report.lap("send")
    deps.log.flush()
    report.lap("flush")
    report.sent = len(to_send)
    if not already_closed and opts.customer is None and CHECKPOINTS in ends:
        for key, value in sorted(result.checkpoints):
            deps.log.produce(deps.topics.checkpoints, key, value, 0)
        deps.log.flush()
    report.lap("checkpoints")
    if not already_closed and opts.customer is None:
        record = PeriodClosed(
            str(opts.month), ends, deps.clock(), len(report.invoices), report.totals(),
            catalog_revision=catalog_revision(deps.catalog),
        )  # fmt: skip
        _write_closed(deps, str(opts.month), record)
    report.lap("period_closed")
    if report.sent == 0 and (already_closed or opts.customer is not None):
        report.status = "no_op"
    return _finish(deps, report, started)


def _not_yet_sent(
    report: CloseReport, existing: dict[str, bytes]
) -> list[tuple[PricedInvoice, bytes]]:
    """Step 3's comparison; raises before anything is sent when bytes differ."""
    to_send: list[tuple[PricedInvoice, bytes]] = []
    for priced, data in report.invoices:
        there = existing.get(priced.invoice.invoice_id)
        if there is None:
            to_send.append((priced, data))
        elif there == data:
            report.already_on_topic += 1
        else:
            raise CloseError(
                f"invoice {priced.invoice.invoice_id} is already on the invoices topic with"
                " other bytes than its recomputation (catalog changed between attempts, or a"
                " non-deterministic price); nothing more was written"
            )
    return to_send


def _finish(deps: CloseDeps, report: CloseReport, started: float) -> CloseReport:
    report.seconds = time.monotonic() - started
    m = deps.metrics
    if m is not None:
        m.closes.labels(report.status).inc()
        m.duration.set(report.seconds)
        outcome = "dry_run" if report.status == "dry_run" else "sent"
        m.invoices.labels(outcome).inc(report.sent if outcome == "sent" else len(report.invoices))
        m.invoices.labels("already_on_topic").inc(report.already_on_topic)
        if report.status != "dry_run":
            m.last_closed.set(report.month.year * 100 + report.month.month)
    if report.fold.beyond_horizon:
        report.notes.append(
            f"{len(report.fold.beyond_horizon)} usage event(s) older than the adjustment"
            f" horizon were not billed (first: {report.fold.beyond_horizon[:5]})"
        )
    return report
