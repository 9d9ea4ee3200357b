"""What the projector writes, as plain values: pure functions, no I/O.

A source record (customer-state, billing-alerts or invoices) becomes one `Write`:
the customer it concerns, the source position it reflects, and one operation on
that customer's read models. Every stored value is a string (Decimals as their
exact decimal text, times as ISO-8601 UTC), so Redis and the in-memory adapter hold
byte-identical data and a rebuild can be compared with the live models key for key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.events import (
    AlertRaised,
    AlertResolved,
    CustomerStateChanged,
    Invoice,
)
from streambill.config.settings import BILLING_ALERTS, CUSTOMER_STATE, INVOICES

SOURCE_TOPICS = (CUSTOMER_STATE, BILLING_ALERTS, INVOICES)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: logical topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    @property
    def field(self) -> str:
        """The per-customer offsets-hash field that remembers this partition."""
        return f"{self.topic}/{self.partition}"


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """What a credits or balance snapshot adds to the trend since the last top-up
    (rules in `projections.read.series`). `value` is in plain decimal notation, never with
    an exponent, so both adapters compare it exactly, digit by digit; `model` and
    `topup` are the snapshot's `model` and `last_topup` fields ("" when absent)."""

    model: str
    topup: str
    value: str
    payload: str  # canonical JSON {"at": event time, "value": value}


@dataclass(frozen=True, slots=True)
class ReplaceState:
    """Replace the customer's state hash wholesale (a snapshot is complete), and
    extend (or restart, or delete when `trend` is None) the trend series."""

    fields: Mapping[str, str]
    trend: TrendPoint | None = None


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Store the active alert and push `history` onto the recent alert history."""

    alert_id: str
    payload: str
    history: str


@dataclass(frozen=True, slots=True)
class ResolveAlert:
    """Drop the active alert and push `history` onto the recent alert history."""

    raised_alert_id: str
    history: str


@dataclass(frozen=True, slots=True)
class PutInvoice:
    invoice_id: str
    payload: str


Operation = ReplaceState | RaiseAlert | ResolveAlert | PutInvoice


@dataclass(frozen=True, slots=True)
class Write:
    customer_id: str
    source: Source
    operation: Operation


class UnexpectedRecord(ValueError):
    """A decoded record that has no business on the topic it came from."""


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def dumps(data: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, so equal data gives equal bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def invoice_data(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": invoice.invoice_id,
        "kind": invoice.kind,
        "customer_id": invoice.customer_id,
        "plan_id": invoice.plan_id,
        "plan_version": invoice.plan_version,
        "period_start": _time(invoice.period_start),
        "period_end": _time(invoice.period_end),
        "currency": invoice.currency,
        "total": str(invoice.total),
        "issued_at": _time(invoice.issued_at),
        "adjusts_invoice_id": invoice.adjusts_invoice_id,
        "lines": [
            {
                "description": line.description,
                "feature_id": line.feature_id,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price),
                "precise_amount": str(line.precise_amount),
                "amount": str(line.amount),
            }
            for line in invoice.lines
        ],
    }


def _alert_fields(alert: AlertRaised | AlertResolved) -> dict[str, Any]:
    """The fields a raise and a resolution share, as stored."""
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind,
        "feature_id": alert.feature_id,
        "threshold_percent": alert.threshold_percent,
        "value": str(alert.value),
        "timestamp": _time(alert.timestamp),
    }


def alert_data(alert: AlertRaised) -> dict[str, Any]:
    return {**_alert_fields(alert), "reference": str(alert.reference)}


def alert_event(record: AlertRaised | AlertResolved) -> dict[str, Any]:
    """One entry of the recent alert history: the same shape for both events
    (`event` says which; a raise has no `raised_alert_id` other than its own id, a
    resolution no `reference`)."""
    if isinstance(record, AlertRaised):
        return {**alert_data(record), "event": "raised", "raised_alert_id": record.alert_id}
    return {
        **_alert_fields(record),
        "event": "resolved",
        "raised_alert_id": record.raised_alert_id,
        "reference": None,
    }


def plain(value: Decimal) -> str:
    """Plain decimal notation (`5E-7` -> `0.0000005`), the form the trend compares;
    a negative zero loses its sign."""
    return format(value.copy_abs() if value.is_zero() else value, "f")


def trend_point(snap: CustomerStateChanged) -> TrendPoint | None:
    """The snapshot's trend point: credits for credits plans, money for balance plans;
    None for anything else (the series is then deleted)."""
    if snap.model == "credits":
        value = snap.credits_remaining
    elif snap.model == "balance":
        value = snap.balance
    else:
        return None
    if value is None:
        return None
    text = plain(value)
    return TrendPoint(
        model=snap.model,
        topup=_dec(snap.last_topup) or "",
        value=text,
        payload=dumps({"at": _time(snap.updated_at), "value": text}),
    )


def state_fields(snap: CustomerStateChanged, source: Source) -> dict[str, str]:
    """The state hash of one snapshot. Absent optional values are absent fields.

    `usage:<feature>` and `remaining:<feature>` are separate fields so an
    entitlement check reads exactly the fields it needs (HMGET)."""
    fields: dict[str, str | None] = {
        "customer_id": snap.customer_id,
        "version": str(snap.version),
        "status": snap.status,
        "plan_id": snap.plan_id,
        "plan_version": None if snap.plan_version is None else str(snap.plan_version),
        "model": snap.model,
        "currency": snap.currency,
        "period_start": _time(snap.period_start),
        "period_end": _time(snap.period_end),
        "seats": str(snap.seats),
        "credits_remaining": _dec(snap.credits_remaining),
        "balance": _dec(snap.balance),
        "last_topup": _dec(snap.last_topup),
        "allowed": "1" if snap.allowed else "0",
        "updated_at": _time(snap.updated_at),
        "upcoming_invoice": (
            None if snap.upcoming_invoice is None else dumps(invoice_data(snap.upcoming_invoice))
        ),
        "source_offsets": dumps(dict(snap.source_offsets)),
        "offset": f"{source.topic}/{source.partition}/{source.offset}",
    }
    for feature, quantity in snap.usage.items():
        fields[f"usage:{feature}"] = str(quantity)
    for feature, remaining in snap.allowance_remaining.items():
        fields[f"remaining:{feature}"] = str(remaining)
    return {k: v for k, v in fields.items() if v is not None}


def to_write(record: object, source: Source) -> Write:
    """The write for one decoded record, or `UnexpectedRecord` if it does not belong."""
    expected: dict[str, tuple[type, ...]] = {
        CUSTOMER_STATE: (CustomerStateChanged,),
        BILLING_ALERTS: (AlertRaised, AlertResolved),
        INVOICES: (Invoice,),
    }
    if not isinstance(record, expected.get(source.topic, ())):
        raise UnexpectedRecord(f"{type(record).__name__} on {source.topic}")
    operation: Operation
    if isinstance(record, CustomerStateChanged):
        operation = ReplaceState(state_fields(record, source), trend_point(record))
    elif isinstance(record, AlertRaised):
        history = dumps(alert_event(record))
        operation = RaiseAlert(record.alert_id, dumps(alert_data(record)), history)
    elif isinstance(record, AlertResolved):
        operation = ResolveAlert(record.raised_alert_id, dumps(alert_event(record)))
    elif isinstance(record, Invoice):
        operation = PutInvoice(record.invoice_id, dumps(invoice_data(record)))
    else:
        raise UnexpectedRecord(f"{type(record).__name__} on {source.topic}")
    return Write(record.customer_id, source, operation)
