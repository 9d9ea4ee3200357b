"""Reconciliation of one closed period: the invoices on the invoices topic against
the close's own pure recomputation over the same log.

The recomputation is `processors.close.run.close_period` in dry-run mode: for a month
already closed it reads exactly up to the watermarks recorded in PeriodClosed and
writes nothing. Every invoice it computes (period invoices and adjustments of late
usage) must be on the topic with identical bytes; every period invoice on the
topic whose period ends in the month must be one it computes; and PeriodClosed's
invoice count and totals must equal the recomputation's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from billing.admission import AdmissionPolicy
from billing.catalog import Catalog
from billing.events import Invoice
from processors.close.plan import Month
from processors.close.run import CloseDeps, CloseOptions, close_period, read_history
from processors.close.topics import CloseTopics
from processors.fold.admission import DEFAULT_POLICY
from processors.reconcile.log import ReconcileReport, read_all
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, decode_value
from streambill.wire.log import LogPort


def check_period(
    log: LogPort,
    codec: Codec,
    catalog: Catalog,
    topics: CloseTopics,
    month: Month,
    clock: Callable[[], datetime],
    report: ReconcileReport,
    policy: AdmissionPolicy = DEFAULT_POLICY,
) -> None:
    """Add the period's checks and differences to `report`."""
    history = read_history(log, topics.closes, codec)
    closed = history.closed.get(month)
    if closed is None:
        report.differ(f"period {month}: no PeriodClosed record on {topics.closes}")
        return
    deps = CloseDeps(
        log=log, codec=codec, catalog=catalog, topics=topics, clock=clock, policy=policy
    )
    recomputed = close_period(deps, CloseOptions(month, dry_run=True))
    on_topic = _invoices_on_topic(log, topics.invoices, codec)
    ids = set()
    equal = 0
    for priced, data in recomputed.invoices:
        inv = priced.invoice
        ids.add(inv.invoice_id)
        there = on_topic.get(inv.invoice_id)
        if there is None:
            report.differ(
                f"period {month}: {inv.kind} invoice {inv.invoice_id} of"
                f" {inv.customer_id} is not on the invoices topic"
            )
        elif there[0] != data:
            report.differ(
                f"period {month}: invoice {inv.invoice_id} of {inv.customer_id}"
                f" differs: total {there[1].total} on the topic, {inv.total} recomputed"
            )
        else:
            equal += 1
    extra = [
        inv
        for _, inv in on_topic.values()
        if inv.kind == "period"
        and month.start < inv.period_end <= month.end
        and inv.invoice_id not in ids
    ]
    for inv in extra[:10]:
        report.differ(
            f"period {month}: invoice {inv.invoice_id} of {inv.customer_id} is on the"
            " topic but not in the recomputation"
        )
    totals = recomputed.totals()
    if closed.invoice_count != len(recomputed.invoices) or dict(closed.total_by_currency) != totals:
        report.differ(
            f"period {month}: PeriodClosed records {closed.invoice_count} invoices"
            f" {dict(closed.total_by_currency)}, recomputed {len(recomputed.invoices)}"
            f" {totals}"
        )
    money = ", ".join(f"{c} {t}" for c, t in sorted(totals.items())) or "nothing"
    report.checks[f"invoices {month}"] = (
        f"{len(recomputed.invoices)} recomputed ({money}), {equal} identical on the topic,"
        f" {len(extra)} extra"
    )


def _invoices_on_topic(log: LogPort, topic: str, codec: Codec) -> dict[str, tuple[bytes, Invoice]]:
    found: dict[str, tuple[bytes, Invoice]] = {}
    for r in read_all(log, topic):
        try:
            value = decode_value(codec, r.value)
        except (DecodeError, InvalidField):
            continue  # reported by the output checks of `reconcile_log`
        if isinstance(value, Invoice):
            found.setdefault(value.invoice_id, (r.value, value))
    return found
