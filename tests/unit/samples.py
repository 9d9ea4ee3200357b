"""One realistic value of every wire schema (millisecond-precise times, exact decimals)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from billing.catalog_records import (
    CreditPackPublished,
    FeaturePublished,
    PlanRetired,
    PlanVersionPublished,
    PriceSpec,
    TierSpec,
    TokenRateSpec,
)
from billing.events import (
    AlertRaised,
    AlertResolved,
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    CustomerCheckpointed,
    CustomerStateChanged,
    EventRejected,
    Invoice,
    InvoiceLine,
    PeriodClosed,
    PeriodClosePlanned,
    RejectReason,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from streambill.wire.codec import Codec
from streambill.wire.convert import WireValue

T0 = datetime(2025, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)
P_START = datetime(2025, 3, 1, tzinfo=UTC)
P_END = datetime(2025, 4, 1, tzinfo=UTC)
CUS = "cus_abc123"

LINES = (
    InvoiceLine(
        description="Starter plan, 1 seat",
        quantity=Decimal("1"),
        unit_price=Decimal("29.00"),
        precise_amount=Decimal("29.00"),
        amount=Decimal("29.00"),
    ),
    InvoiceLine(
        description="tokens over 50,000 included",
        quantity=Decimal("150000"),
        unit_price=Decimal("0.00003"),
        precise_amount=Decimal("4.50000"),
        amount=Decimal("4.50"),
        feature_id="tokens",
    ),
)

PERIOD_INVOICE = Invoice(
    invoice_id="inv_cus_abc123_2025-03-01_starter",
    kind="period",
    customer_id=CUS,
    plan_id="starter",
    plan_version=2,
    period_start=P_START,
    period_end=P_END,
    currency="USD",
    lines=LINES,
    total=Decimal("33.50"),
    issued_at=P_END,
)

# The adjustment of PERIOD_INVOICE: same customer, plan and period.
ADJUSTMENT = replace(
    PERIOD_INVOICE,
    invoice_id="adj_cus_abc123_2025-03-01_1",
    kind="adjustment",
    lines=(
        InvoiceLine(
            description="late tokens",
            quantity=Decimal("1500"),
            unit_price=Decimal("0.00003"),
            precise_amount=Decimal("0.04500"),
            amount=Decimal("0.05"),
            feature_id="tokens",
        ),
    ),
    total=Decimal("0.05"),
    issued_at=datetime(2025, 5, 1, 0, 5, tzinfo=UTC),
    adjusts_invoice_id=PERIOD_INVOICE.invoice_id,
)

SAMPLES: dict[str, WireValue] = {
    "streambill.usage.v1.UsageRecorded": UsageRecorded(
        event_id="01959474-1a2d-7c3e-8f00-0123456789ab",
        customer_id=CUS,
        feature_id="tokens",
        quantity=Decimal("1500"),
        timestamp=T0,
        properties={"model": "gpt-4o", "input_tokens": "1000", "output_tokens": "500"},
    ),
    "streambill.account.v1.SubscriptionStarted": SubscriptionStarted(
        event_id="evt_sub_1", customer_id=CUS, timestamp=P_START, plan_id="starter", seats=3
    ),
    "streambill.account.v1.SubscriptionChanged": SubscriptionChanged(
        event_id="evt_sub_2", customer_id=CUS, timestamp=T0, plan_id="pro"
    ),
    "streambill.account.v1.SubscriptionCancelled": SubscriptionCancelled(
        event_id="evt_sub_3", customer_id=CUS, timestamp=T0
    ),
    "streambill.account.v1.SeatsChanged": SeatsChanged(
        event_id="evt_seats_1", customer_id=CUS, timestamp=T0, seats=5
    ),
    "streambill.account.v1.CreditsPurchased": CreditsPurchased(
        event_id="evt_pack_1", customer_id="cus_img42", timestamp=T0, pack_id="pack_100", quantity=2
    ),
    "streambill.account.v1.CreditsGranted": CreditsGranted(
        event_id="evt_grant_1",
        customer_id="cus_img42",
        timestamp=T0,
        credits=Decimal("50"),
        expires_at=datetime(2025, 6, 30, 23, 59, 59, 999000, tzinfo=UTC),
    ),
    "streambill.account.v1.WalletDeposited": WalletDeposited(
        event_id="evt_dep_1",
        customer_id="cus_dev7",
        timestamp=T0,
        amount=Decimal("100.00"),
        currency="USD",
    ),
    "streambill.account.v1.BalanceAdjusted": BalanceAdjusted(
        event_id="evt_adj_1",
        customer_id="cus_dev7",
        timestamp=T0,
        amount=Decimal("-2.50"),
        currency="USD",
        reason="goodwill correction of a double charge",
    ),
    "streambill.state.v1.CustomerStateChanged": CustomerStateChanged(
        customer_id=CUS,
        version=42,
        status="active",
        plan_id="starter",
        plan_version=2,
        model="metered",
        currency="USD",
        period_start=P_START,
        period_end=P_END,
        seats=1,
        usage={"tokens": Decimal("200000")},
        allowance_remaining={"tokens": Decimal("0")},
        credits_remaining=None,
        balance=None,
        last_topup=None,
        allowed=True,
        upcoming_invoice=PERIOD_INVOICE,
        source_offsets={"streambill.usage-events/3": 1041, "streambill.account-events/3": 7},
        updated_at=T0,
    ),
    "streambill.alerts.v1.AlertRaised": AlertRaised(
        alert_id="alr_cus_img42_credits_low_20_1",
        customer_id="cus_img42",
        kind="credits_low",
        threshold_percent=20,
        value=Decimal("19"),
        reference=Decimal("100"),
        timestamp=T0,
    ),
    "streambill.alerts.v1.AlertResolved": AlertResolved(
        alert_id="res_alr_cus_img42_credits_low_20_1",
        raised_alert_id="alr_cus_img42_credits_low_20_1",
        customer_id="cus_img42",
        kind="credits_low",
        threshold_percent=20,
        value=Decimal("219"),
        timestamp=T0,
        feature_id="images",
    ),
    "streambill.invoices.v1.InvoiceIssued": PERIOD_INVOICE,
    "streambill.invoices.v1.InvoiceAdjusted": ADJUSTMENT,
    "streambill.closes.v1.PeriodClosed": PeriodClosed(
        period_id="2025-03",
        watermarks={
            "streambill.usage-events": {0: 1200, 1: 980},
            "streambill.account-events": {0: 12},
        },
        closed_at=datetime(2025, 4, 1, 1, 0, tzinfo=UTC),
        invoice_count=2,
        total_by_currency={"USD": Decimal("33.50")},
    ),
    "streambill.closes.v1.PeriodClosePlanned": PeriodClosePlanned(
        period_id="2025-03",
        watermarks={"streambill.usage-events": {0: 1200, 1: 980}},
        planned_at=datetime(2025, 4, 1, 0, 30, tzinfo=UTC),
    ),
    "streambill.closes.v1.CustomerCheckpointed": CustomerCheckpointed(
        customer_id="cus_42",
        period_id="2025-03",
        partition=1,
        usage_offset=980,
        account_offset=12,
        watermark_ms=1743465599000,
        complete_from=datetime(2025, 1, 1, tzinfo=UTC),
        state='{"format":1,"customer_id":"cus_42"}',
        recent=(b"\xc3\x01account-event-bytes",),
        skipped=((975, 1743465000000),),
        pending=(977,),
        window_offset=960,
    ),
    "streambill.rejected.v1.EventRejected": EventRejected(
        reason=RejectReason.UNDECODABLE,
        detail="not Avro single-object encoded (5 bytes)",
        source_topic="streambill.usage-events",
        source_partition=3,
        source_offset=1042,
        original=b"\x00junk",
    ),
    "streambill.catalog.v1.PlanVersionPublished": PlanVersionPublished(
        plan_id="dev-api",
        version=2,
        name="Developer API",
        currency="USD",
        model="balance",
        base_fee=Decimal("0"),
        seat_fee=Decimal("0"),
        spend_cap=None,
        alert_thresholds=(20, 10, 0),
        credit_packs=(),
        prices=(
            PriceSpec(
                "query",
                "graduated",
                Decimal("1000"),
                per=Decimal("1000"),
                tiers=(TierSpec(Decimal("9000"), Decimal("0.50")), TierSpec(None, Decimal("0.25"))),
            ),
            PriceSpec(
                "tokens",
                "per_token",
                Decimal("0"),
                per=Decimal("1000000"),
                token_property="model",
                token_rates=(
                    TokenRateSpec("large", Decimal("3.00"), Decimal("15.00")),
                    TokenRateSpec("small", Decimal("0.50"), Decimal("1.50")),
                ),
            ),
        ),
        credit_costs=(),
    ),
    "streambill.catalog.v1.FeaturePublished": FeaturePublished("tokens", "token"),
    "streambill.catalog.v1.CreditPackPublished": CreditPackPublished(
        "credits-100", Decimal("100"), Decimal("10.00"), "USD"
    ),
    "streambill.catalog.v1.PlanRetired": PlanRetired("writer", T0),
}


def codec_with_added_field(directory: Path, schema_name: str) -> Codec:
    """A codec over copies of `schemas/` in which `schema_name` gained an optional
    `region` field: a schema change the direct encoders and decoders must notice."""
    schemas = Path(__file__).resolve().parents[2] / "schemas"
    for path in schemas.glob("*.avsc"):
        (directory / path.name).write_text(path.read_text())
    schema = json.loads((schemas / f"{schema_name}.avsc").read_text())
    schema["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    (directory / f"{schema_name}.avsc").write_text(json.dumps(schema))
    return Codec(directory)
