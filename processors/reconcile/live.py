"""Reconcile the closes against the live worker: what was invoiced for each customer
period must equal what the worker folded for it.

The closes and the worker decide admission with the same functions, but they run
apart (the close replays the log later, the worker saw it live), and one rule, the
future guard, reads a clock. This check does not re-decide anything: it takes the
worker's decisions as the log records them. Every input record below the latest
close's watermarks that the worker did not dead-letter (no dead letter on
usage-rejected names its position) was applied or deduplicated by the worker; those
records are folded per customer with `billing.ledger.apply`, in event-time order
with account events first at equal times, skipping a record whose payload equals
an earlier one's with the same id (`billing.admission.same_payload`): exactly the
copies rule 3 of `billing.admission` deduplicated. Such a copy has its original's
event time, so a copy whose original was past the dedupe window was past the
lateness bound too (`max_lateness <= dedupe_window`, enforced by `AdmissionPolicy`)
and was dead-lettered `too_late`; it is not among the kept records. A reused id with
another payload that the worker kept is a new event. Then, for every customer
period with a period invoice on the invoices topic, the invoice plus every
adjustment of it must total what `billing.invoicing.period_invoice` prices from
that state. A difference is reported
with the customer, the period and both amounts.

Run it when the worker has caught up (consumer lag 0), like `reconcile` itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal

from billing.admission import same_payload
from billing.catalog import Catalog
from billing.events import Event, Invoice
from billing.invoicing import period_invoice
from billing.ledger import CustomerState, apply, new_state
from processors.close.plan import ACCOUNT, USAGE, CloseHistory
from processors.fold.admission import EVENT_TYPES
from processors.reconcile.log import ReconcileReport
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, decode_value
from streambill.wire.log import LogPort

Position = tuple[str, int, int]


def check_against_live(
    log: LogPort,
    codec: Codec,
    catalog: Catalog,
    *,
    usage_topic: str,
    account_topic: str,
    invoices_topic: str,
    history: CloseHistory,
    dead_letters: Mapping[Position, list[str]],
    report: ReconcileReport,
) -> None:
    """Add the check's line and its differences to `report`."""
    last = history.last_closed
    if last is None:
        report.checks["invoices against the live worker"] = "no period closed yet"
        return
    marks = history.closed[last].watermarks
    events: dict[str, list[tuple[datetime, int, int, Event]]] = {}
    n = 0
    for topic, logical, rank in ((account_topic, ACCOUNT, 0), (usage_topic, USAGE, 1)):
        ends = {int(p): int(o) for p, o in marks.get(logical, {}).items()}
        for position, event in _worker_kept(log, codec, topic, ends, dead_letters):
            n += 1
            events.setdefault(event.customer_id, []).append(
                (event.timestamp, rank, position[2], event)
            )
    states: dict[str, CustomerState] = {}
    refused = 0
    for customer_id, items in events.items():
        state = new_state(customer_id)
        kept: dict[str, list[Event]] = {}
        for _, _, _, event in sorted(items, key=lambda x: (x[0], x[1], x[2])):
            earlier = kept.setdefault(event.event_id, [])
            if any(same_payload(e, event) for e in earlier):
                continue  # a copy the worker deduplicated
            earlier.append(event)
            state, effects = apply(state, event, catalog, remember=False)
            refused += effects.rejection is not None
        states[customer_id] = state
    billed = _billed(log, codec, invoices_topic)
    compared = 0
    for (customer_id, start), (currency, total) in sorted(billed.items()):
        live_state = states.get(customer_id)
        live = period_invoice(live_state, catalog, start) if live_state is not None else None
        live_total = live.total if live is not None else Decimal("0.00")
        compared += 1
        if live_total != total:
            report.differ(
                f"customer {customer_id} period from {start:%Y-%m-%d}: invoiced {currency}"
                f" {total} by the closes, the live worker folded {currency} {live_total}"
            )
    report.checks["invoices against the live worker"] = (
        f"{compared} customer periods up to {last} compared, {n} records the worker kept"
        f" re-folded ({refused} refused by the ledger in event-time order)"
    )


def _worker_kept(
    log: LogPort,
    codec: Codec,
    topic: str,
    ends: Mapping[int, int],
    dead_letters: Mapping[Position, list[str]],
) -> Iterator[tuple[Position, Event]]:
    """Input events below `ends` that the worker did not dead-letter."""
    low, _ = log.watermarks(topic)
    starts = {p: low.get(p, 0) for p in ends}
    for batch in log.read(topic, starts, dict(ends)):
        for r in batch:
            position = (r.topic, r.partition, r.offset)
            if position in dead_letters or r.value is None:
                continue
            try:
                value = decode_value(codec, r.value)
            except (DecodeError, InvalidField):
                continue  # the record accounting of `reconcile_log` names it
            if isinstance(value, EVENT_TYPES):
                yield position, value  # type: ignore[misc]


def _billed(
    log: LogPort, codec: Codec, topic: str
) -> dict[tuple[str, datetime], tuple[str, Decimal]]:
    """(customer, period start) of every period invoice -> (currency, invoice total
    plus the totals of its adjustments)."""
    totals: dict[tuple[str, datetime], tuple[str, Decimal]] = {}
    adjustments: list[Invoice] = []
    seen: set[str] = set()
    low, high = log.watermarks(topic)
    for batch in log.read(topic, low, high):
        for r in batch:
            try:
                inv = decode_value(codec, r.value)
            except (DecodeError, InvalidField):
                continue
            if not isinstance(inv, Invoice) or inv.invoice_id in seen:
                continue
            seen.add(inv.invoice_id)
            if inv.kind == "period":
                key = (inv.customer_id, inv.period_start)
                currency, total = totals.get(key, (inv.currency, Decimal(0)))
                totals[key] = (currency, total + inv.total)
            elif inv.kind == "adjustment":
                adjustments.append(inv)
    for adj in adjustments:
        key = (adj.customer_id, adj.period_start)
        if key in totals:
            currency, total = totals[key]
            totals[key] = (currency, total + adj.total)
    return totals
