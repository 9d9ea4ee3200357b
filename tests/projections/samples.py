"""Domain values for read-side tests (the worker is not needed to make them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from billing.events import (
    AlertRaised,
    AlertResolved,
    CustomerStateChanged,
    Invoice,
    InvoiceLine,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
T1 = datetime(2026, 12, 1, tzinfo=UTC)


def invoice(customer_id: str, invoice_id: str, *, total: str = "12.50") -> Invoice:
    return Invoice(
        invoice_id=invoice_id,
        kind="period",
        customer_id=customer_id,
        plan_id="pro",
        plan_version=1,
        period_start=T0,
        period_end=T1,
        currency="EUR",
        lines=(
            InvoiceLine(
                description="Base fee",
                quantity=Decimal("1"),
                unit_price=Decimal("10.00"),
                precise_amount=Decimal("10.00"),
                amount=Decimal("10.00"),
            ),
            InvoiceLine(
                description="GPT tokens",
                quantity=Decimal("2500"),
                unit_price=Decimal("0.001"),
                precise_amount=Decimal(total) - Decimal("10.00"),
                amount=Decimal(total) - Decimal("10.00"),
                feature_id="tokens",
            ),
        ),
        total=Decimal(total),
        issued_at=T1,
    )


def metered_state(
    customer_id: str,
    *,
    version: int = 1,
    used: str = "600",
    allowance: str = "1000",
    allowed: bool = True,
) -> CustomerStateChanged:
    remaining = Decimal(allowance) - Decimal(used)
    return CustomerStateChanged(
        customer_id=customer_id,
        version=version,
        status="active",
        plan_id="pro",
        plan_version=1,
        model="metered",
        currency="EUR",
        period_start=T0,
        period_end=T1,
        seats=3,
        usage={"tokens": Decimal(used), "images": Decimal("4")},
        allowance_remaining={"tokens": remaining, "images": Decimal("6")},
        credits_remaining=None,
        balance=None,
        last_topup=None,
        allowed=allowed,
        upcoming_invoice=invoice(customer_id, f"up-{customer_id}"),
        source_offsets={"usage-events/0": version * 10},
        updated_at=T0,
    )


def credits_state(
    customer_id: str,
    *,
    version: int = 1,
    remaining: str = "640",
    topup: str | None = "1000",
    at: datetime = T0,
) -> CustomerStateChanged:
    return CustomerStateChanged(
        customer_id=customer_id,
        version=version,
        status="active",
        plan_id="credits-starter",
        plan_version=1,
        model="credits",
        currency="USD",
        period_start=T0,
        period_end=T1,
        seats=1,
        usage={"tokens": Decimal("360")},
        allowance_remaining={},
        credits_remaining=Decimal(remaining),
        balance=None,
        last_topup=None if topup is None else Decimal(topup),
        allowed=Decimal(remaining) > 0,
        upcoming_invoice=None,
        source_offsets={"usage-events/0": version},
        updated_at=at,
    )


def balance_state(
    customer_id: str,
    *,
    version: int = 1,
    balance: str = "12.50",
    topup: str | None = "20.00",
    at: datetime = T0,
) -> CustomerStateChanged:
    """A wallet customer: `credits_state`'s shape with money instead of credits."""
    return replace(
        credits_state(customer_id, version=version, at=at),
        plan_id="dev-api",
        model="balance",
        usage={"tokens": Decimal("2300")},
        credits_remaining=None,
        balance=Decimal(balance),
        last_topup=None if topup is None else Decimal(topup),
        allowed=Decimal(balance) > 0,
        source_offsets={"account-events/0": 0, "usage-events/0": version},
    )


def alert(customer_id: str, alert_id: str, *, percent: int = 80) -> AlertRaised:
    return AlertRaised(
        alert_id=alert_id,
        customer_id=customer_id,
        kind="allowance_used",
        threshold_percent=percent,
        value=Decimal("800"),
        reference=Decimal("1000"),
        timestamp=T0,
        feature_id="tokens",
    )


def resolved(customer_id: str, raised_alert_id: str) -> AlertResolved:
    return AlertResolved(
        alert_id=f"res-{raised_alert_id}",
        raised_alert_id=raised_alert_id,
        customer_id=customer_id,
        kind="allowance_used",
        threshold_percent=80,
        value=Decimal("0"),
        timestamp=T1,
        feature_id="tokens",
    )
