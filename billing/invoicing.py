"""Invoices: a period's state turned into lines and a total; purchases; adjustments.

Every line keeps the exact `precise_amount` and the `amount` rounded once, half-up,
to the currency's minor unit; the total is the sum of the rounded lines. Ids are
digests of what the invoice bills, so recomputing gives the same id:
- period invoice: (customer, "period", period start, plan id, plan version);
- purchase invoice: the purchase event id;
- adjustment: the adjusted invoice id and the recomputed invoice's content.
An invoice is issued at its period end (purchases: at the purchase time), so
invoices are byte-identical across reruns. The public functions compute in
`billing.bounds.CONTEXT`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from billing.bounds import exact_context
from billing.catalog import Catalog, Plan
from billing.errors import BillingError
from billing.events import Invoice, InvoiceKind, InvoiceLine
from billing.fold import wallet_closes
from billing.money import Currency
from billing.periods import add_months, period_index, period_of
from billing.pricing import LineItem
from billing.pricing.per_seat import seat_line_items
from billing.rating import feature_tokens
from billing.state import CustomerState, PeriodRecord, new_record

ZERO = Decimal(0)
ONE = Decimal(1)


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


# (customer, period start, plan id, plan version) -> period invoice id: every
# preview of a period (one per changed customer per batch) asks for the same one.
_PERIOD_IDS: dict[tuple[str, datetime, str, int], str] = {}


def period_invoice_id(customer_id: str, period_start: datetime, plan: Plan) -> str:
    # Memoized only where equal keys print alike: a UTC start (an equal instant in
    # another zone has another isoformat) and an int version (True == 1 prints "True").
    memo = period_start.tzinfo is UTC and type(plan.version) is int
    key = (customer_id, period_start, plan.id, plan.version)
    if memo and (known := _PERIOD_IDS.get(key)) is not None:
        return known
    invoice_id = "inv_" + _digest(
        customer_id, "period", period_start.isoformat(), plan.id, str(plan.version)
    )
    if memo:
        if len(_PERIOD_IDS) >= 65_536:
            _PERIOD_IDS.clear()
        _PERIOD_IDS[key] = invoice_id
    return invoice_id


def purchase_invoice_id(event_id: str) -> str:
    return "inv_" + _digest("purchase", event_id)


@exact_context
def finalize(
    items: Sequence[LineItem],
    cur: Currency,
    features: Sequence[str | None],
    first: Sequence[InvoiceLine] = (),
) -> tuple[tuple[InvoiceLine, ...], Decimal]:
    """Round each line once (half-up, minor unit); total = sum of rounded lines.
    `first`: lines rounded already, placed (and added) before `items`."""
    lines = list(first)
    total = cur.round(ZERO)
    for line in lines:
        total += line.amount
    for i, f in zip(items, features, strict=True):
        amount = cur.round(i.amount)
        lines.append(InvoiceLine(i.description, i.quantity, i.unit_price, i.amount, amount, f))
        total += amount  # the same additions, in the same order, as sum(amounts, total)
    return tuple(lines), total


# id(plan) -> (plan, its base fee line). The entry keeps its plan alive, so no
# other object can have that id while it is there.
_BASE_FEE_LINES: dict[int, tuple[Plan, InvoiceLine]] = {}


def _base_fee_line(plan: Plan) -> InvoiceLine:
    """The plan's base fee line, rounded: the same (frozen) value in every invoice of
    the plan, so it is built once per plan (the fee and currency of a frozen plan)."""
    known = _BASE_FEE_LINES.get(id(plan))
    if known is not None and known[0] is plan:
        return known[1]
    fee = plan.base_fee
    (line,), _ = finalize([LineItem("Base fee", ONE, fee, fee)], plan.currency, [None])
    if len(_BASE_FEE_LINES) >= 4096:
        _BASE_FEE_LINES.clear()
    _BASE_FEE_LINES[id(plan)] = (plan, line)
    return line


@exact_context
def purchase_invoice(
    *,
    customer_id: str,
    plan: Plan,
    event_id: str,
    at: datetime,
    period: tuple[datetime, datetime],
    items: Sequence[LineItem],
) -> Invoice:
    lines, total = finalize(items, plan.currency, [None] * len(items))
    return Invoice(
        invoice_id=purchase_invoice_id(event_id),
        kind="purchase",
        customer_id=customer_id,
        plan_id=plan.id,
        plan_version=plan.version,
        period_start=period[0],
        period_end=period[1],
        currency=plan.currency.code,
        lines=lines,
        total=total,
        issued_at=at,
    )


def _billable_record(state: CustomerState, period_start: datetime) -> PeriodRecord | None:
    acct = state.acct  # read once: a preview per changed customer per batch
    anchor = acct.anchor
    if anchor is None or period_start < anchor:
        return None
    start, end = period_of(anchor, period_start)
    if start != period_start:
        return None
    if acct.cancel_at is not None and start >= acct.cancel_at:
        return None
    if acct.horizon is not None and start < acct.horizon:
        return None  # pruned: its data is gone, it cannot be (re)computed
    rec = state.record(start)
    if rec is not None:
        return rec
    plan_id = state.plan_at(start)
    return None if plan_id is None else new_record(start, end, plan_id)


def _usage_items(
    state: CustomerState, rec: PeriodRecord, plan: Plan
) -> tuple[list[LineItem], list[str | None]]:
    items: list[LineItem] = []
    feats: list[str | None] = []
    cur = plan.currency.code
    if plan.model == "metered":
        for fid in sorted(rec.usage):
            price = plan.prices.get(fid)
            if price is None:
                continue
            if price.tokens is not None:
                counts = feature_tokens(rec.tokens, fid)
                new = price.tokens.line_items(counts, price.included, fid)
            else:
                assert price.pricing is not None
                new = price.pricing.line_items(rec.usage[fid], fid)
            items += new
            feats += [fid] * len(new)
    elif plan.model == "credits":
        for fid in sorted(rec.usage):
            items.append(LineItem(f"{fid} usage (paid with credits)", rec.usage[fid], ZERO, ZERO))
            feats.append(fid)
        if rec.credits_used:
            items.append(LineItem("Credits consumed", rec.credits_used, ZERO, ZERO))
            feats.append(None)
    else:
        for fid in sorted(rec.usage):
            items.append(LineItem(f"{fid} usage (paid from wallet)", rec.usage[fid], ZERO, ZERO))
            feats.append(fid)
        if rec.spent:
            items.append(LineItem(f"Wallet deductions ({cur} {rec.spent})", ONE, ZERO, ZERO))
            feats.append(None)
        close = wallet_closes(state).get(rec.start, ZERO)
        if close < ZERO:
            items.append(
                LineItem("Usage beyond the wallet balance (amount owed)", ONE, -close, -close)
            )
            feats.append(None)
    return items, feats


@exact_context
def period_invoice(
    state: CustomerState, catalog: Catalog, period_start: datetime
) -> Invoice | None:
    """The invoice of the customer's period starting at `period_start`, or None if
    the customer had no billable period there (not subscribed, not a period start,
    after cancellation, or pruned)."""
    rec = _billable_record(state, period_start)
    if rec is None:
        return None
    plan = catalog.refs.get(rec.plan_id)
    if plan is None:
        raise BillingError(f"plan {rec.plan_id!r} of {state.customer_id!r} is not in the catalog")
    # Lines in order: the base fee, the seats, the usage.
    first = (_base_fee_line(plan),) if plan.base_fee else ()
    items = seat_line_items(plan.seat_fee, state.acct.seats, rec.start, rec.end)
    feats: list[str | None] = [None] * len(items)
    usage_items, usage_feats = _usage_items(state, rec, plan)
    items += usage_items
    feats += usage_feats
    lines, total = finalize(items, plan.currency, feats, first)
    return Invoice(
        invoice_id=period_invoice_id(state.customer_id, rec.start, plan),
        kind="period",
        customer_id=state.customer_id,
        plan_id=plan.id,
        plan_version=plan.version,
        period_start=rec.start,
        period_end=rec.end,
        currency=plan.currency.code,
        lines=lines,
        total=total,
        issued_at=rec.end,
    )


def periods_ending_in(
    state: CustomerState, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The customer's billing periods (start, end) whose end falls in (start, end].

    Half-open at the left so that a period ending exactly at midnight on the first of
    a month belongs to the month it covers: close `2026-09` bills 1 Sep -> 1 Oct."""
    anchor = state.anchor
    if anchor is None or end <= start:
        return []
    k = max(period_index(anchor, start) - 1, 0)
    out: list[tuple[datetime, datetime]] = []
    while True:
        ps, pe = add_months(anchor, k), add_months(anchor, k + 1)
        if pe > end or (state.cancel_at is not None and ps >= state.cancel_at):
            return out
        if pe > start and (state.horizon is None or ps >= state.horizon):
            out.append((ps, pe))
        k += 1


def _line_key(line: InvoiceLine) -> tuple[str, str | None]:
    return line.description, line.feature_id


@exact_context
def adjustment(issued: Invoice, recomputed: Invoice) -> Invoice | None:
    """InvoiceAdjusted billing `recomputed - issued`, line by line, or None if equal.

    Lines are matched by (description, feature); the difference of two rounded
    amounts is exact, so the adjustment total is exactly the difference of totals."""
    if issued.currency != recomputed.currency:
        raise BillingError("cannot adjust across currencies")
    old = {_line_key(x): x for x in issued.lines}
    new = {_line_key(x): x for x in recomputed.lines}
    lines: list[InvoiceLine] = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key), new.get(key)
        zero = InvoiceLine(key[0], ZERO, ZERO, ZERO, ZERO, key[1])
        a, b = a or zero, b or zero
        dq, dp, da = (
            b.quantity - a.quantity,
            b.precise_amount - a.precise_amount,
            b.amount - a.amount,
        )
        if dq == 0 and dp == 0 and da == 0:
            continue
        unit = b.unit_price if b is not zero else a.unit_price
        lines.append(InvoiceLine(f"Adjustment: {key[0]}", dq, unit, dp, da, key[1]))
    if not lines and issued.total == recomputed.total:
        return None
    content = "\x1f".join(
        f"{x.description}|{x.quantity}|{x.precise_amount}" for x in recomputed.lines
    )
    kind: InvoiceKind = "adjustment"
    return Invoice(
        invoice_id="adj_" + _digest(issued.invoice_id, content),
        kind=kind,
        customer_id=recomputed.customer_id,
        plan_id=recomputed.plan_id,
        plan_version=recomputed.plan_version,
        period_start=recomputed.period_start,
        period_end=recomputed.period_end,
        currency=recomputed.currency,
        lines=tuple(lines),
        total=sum((x.amount for x in lines), ZERO),
        issued_at=recomputed.issued_at,
        adjusts_invoice_id=issued.invoice_id,
    )
