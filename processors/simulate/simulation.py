"""`streambill simulate`: the billing core run over JSON-lines files of events.

The same `billing` functions as the fold worker and the period close, so a price
change can be back-tested on real history. The files are read by
`processors.simulate.lines`; bad lines never stop a run: they are reported as
rejected with a reason code, like everything the fold rejects.

Order and admission are the period close's (`billing.replay`): usage events in
file order (the log's order), each after the account events whose event time is
not later than its own; the same lateness and dedupe rules. Only events before
`end` are folded. Invoiced: every period that ends in (start, end], so `--from
2026-01-01 --to 2026-02-01` bills the periods anchored on the 1st for January.

The reported customer state is the state as of `end`: plan and usage are those of
the last period in the range (the one containing the instant before `end`); credits
and balance are those after every period that ended by `end` was rolled over
(`billing.ledger.advance`, the rollover the first event at `end` would make). So a
wallet period that closed below zero, whose invoice bills the amount owed, leaves a
balance of zero, not the negative amount billed; and credit grants that expire at
or before `end` are no longer counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.admission import AdmissionPolicy
from billing.bounds import exact_context
from billing.catalog import Catalog
from billing.events import Event, Invoice, UsageRecorded
from billing.fold import Effects
from billing.invoicing import period_invoice, periods_ending_in
from billing.ledger import CustomerState, advance, snapshot
from billing.replay import Replay
from processors.simulate.lines import Rejected, time_text
from streambill.config.settings import Settings


@dataclass(frozen=True)
class CustomerSummary:
    customer_id: str
    plan_id: str | None
    usage: Mapping[str, Decimal]
    credits_remaining: Decimal | None
    balance: Decimal | None


@dataclass
class SimulationResult:
    invoices: list[Invoice] = field(default_factory=list)
    customers: list[CustomerSummary] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


# ------------------------------------------------------------------- running


@exact_context
def simulate(
    catalog: Catalog,
    events: Iterable[Event],
    start: datetime,
    end: datetime,
    policy: AdmissionPolicy | None = None,
) -> SimulationResult:
    """Fold `events` (before `end`) per customer with `billing.replay.Replay`, the
    close's admission and fold: usage in the given order (a log's order, as
    `streambill export` writes it), account events paired with it by event time.
    Reports the invoices of periods ending in (start, end] (a period ending exactly
    at `end` is complete: all its events are before `end`), purchase invoices issued
    in [start, end), every rejection, and each customer's state at the end of the
    range. `policy`: the admission settings (default: `Settings`' defaults)."""
    result = SimulationResult()

    def rejected(event: Event, reason: str, detail: str) -> None:
        result.rejected.append(Rejected(event.event_id, reason, detail))

    def applied(event: Event, effects: Effects) -> None:
        result.invoices.extend(inv for inv in effects.invoices if start <= inv.issued_at < end)

    replay = Replay(
        catalog,
        policy or Settings.model_construct().admission_policy(),
        on_rejected=rejected,
        on_applied=applied,
    )
    usage: list[UsageRecorded] = []
    for event in events:  # account events are queued first, as the close reads them
        if event.timestamp >= end:
            continue
        if isinstance(event, UsageRecorded):
            usage.append(event)
        else:
            replay.account(event)
    for event in usage:
        replay.usage(event)
    replay.finish()
    for cid in sorted(replay.customers):
        state = replay.customers[cid].state
        for p_start, _ in periods_ending_in(state, start, end):
            inv = period_invoice(state, catalog, p_start)
            if inv is not None:
                result.invoices.append(inv)
        result.customers.append(final_summary(state, catalog, end))
    kinds = {"purchase": 0, "period": 1, "adjustment": 2}
    result.invoices.sort(key=lambda i: (i.customer_id, i.issued_at, kinds[i.kind], i.invoice_id))
    return result


def final_summary(state: CustomerState, catalog: Catalog, end: datetime) -> CustomerSummary:
    """The customer as of `end` (see the module docstring)."""
    settled, _ = advance(state, end, catalog)
    last = snapshot(settled, catalog, source_offsets={}, as_of=end - timedelta(microseconds=1))
    credits = last.credits_remaining
    if credits is not None:  # grants expiring at `end` have expired by then
        at_end = snapshot(settled, catalog, source_offsets={}, as_of=end).credits_remaining
        credits = credits if at_end is None else at_end
    return CustomerSummary(state.customer_id, last.plan_id, dict(last.usage), credits, last.balance)


# ---------------------------------------------------------------- rendering


def decimal_text(value: Decimal | None, places: int = 0) -> str | None:
    """A full-precision amount as a plain decimal string with at least `places`
    decimals and no trailing zeros beyond them: 3 -> "3.00", 2.8999935 stays."""
    if value is None:
        return None
    v = value.normalize()
    exponent = v.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -places:
        v = v.quantize(Decimal(1).scaleb(-places))
    return format(v, "f")


def invoice_json(inv: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": inv.invoice_id,
        "kind": inv.kind,
        "customer_id": inv.customer_id,
        "plan_id": inv.plan_id,
        "plan_version": inv.plan_version,
        "period_start": time_text(inv.period_start),
        "period_end": time_text(inv.period_end),
        "currency": inv.currency,
        "lines": [
            {
                "description": line.description,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price),
                "amount": str(line.amount),
            }
            for line in inv.lines
        ],
        "total": str(inv.total),
    }


def result_json(result: SimulationResult) -> dict[str, Any]:
    return {
        "invoices": [invoice_json(inv) for inv in result.invoices],
        "customers": [
            {
                "customer_id": c.customer_id,
                "plan_id": c.plan_id,
                "usage": {k: str(v) for k, v in sorted(c.usage.items())},
                "credits_remaining": decimal_text(c.credits_remaining),
                "balance": decimal_text(c.balance, 2),
            }
            for c in result.customers
        ],
        "rejected": [{"event_id": r.event_id, "reason": r.reason} for r in result.rejected],
    }
