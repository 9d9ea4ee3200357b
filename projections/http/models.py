"""HTTP bodies of the API (pydantic). Money and quantities are decimal strings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, field_validator

from billing import bounds

# The bounds of billing.bounds: at most 18 digits before the point and 12 after. ASCII
# digits only (the schema's regex engine reads `\d` as any Unicode digit).
DecimalText = Annotated[str, Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,12})?$", examples=["12.5"])]
SignedDecimalText = Annotated[str, Field(pattern=r"^-?[0-9]{1,18}(\.[0-9]{1,12})?$")]
BoundedInt = Annotated[StrictInt, Field(ge=0, le=10**18 - 1)]
Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
MAX_BATCH = 1000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------- requests


class UsageIn(Strict):
    """One usage event. `event_id` makes it idempotent end to end."""

    event_id: Id
    customer_id: Id
    feature_id: Id
    quantity: DecimalText | BoundedInt
    timestamp: AwareDatetime
    properties: dict[str, Annotated[str, Field(max_length=500)]] = Field(
        default_factory=dict, max_length=50
    )

    @field_validator("properties")
    @classmethod
    def _token_counts_within_bounds(cls, value: dict[str, str]) -> dict[str, str]:
        """The token counts rating reads as numbers stay within `billing.bounds`."""
        found = bounds.property_problem(value)
        if found is not None:
            raise ValueError(f"{found[0]}: {found[1]}")
        return value


class SubscriptionIn(Strict):
    event_id: Id
    plan_id: Id
    seats: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 1
    timestamp: AwareDatetime


class SeatsIn(Strict):
    event_id: Id
    seats: Annotated[StrictInt, Field(ge=0, le=1_000_000)]
    timestamp: AwareDatetime


class CreditPurchaseIn(Strict):
    event_id: Id
    pack_id: Id
    quantity: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1
    timestamp: AwareDatetime


class DepositIn(Strict):
    event_id: Id
    amount: DecimalText
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    timestamp: AwareDatetime


# ------------------------------------------------------------------ responses


class ErrorOut(BaseModel):
    error: str
    detail: str


class ItemError(BaseModel):
    index: int
    event_id: str | None
    errors: list[str]


class IngestOut(BaseModel):
    accepted: list[str]
    errors: list[ItemError]


class AcceptedOut(BaseModel):
    event_id: str
    status: Literal["accepted"] = "accepted"


class FreshnessOut(BaseModel):
    """The customer-state record (topic/partition/offset) this answer reflects, and the
    input offsets that snapshot had folded."""

    topic: str
    partition: int
    offset: int
    source_offsets: dict[str, int]
    updated_at: str | None


class FeatureUsageOut(BaseModel):
    feature_id: str
    used: str
    remaining: str | None
    allowance: str | None


class UsageOut(BaseModel):
    customer_id: str
    plan_id: str | None
    model: str | None
    period_start: str | None
    period_end: str | None
    features: list[FeatureUsageOut]
    freshness: FreshnessOut


class TrendPointOut(BaseModel):
    """Credits or balance (`value`) after the events folded up to `at` (event time)."""

    at: str | None
    value: str


class BalanceOut(BaseModel):
    customer_id: str
    model: str | None
    currency: str | None
    credits_remaining: str | None
    balance: str | None
    last_topup: str | None
    used_since_topup: str | None
    trend: list[TrendPointOut] = Field(
        default_factory=list,
        description="Points since the last top-up, oldest first (at most 50, thinned).",
    )
    allowed: bool
    freshness: FreshnessOut


class InvoiceLineOut(BaseModel):
    description: str
    feature_id: str | None
    quantity: str
    unit_price: str
    precise_amount: str
    amount: str


class InvoiceOut(BaseModel):
    invoice_id: str
    kind: str
    customer_id: str
    plan_id: str
    plan_version: int
    period_start: str | None
    period_end: str | None
    currency: str
    total: str
    issued_at: str | None
    adjusts_invoice_id: str | None
    lines: list[InvoiceLineOut]


class UpcomingInvoiceOut(BaseModel):
    customer_id: str
    invoice: InvoiceOut | None
    freshness: FreshnessOut


class AlertOut(BaseModel):
    alert_id: str
    kind: str
    feature_id: str | None
    threshold_percent: int
    value: str
    reference: str
    timestamp: str | None


class AlertEventOut(BaseModel):
    """One entry of the recent alert history. A raise has `raised_alert_id` equal to its
    own id; a resolution names the alert it resolves and has no `reference`."""

    event: Literal["raised", "resolved"]
    alert_id: str
    raised_alert_id: str
    kind: str
    feature_id: str | None
    threshold_percent: int
    value: str
    reference: str | None
    timestamp: str | None


class AlertHistoryOut(BaseModel):
    customer_id: str
    limit: int = Field(description="How many events the history keeps.")
    recent: list[AlertEventOut] = Field(description="Newest first (in log order).")


class EntitlementOut(BaseModel):
    customer_id: str
    feature_id: str
    allowed: bool
    remaining: str | None
    unit: Literal["quantity", "credits", "money"]
    model: str | None
    freshness: FreshnessOut


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}
