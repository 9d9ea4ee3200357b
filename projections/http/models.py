"""HTTP bodies of the API (pydantic). Money and quantities are decimal strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
)

from billing import bounds
from billing.admission import to_ms

# The bounds of billing.bounds: at most 18 digits before the point and 12 after. ASCII
# digits only (the schema's regex engine reads `\d` as any Unicode digit).
DecimalText = Annotated[str, Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,12})?$", examples=["12.5"])]
PositiveDecimalText = Annotated[
    str, Field(pattern=r"^(?=[0-9.]*[1-9])[0-9]{1,18}(\.[0-9]{1,12})?$", examples=["12.5"])
]
SignedDecimalText = Annotated[str, Field(pattern=r"^-?[0-9]{1,18}(\.[0-9]{1,12})?$")]


def _whole(value: object) -> object:
    """A JSON integer, also when written `5.0` (JSON Schema's integer includes it); a
    boolean, a string or a number with a fraction is refused. Bodies are parsed with
    every fractional number as an exact `Decimal` (`admin.exact_json`), so an integer
    written `5.0` is taken and `1.0000000000000001` is refused, never rounded."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("expected an integer")
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise ValueError("expected an integer (send a decimal string for a fraction)")
        return int(value)
    return value


BoundedInt = Annotated[StrictInt, Field(ge=0, le=10**18 - 1), BeforeValidator(_whole)]
ID_PATTERN = r"^[A-Za-z0-9_.:@\-]+$"
Id = Annotated[str, Field(min_length=1, max_length=bounds.MAX_ID_CHARS, pattern=ID_PATTERN)]


def _wire_time(value: datetime) -> datetime:
    """An event time the wire can carry (`billing.bounds.event_ms_problem`); the
    future bound is admission's rule, asked by the route with the API's clock."""
    found = bounds.event_ms_problem(to_ms(value))
    if found is not None:
        raise ValueError(found)
    return value


EventTime = Annotated[
    AwareDatetime,
    AfterValidator(_wire_time),
    Field(
        description="RFC 3339 with an offset; from 0001-01-01T00:00:00Z to at most the"
        " worker's future tolerance (STREAMBILL_FUTURE_TOLERANCE, 5 minutes) after now."
    ),
]
PropertyKey = Annotated[str, Field(min_length=1, max_length=bounds.MAX_PROPERTY_KEY_CHARS)]
PropertyValue = Annotated[str, Field(max_length=bounds.MAX_PROPERTY_VALUE_CHARS)]
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
    timestamp: EventTime
    properties: dict[PropertyKey, PropertyValue] = Field(
        default_factory=dict, max_length=bounds.MAX_PROPERTIES
    )

    @field_validator("properties")
    @classmethod
    def _token_counts_within_bounds(cls, value: dict[str, str]) -> dict[str, str]:
        """The token counts rating reads as numbers stay within `billing.bounds`."""
        found = bounds.property_problem(value)
        if found is not None:
            raise ValueError(f"{found[0]}: {found[1]}")
        return value


PlanVersion = Annotated[StrictInt, Field(ge=1, le=2**31 - 1), BeforeValidator(_whole)]


class SubscriptionIn(Strict):
    """`plan_version` pins the version billed for the whole subscription (absent: the
    plan's lowest version; pin the version you offer)."""

    event_id: Id
    plan_id: Id
    seats: Annotated[StrictInt, Field(ge=1, le=1_000_000), BeforeValidator(_whole)] = 1
    plan_version: PlanVersion | None = None
    timestamp: EventTime


class PlanChangeIn(Strict):
    """Move to `plan_id` at `plan_version` (absent: its lowest) from the next renewal."""

    event_id: Id
    plan_id: Id
    plan_version: PlanVersion | None = None
    timestamp: EventTime


class SeatsIn(Strict):
    event_id: Id
    seats: Annotated[StrictInt, Field(ge=0, le=1_000_000), BeforeValidator(_whole)]
    timestamp: EventTime


class CreditPurchaseIn(Strict):
    event_id: Id
    pack_id: Id
    quantity: Annotated[StrictInt, Field(ge=1, le=10_000), BeforeValidator(_whole)] = 1
    timestamp: EventTime


class DepositIn(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")

    event_id: Id
    amount: PositiveDecimalText
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    timestamp: EventTime


# ------------------------------------------------------------------ responses


class ErrorOut(BaseModel):
    """Every error but ingest's per-item ones: a code (`unauthenticated`, `forbidden`,
    `not_found`, `conflict`, `too_large`, `invalid_request`, `rate_limited`,
    `unavailable`) and a sentence naming the field where there is one."""

    error: str
    detail: str


class ItemError(BaseModel):
    index: int
    event_id: str | None
    errors: list[str]


class IngestOut(BaseModel):
    accepted: list[str]
    errors: list[ItemError]


class IngestUnavailableOut(BaseModel):
    """503 of ingest: the broker could not take the batch. `queued` were handed to the
    producer (delivered unless in `not_delivered`, or unconfirmed when the flush timed
    out); `errors` are the items refused on their own."""

    error: Literal["unavailable"] = "unavailable"
    detail: str
    queued: list[str]
    not_delivered: list[str]
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
    reason: (
        Literal[
            "feature_not_in_plan", "no_subscription", "subscription_ended",
            "credits_exhausted", "balance_exhausted", "spend_cap_reached",
        ]
        | None
    ) = Field(None, description="Why not allowed (null when allowed).")  # fmt: skip
    remaining: str | None
    unit: Literal["quantity", "credits", "money"]
    model: str | None
    freshness: FreshnessOut


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}
