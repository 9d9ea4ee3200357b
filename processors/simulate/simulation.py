"""`streambill simulate`: the billing core run over JSON-lines files of events.

The same `billing` functions as the fold worker and the period close, so a price
change can be back-tested on real history. Bad lines never stop a run: they are
reported as rejected with a reason code, like everything the fold rejects.

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

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from billing.admission import AdmissionPolicy
from billing.bounds import exact_context
from billing.catalog import Catalog
from billing.events import (
    AccountEvent,
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    Event,
    Invoice,
    RejectReason,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from billing.fold import Effects
from billing.invoicing import period_invoice, periods_ending_in
from billing.ledger import CustomerState, advance, snapshot
from billing.replay import Replay
from streambill.config.settings import Settings


class LineError(Exception):
    def __init__(self, reason: RejectReason, detail: str, event_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.event_id = reason, detail, event_id


@dataclass(frozen=True)
class Rejected:
    event_id: str | None
    reason: str
    detail: str


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


# ------------------------------------------------------------------ parsing


def parse_time(value: Any, name: str) -> datetime:
    """RFC 3339 (or a bare date, meaning midnight UTC), returned in UTC."""
    if not isinstance(value, str):
        raise LineError(RejectReason.INVALID_FIELD, f"{name} must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise LineError(RejectReason.INVALID_FIELD, f"{name} {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        if len(value) == 10:  # a date
            return parsed.replace(tzinfo=UTC)
        raise LineError(RejectReason.INVALID_FIELD, f"{name} {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise LineError(RejectReason.INVALID_FIELD, f"{name} must be a number or decimal string")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise LineError(RejectReason.INVALID_FIELD, f"{name} {value!r} is not a number") from None
    if not d.is_finite():
        raise LineError(RejectReason.INVALID_FIELD, f"{name} {value!r} is not finite")
    return d


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise LineError(RejectReason.INVALID_FIELD, f"{name} must be a non-empty string")
    return value


def _int(obj: Mapping[str, Any], name: str, default: int) -> int:
    value = obj.get(name, default)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LineError(RejectReason.INVALID_FIELD, f"{name} must be an integer")
    return value


def _version(obj: Mapping[str, Any]) -> int | None:
    """`plan_version`, absent or null: None (the plan's lowest version)."""
    if obj.get("plan_version") is None:
        return None
    version = _int(obj, "plan_version", 0)
    if version < 1:
        raise LineError(RejectReason.INVALID_FIELD, "plan_version must be at least 1")
    return version


def parse_usage(obj: Mapping[str, Any]) -> UsageRecorded:
    props = obj.get("properties") or {}
    if not isinstance(props, Mapping):
        raise LineError(RejectReason.INVALID_FIELD, "properties must be an object")
    clean: dict[str, str] = {}
    for key, value in props.items():
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise LineError(RejectReason.INVALID_FIELD, f"property {key!r} must be a string")
        clean[str(key)] = str(value)
    return UsageRecorded(
        event_id=_str(obj, "event_id"),
        customer_id=_str(obj, "customer_id"),
        feature_id=_str(obj, "feature_id"),
        quantity=_decimal(obj.get("quantity"), "quantity"),
        timestamp=parse_time(obj.get("timestamp"), "timestamp"),
        properties=clean,
    )


ACCOUNT_TYPES = frozenset({
    "subscription_started", "subscription_changed", "subscription_cancelled", "seats_changed",
    "credits_purchased", "credits_granted", "wallet_deposited", "balance_adjusted",
})  # fmt: skip


def parse_account(obj: Mapping[str, Any]) -> AccountEvent:
    kind = obj.get("type")
    base = (
        _str(obj, "event_id"),
        _str(obj, "customer_id"),
        parse_time(obj.get("timestamp"), "timestamp"),
    )
    if kind == "subscription_started":
        return SubscriptionStarted(
            *base, plan_id=_str(obj, "plan_id"), seats=_int(obj, "seats", 1),
            plan_version=_version(obj),
        )  # fmt: skip
    if kind == "subscription_changed":
        return SubscriptionChanged(*base, plan_id=_str(obj, "plan_id"), plan_version=_version(obj))
    if kind == "subscription_cancelled":
        return SubscriptionCancelled(*base)
    if kind == "seats_changed":
        return SeatsChanged(*base, seats=_int(obj, "seats", -1))
    if kind == "credits_purchased":
        return CreditsPurchased(
            *base, pack_id=_str(obj, "pack_id"), quantity=_int(obj, "quantity", 1)
        )
    if kind == "credits_granted":
        expires = obj.get("expires_at")
        return CreditsGranted(
            *base,
            credits=_decimal(obj.get("credits"), "credits"),
            expires_at=None if expires is None else parse_time(expires, "expires_at"),
        )
    if kind in ("wallet_deposited", "balance_adjusted"):
        amount, currency = _decimal(obj.get("amount"), "amount"), _str(obj, "currency")
        if kind == "wallet_deposited":
            return WalletDeposited(*base, amount=amount, currency=currency)
        return BalanceAdjusted(
            *base, amount=amount, currency=currency, reason=str(obj.get("reason", ""))
        )
    raise LineError(RejectReason.UNKNOWN_SCHEMA, f"unknown account event type {kind!r}")


def read_jsonl(path: Path, account: bool) -> tuple[list[Event], list[Rejected]]:
    """Events of a JSON-lines file, and the lines that could not become events. In a
    usage file (`account` false) a line whose `type` is an account event type is that
    account event, so one file can hold both (as `streambill export` writes it)."""
    events: list[Event] = []
    bad: list[Rejected] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            event_id = None
            try:
                obj = json.loads(line, parse_float=Decimal)
                if not isinstance(obj, dict):
                    raise LineError(RejectReason.UNDECODABLE, "a line must be a JSON object")
                event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
                is_account = account or obj.get("type") in ACCOUNT_TYPES
                events.append(parse_account(obj) if is_account else parse_usage(obj))
            except json.JSONDecodeError as exc:
                bad.append(
                    Rejected(None, RejectReason.UNDECODABLE.value, f"{path.name}:{number}: {exc}")
                )
            except LineError as exc:
                bad.append(
                    Rejected(event_id, exc.reason.value, f"{path.name}:{number}: {exc.detail}")
                )
    return events, bad


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


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
        "period_start": _time(inv.period_start),
        "period_end": _time(inv.period_end),
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
