"""Avro records of the derived values: invoices, alerts, customer state, period closes
and dead letters (see `convert`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, cast

from billing.catalog import MODELS
from billing.events import (
    AlertRaised,
    AlertResolved,
    CustomerStateChanged,
    EventRejected,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    PeriodClosed,
    RejectReason,
)
from streambill.wire.fields import (
    InvalidField,
    dec_from,
    dec_map_from,
    dec_map_to,
    dec_to,
    field_path,
    int_from,
    int_to,
    opt_dec_from,
    opt_dec_to,
    opt_int_from,
    opt_int_to,
    opt_str_from,
    opt_time_from,
    opt_time_to,
    str_from,
    time_from,
    time_to,
)

Record = dict[str, Any]

_ALERT_KINDS = frozenset({"credits_low", "balance_low", "allowance_used", "spend_cap"})
_STATUSES = frozenset({"none", "active", "cancelled"})


# ------------------------------------------------------------------- invoices


def to_avro_invoice_line(line: InvoiceLine, path: str = "line") -> Record:
    return {
        "description": line.description,
        "feature_id": line.feature_id,
        "quantity": dec_to(line.quantity, f"{path}.quantity"),
        "unit_price": dec_to(line.unit_price, f"{path}.unit_price"),
        "precise_amount": dec_to(line.precise_amount, f"{path}.precise_amount"),
        "amount": dec_to(line.amount, f"{path}.amount"),
    }


def from_avro_invoice_line(r: Mapping[str, Any], path: str = "line") -> InvoiceLine:
    return InvoiceLine(
        description=str_from(r, "description", empty_ok=True, path=path),
        feature_id=opt_str_from(r, "feature_id", path=path),
        quantity=dec_from(r, "quantity", path=path),
        unit_price=dec_from(r, "unit_price", path=path),
        precise_amount=dec_from(r, "precise_amount", path=path),
        amount=dec_from(r, "amount", path=path),
    )


def to_avro_invoice(inv: Invoice, path: str = "") -> Record:
    """The record of an InvoiceIssued or InvoiceAdjusted (same fields; see `to_avro`)."""
    p = f"{path}." if path else ""
    return {
        "invoice_id": inv.invoice_id,
        "kind": inv.kind,
        "customer_id": inv.customer_id,
        "plan_id": inv.plan_id,
        "plan_version": int_to(inv.plan_version, f"{p}plan_version"),
        "period_start": time_to(inv.period_start, f"{p}period_start"),
        "period_end": time_to(inv.period_end, f"{p}period_end"),
        "currency": inv.currency,
        "lines": [to_avro_invoice_line(ln, f"{p}lines[{i}]") for i, ln in enumerate(inv.lines)],
        "total": dec_to(inv.total, f"{p}total"),
        "issued_at": time_to(inv.issued_at, f"{p}issued_at"),
        "adjusts_invoice_id": inv.adjusts_invoice_id,
    }


def from_avro_invoice(r: Mapping[str, Any], path: str = "") -> Invoice:
    kind = str_from(r, "kind", path=path)
    if kind not in ("period", "purchase", "adjustment"):
        raise InvalidField(field_path(path, "kind"), f"unknown invoice kind {kind!r}")
    lines = r.get("lines")
    if not isinstance(lines, list):
        raise InvalidField(field_path(path, "lines"), "expected a list")
    return Invoice(
        invoice_id=str_from(r, "invoice_id", path=path),
        kind=cast(InvoiceKind, kind),
        customer_id=str_from(r, "customer_id", path=path),
        plan_id=str_from(r, "plan_id", path=path),
        plan_version=int_from(r, "plan_version", path=path),
        period_start=time_from(r, "period_start", path=path),
        period_end=time_from(r, "period_end", path=path),
        currency=str_from(r, "currency", path=path),
        lines=tuple(
            from_avro_invoice_line(ln, field_path(path, f"lines[{i}]"))
            for i, ln in enumerate(lines)
        ),
        total=dec_from(r, "total", path=path),
        issued_at=time_from(r, "issued_at", path=path),
        adjusts_invoice_id=opt_str_from(r, "adjusts_invoice_id", path=path),
    )


def to_avro_invoice_issued(inv: Invoice) -> Record:
    if inv.kind == "adjustment":
        raise InvalidField("kind", "an adjustment travels as InvoiceAdjusted")
    return to_avro_invoice(inv)


def from_avro_invoice_issued(r: Mapping[str, Any]) -> Invoice:
    inv = from_avro_invoice(r)
    if inv.kind == "adjustment":
        raise InvalidField("kind", "InvoiceIssued must be of kind 'period' or 'purchase'")
    return inv


def to_avro_invoice_adjusted(inv: Invoice) -> Record:
    if inv.kind != "adjustment" or not inv.adjusts_invoice_id:
        raise InvalidField("kind", "InvoiceAdjusted needs kind 'adjustment' and adjusts_invoice_id")
    return to_avro_invoice(inv)


def from_avro_invoice_adjusted(r: Mapping[str, Any]) -> Invoice:
    inv = from_avro_invoice(r)
    if inv.kind != "adjustment":
        raise InvalidField("kind", "InvoiceAdjusted must be of kind 'adjustment'")
    if not inv.adjusts_invoice_id:
        raise InvalidField("adjusts_invoice_id", "an adjustment names the invoice it corrects")
    return inv


# --------------------------------------------------------------------- alerts


def to_avro_alert_raised(a: AlertRaised) -> Record:
    return {
        "alert_id": a.alert_id,
        "customer_id": a.customer_id,
        "kind": a.kind,
        "threshold_percent": int_to(a.threshold_percent, "threshold_percent"),
        "value": dec_to(a.value, "value"),
        "reference": dec_to(a.reference, "reference"),
        "timestamp": time_to(a.timestamp, "timestamp"),
        "feature_id": a.feature_id,
    }


def _alert_kind(r: Mapping[str, Any]) -> Any:
    kind = str_from(r, "kind")
    if kind not in _ALERT_KINDS:
        raise InvalidField("kind", f"unknown alert kind {kind!r}")
    return kind


def from_avro_alert_raised(r: Mapping[str, Any]) -> AlertRaised:
    return AlertRaised(
        alert_id=str_from(r, "alert_id"),
        customer_id=str_from(r, "customer_id"),
        kind=_alert_kind(r),
        threshold_percent=int_from(r, "threshold_percent"),
        value=dec_from(r, "value"),
        reference=dec_from(r, "reference"),
        timestamp=time_from(r, "timestamp"),
        feature_id=opt_str_from(r, "feature_id"),
    )


def to_avro_alert_resolved(a: AlertResolved) -> Record:
    return {
        "alert_id": a.alert_id,
        "raised_alert_id": a.raised_alert_id,
        "customer_id": a.customer_id,
        "kind": a.kind,
        "threshold_percent": int_to(a.threshold_percent, "threshold_percent"),
        "value": dec_to(a.value, "value"),
        "timestamp": time_to(a.timestamp, "timestamp"),
        "feature_id": a.feature_id,
    }


def from_avro_alert_resolved(r: Mapping[str, Any]) -> AlertResolved:
    return AlertResolved(
        alert_id=str_from(r, "alert_id"),
        raised_alert_id=str_from(r, "raised_alert_id"),
        customer_id=str_from(r, "customer_id"),
        kind=_alert_kind(r),
        threshold_percent=int_from(r, "threshold_percent"),
        value=dec_from(r, "value"),
        timestamp=time_from(r, "timestamp"),
        feature_id=opt_str_from(r, "feature_id"),
    )


# ------------------------------------------------------------- customer state


def to_avro_customer_state_changed(s: CustomerStateChanged) -> Record:
    return {
        "customer_id": s.customer_id,
        "version": int_to(s.version, "version", bits=64),
        "status": s.status,
        "plan_id": s.plan_id,
        "plan_version": opt_int_to(s.plan_version, "plan_version"),
        "model": s.model,
        "currency": s.currency,
        "period_start": opt_time_to(s.period_start, "period_start"),
        "period_end": opt_time_to(s.period_end, "period_end"),
        "seats": int_to(s.seats, "seats"),
        "usage": dec_map_to(s.usage, "usage"),
        "allowance_remaining": dec_map_to(s.allowance_remaining, "allowance_remaining"),
        "credits_remaining": opt_dec_to(s.credits_remaining, "credits_remaining"),
        "balance": opt_dec_to(s.balance, "balance"),
        "last_topup": opt_dec_to(s.last_topup, "last_topup"),
        "allowed": s.allowed,
        "upcoming_invoice": None
        if s.upcoming_invoice is None
        else to_avro_invoice(s.upcoming_invoice, "upcoming_invoice"),
        "source_offsets": {
            k: int_to(v, f"source_offsets[{k!r}]", bits=64) for k, v in s.source_offsets.items()
        },
        "updated_at": opt_time_to(s.updated_at, "updated_at"),
    }


def _one_of(r: Mapping[str, Any], name: str, allowed: Collection[str], *, opt: bool) -> Any:
    value = opt_str_from(r, name) if opt else str_from(r, name)
    if value is not None and value not in allowed:
        raise InvalidField(name, f"{value!r} is not one of {sorted(allowed)}")
    return value


def from_avro_customer_state_changed(r: Mapping[str, Any]) -> CustomerStateChanged:
    upcoming = r.get("upcoming_invoice")
    if upcoming is not None and not isinstance(upcoming, Mapping):
        raise InvalidField("upcoming_invoice", "expected a record")
    offsets = r.get("source_offsets", {})
    if not isinstance(offsets, Mapping):
        raise InvalidField("source_offsets", "expected a map")
    allowed = r.get("allowed")
    if not isinstance(allowed, bool):
        raise InvalidField("allowed", f"expected a boolean, got {allowed!r}")
    return CustomerStateChanged(
        customer_id=str_from(r, "customer_id"),
        version=int_from(r, "version", bits=64),
        status=_one_of(r, "status", _STATUSES, opt=False),
        plan_id=opt_str_from(r, "plan_id"),
        plan_version=opt_int_from(r, "plan_version"),
        model=_one_of(r, "model", MODELS, opt=True),
        currency=opt_str_from(r, "currency"),
        period_start=opt_time_from(r, "period_start"),
        period_end=opt_time_from(r, "period_end"),
        seats=int_from(r, "seats"),
        usage=dec_map_from(r, "usage"),
        allowance_remaining=dec_map_from(r, "allowance_remaining"),
        credits_remaining=opt_dec_from(r, "credits_remaining"),
        balance=opt_dec_from(r, "balance"),
        last_topup=opt_dec_from(r, "last_topup"),
        allowed=allowed,
        upcoming_invoice=None
        if upcoming is None
        else from_avro_invoice(upcoming, "upcoming_invoice"),
        source_offsets={
            str(k): int_from(offsets, k, path="source_offsets", bits=64) for k in offsets
        },
        updated_at=opt_time_from(r, "updated_at"),
    )


# -------------------------------------------------------------- period closes


def watermarks_to(marks: Mapping[str, Mapping[int, int]]) -> dict[str, dict[str, int]]:
    return {
        topic: {
            str(int_to(p, f"watermarks[{topic!r}]")): int_to(
                o, f"watermarks[{topic!r}][{p}]", bits=64
            )
            for p, o in parts.items()
        }
        for topic, parts in marks.items()
    }


def to_avro_period_closed(c: PeriodClosed) -> Record:
    return {
        "period_id": c.period_id,
        "watermarks": watermarks_to(c.watermarks),
        "closed_at": time_to(c.closed_at, "closed_at"),
        "invoice_count": int_to(c.invoice_count, "invoice_count"),
        "total_by_currency": dec_map_to(c.total_by_currency, "total_by_currency"),
        "catalog_revision": c.catalog_revision,
    }


def watermarks_from(r: Mapping[str, Any]) -> dict[str, dict[int, int]]:
    marks = r.get("watermarks")
    if not isinstance(marks, Mapping):
        raise InvalidField("watermarks", "expected a map")
    out: dict[str, dict[int, int]] = {}
    for topic, parts in marks.items():
        field = f"watermarks[{topic!r}]"
        if not isinstance(parts, Mapping):
            raise InvalidField(field, "expected a map")
        out[str(topic)] = {}
        for part, offset in parts.items():
            if not isinstance(part, str) or not part.isdigit():
                raise InvalidField(field, f"partition {part!r} is not a decimal number")
            out[str(topic)][int(part)] = int_to(offset, f"{field}[{part}]", bits=64)
    return out


def from_avro_period_closed(r: Mapping[str, Any]) -> PeriodClosed:
    return PeriodClosed(
        period_id=str_from(r, "period_id"),
        watermarks=watermarks_from(r),
        closed_at=time_from(r, "closed_at"),
        invoice_count=int_from(r, "invoice_count"),
        total_by_currency=dec_map_from(r, "total_by_currency"),
        catalog_revision=opt_str_from(r, "catalog_revision"),
    )


# --------------------------------------------------------------- dead letters


def to_avro_event_rejected(e: EventRejected) -> Record:
    return {
        "reason": str(e.reason),
        "detail": e.detail,
        "event_id": e.event_id,
        "customer_id": e.customer_id,
        "source_topic": e.source_topic,
        "source_partition": opt_int_to(e.source_partition, "source_partition"),
        "source_offset": opt_int_to(e.source_offset, "source_offset", bits=64),
        "original": bytes(e.original),
    }


def from_avro_event_rejected(r: Mapping[str, Any]) -> EventRejected:
    reason = str_from(r, "reason")
    try:
        code = RejectReason(reason)
    except ValueError:
        raise InvalidField("reason", f"unknown reject reason {reason!r}") from None
    original = r.get("original", b"")
    if not isinstance(original, bytes):
        raise InvalidField("original", "expected bytes")
    return EventRejected(
        reason=code,
        detail=str_from(r, "detail", empty_ok=True),
        event_id=opt_str_from(r, "event_id"),
        customer_id=opt_str_from(r, "customer_id"),
        source_topic=opt_str_from(r, "source_topic"),
        source_partition=opt_int_from(r, "source_partition"),
        source_offset=opt_int_from(r, "source_offset", bits=64),
        original=original,
    )
