"""Explicit conversions between the domain values of `billing/events.py` (and the catalog
topic's records of `billing/catalog_records.py`, in `convert_catalog`) and Avro records.

`to_avro_<value>` turns a frozen dataclass into the record of its schema in `schemas/`;
`from_avro_<value>` validates a decoded record and builds the dataclass, raising
`InvalidField` (reject reason "invalid_field") that names the first bad field. The generic
`to_avro(value) -> (full_name, record)` and `from_avro(full_name, record)` dispatch on the
type or the schema name; `encode_value` / `decode_value` add the codec.

Wire conventions (schemas/README.md, `streambill.wire.fields`): money and quantities are decimal
strings in plain notation; times are `timestamp-millis` UTC, so `to_avro` floors datetimes
to the millisecond and the record it returns equals the record decoded from its bytes.
`from_avro` checks structure only (parsable, non-empty ids, known codes); business rules
such as "no negative quantity" belong to `billing.ledger`, which rejects with its own codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from billing.catalog_records import (
    CatalogRecord,
    CreditPackPublished,
    FeaturePublished,
    PlanRetired,
    PlanVersionPublished,
)
from billing.events import (
    AlertRaised,
    AlertResolved,
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    CustomerCheckpointed,
    CustomerStateChanged,
    Event,
    EventRejected,
    Invoice,
    PeriodClosed,
    PeriodClosePlanned,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from streambill.wire.codec import Codec
from streambill.wire.convert_catalog import (
    from_avro_credit_pack_published,
    from_avro_feature_published,
    from_avro_plan_retired,
    from_avro_plan_version_published,
    to_avro_credit_pack_published,
    to_avro_feature_published,
    to_avro_plan_retired,
    to_avro_plan_version_published,
)
from streambill.wire.convert_checkpoint import (
    CUSTOMER_CHECKPOINTED,
    PERIOD_CLOSE_PLANNED,
    from_avro_customer_checkpointed,
    from_avro_period_close_planned,
    to_avro_customer_checkpointed,
    to_avro_period_close_planned,
)
from streambill.wire.convert_inputs import (
    from_avro_balance_adjusted,
    from_avro_credits_granted,
    from_avro_credits_purchased,
    from_avro_seats_changed,
    from_avro_subscription_cancelled,
    from_avro_subscription_changed,
    from_avro_subscription_started,
    from_avro_usage_recorded,
    from_avro_wallet_deposited,
    to_avro_balance_adjusted,
    to_avro_credits_granted,
    to_avro_credits_purchased,
    to_avro_seats_changed,
    to_avro_subscription_cancelled,
    to_avro_subscription_changed,
    to_avro_subscription_started,
    to_avro_usage_recorded,
    to_avro_wallet_deposited,
)
from streambill.wire.convert_outputs import (
    from_avro_alert_raised,
    from_avro_alert_resolved,
    from_avro_customer_state_changed,
    from_avro_event_rejected,
    from_avro_invoice,
    from_avro_invoice_adjusted,
    from_avro_invoice_issued,
    from_avro_invoice_line,
    from_avro_period_closed,
    to_avro_alert_raised,
    to_avro_alert_resolved,
    to_avro_customer_state_changed,
    to_avro_event_rejected,
    to_avro_invoice,
    to_avro_invoice_adjusted,
    to_avro_invoice_issued,
    to_avro_invoice_line,
    to_avro_period_closed,
)
from streambill.wire.fields import InvalidField, OutOfRange

__all__ = [
    "InvalidField",
    "OutOfRange",
    "WireValue",
    "decode_value",
    "encode_value",
    "from_avro",
    "from_avro_alert_raised",
    "from_avro_alert_resolved",
    "from_avro_balance_adjusted",
    "from_avro_credits_granted",
    "from_avro_credits_purchased",
    "from_avro_customer_state_changed",
    "from_avro_event_rejected",
    "from_avro_invoice",
    "from_avro_invoice_adjusted",
    "from_avro_invoice_issued",
    "from_avro_invoice_line",
    "from_avro_period_closed",
    "from_avro_seats_changed",
    "from_avro_subscription_cancelled",
    "from_avro_subscription_changed",
    "from_avro_subscription_started",
    "from_avro_usage_recorded",
    "from_avro_wallet_deposited",
    "to_avro",
    "to_avro_alert_raised",
    "to_avro_alert_resolved",
    "to_avro_balance_adjusted",
    "to_avro_credits_granted",
    "to_avro_credits_purchased",
    "to_avro_customer_state_changed",
    "to_avro_event_rejected",
    "to_avro_invoice",
    "to_avro_invoice_adjusted",
    "to_avro_invoice_issued",
    "to_avro_invoice_line",
    "to_avro_period_closed",
    "to_avro_seats_changed",
    "to_avro_subscription_cancelled",
    "to_avro_subscription_changed",
    "to_avro_subscription_started",
    "to_avro_usage_recorded",
    "to_avro_wallet_deposited",
]

USAGE_RECORDED = "streambill.usage.v1.UsageRecorded"
SUBSCRIPTION_STARTED = "streambill.account.v1.SubscriptionStarted"
SUBSCRIPTION_CHANGED = "streambill.account.v1.SubscriptionChanged"
SUBSCRIPTION_CANCELLED = "streambill.account.v1.SubscriptionCancelled"
SEATS_CHANGED = "streambill.account.v1.SeatsChanged"
CREDITS_PURCHASED = "streambill.account.v1.CreditsPurchased"
CREDITS_GRANTED = "streambill.account.v1.CreditsGranted"
WALLET_DEPOSITED = "streambill.account.v1.WalletDeposited"
BALANCE_ADJUSTED = "streambill.account.v1.BalanceAdjusted"
CUSTOMER_STATE_CHANGED = "streambill.state.v1.CustomerStateChanged"
ALERT_RAISED = "streambill.alerts.v1.AlertRaised"
ALERT_RESOLVED = "streambill.alerts.v1.AlertResolved"
INVOICE_ISSUED = "streambill.invoices.v1.InvoiceIssued"
INVOICE_ADJUSTED = "streambill.invoices.v1.InvoiceAdjusted"
PERIOD_CLOSED = "streambill.closes.v1.PeriodClosed"
EVENT_REJECTED = "streambill.rejected.v1.EventRejected"
PLAN_VERSION_PUBLISHED = "streambill.catalog.v1.PlanVersionPublished"
FEATURE_PUBLISHED = "streambill.catalog.v1.FeaturePublished"
CREDIT_PACK_PUBLISHED = "streambill.catalog.v1.CreditPackPublished"
PLAN_RETIRED = "streambill.catalog.v1.PlanRetired"
CATALOG_SCHEMAS = frozenset(
    {PLAN_VERSION_PUBLISHED, FEATURE_PUBLISHED, CREDIT_PACK_PUBLISHED, PLAN_RETIRED}
)

# Every value that travels on a topic.
WireValue = (
    Event | CustomerStateChanged | AlertRaised | AlertResolved | Invoice | PeriodClosed
    | EventRejected | CatalogRecord | CustomerCheckpointed | PeriodClosePlanned
)  # fmt: skip

_TO: dict[type, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    UsageRecorded: (USAGE_RECORDED, to_avro_usage_recorded),
    SubscriptionStarted: (SUBSCRIPTION_STARTED, to_avro_subscription_started),
    SubscriptionChanged: (SUBSCRIPTION_CHANGED, to_avro_subscription_changed),
    SubscriptionCancelled: (SUBSCRIPTION_CANCELLED, to_avro_subscription_cancelled),
    SeatsChanged: (SEATS_CHANGED, to_avro_seats_changed),
    CreditsPurchased: (CREDITS_PURCHASED, to_avro_credits_purchased),
    CreditsGranted: (CREDITS_GRANTED, to_avro_credits_granted),
    WalletDeposited: (WALLET_DEPOSITED, to_avro_wallet_deposited),
    BalanceAdjusted: (BALANCE_ADJUSTED, to_avro_balance_adjusted),
    CustomerStateChanged: (CUSTOMER_STATE_CHANGED, to_avro_customer_state_changed),
    AlertRaised: (ALERT_RAISED, to_avro_alert_raised),
    AlertResolved: (ALERT_RESOLVED, to_avro_alert_resolved),
    PeriodClosed: (PERIOD_CLOSED, to_avro_period_closed),
    CustomerCheckpointed: (CUSTOMER_CHECKPOINTED, to_avro_customer_checkpointed),
    PeriodClosePlanned: (PERIOD_CLOSE_PLANNED, to_avro_period_close_planned),
    EventRejected: (EVENT_REJECTED, to_avro_event_rejected),
    PlanVersionPublished: (PLAN_VERSION_PUBLISHED, to_avro_plan_version_published),
    FeaturePublished: (FEATURE_PUBLISHED, to_avro_feature_published),
    CreditPackPublished: (CREDIT_PACK_PUBLISHED, to_avro_credit_pack_published),
    PlanRetired: (PLAN_RETIRED, to_avro_plan_retired),
}

_FROM: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    USAGE_RECORDED: from_avro_usage_recorded,
    SUBSCRIPTION_STARTED: from_avro_subscription_started,
    SUBSCRIPTION_CHANGED: from_avro_subscription_changed,
    SUBSCRIPTION_CANCELLED: from_avro_subscription_cancelled,
    SEATS_CHANGED: from_avro_seats_changed,
    CREDITS_PURCHASED: from_avro_credits_purchased,
    CREDITS_GRANTED: from_avro_credits_granted,
    WALLET_DEPOSITED: from_avro_wallet_deposited,
    BALANCE_ADJUSTED: from_avro_balance_adjusted,
    CUSTOMER_STATE_CHANGED: from_avro_customer_state_changed,
    ALERT_RAISED: from_avro_alert_raised,
    ALERT_RESOLVED: from_avro_alert_resolved,
    INVOICE_ISSUED: from_avro_invoice_issued,
    INVOICE_ADJUSTED: from_avro_invoice_adjusted,
    PERIOD_CLOSED: from_avro_period_closed,
    CUSTOMER_CHECKPOINTED: from_avro_customer_checkpointed,
    PERIOD_CLOSE_PLANNED: from_avro_period_close_planned,
    EVENT_REJECTED: from_avro_event_rejected,
    PLAN_VERSION_PUBLISHED: from_avro_plan_version_published,
    FEATURE_PUBLISHED: from_avro_feature_published,
    CREDIT_PACK_PUBLISHED: from_avro_credit_pack_published,
    PLAN_RETIRED: from_avro_plan_retired,
}

SCHEMA_NAMES: tuple[str, ...] = tuple(sorted(_FROM))


def to_avro(value: WireValue) -> tuple[str, dict[str, Any]]:
    """(full schema name, record) of a domain value. An Invoice travels as InvoiceIssued
    (kinds "period", "purchase") or InvoiceAdjusted (kind "adjustment")."""
    if isinstance(value, Invoice):
        if value.kind == "adjustment":
            return INVOICE_ADJUSTED, to_avro_invoice_adjusted(value)
        return INVOICE_ISSUED, to_avro_invoice_issued(value)
    try:
        name, convert = _TO[type(value)]
    except KeyError:
        raise TypeError(f"no Avro schema for {type(value).__name__}") from None
    return name, convert(value)


def from_avro(name: str, record: Mapping[str, Any]) -> WireValue:
    """The domain value of a decoded record of schema `name`; raises `InvalidField`."""
    try:
        convert = _FROM[name]
    except KeyError:
        raise InvalidField("schema", f"no domain value for schema {name!r}") from None
    value: WireValue = convert(record)
    return value


def encode_value(codec: Codec, value: WireValue) -> bytes:
    """Single-object encoded bytes of a domain value."""
    return codec.encode(*to_avro(value))


def decode_value(codec: Codec, data: bytes | None) -> WireValue:
    """The domain value of single-object encoded bytes.

    Raises `streambill.wire.codec.DecodeError` (reasons "undecodable", "unknown_schema") or
    `InvalidField` (reason "invalid_field"); both carry `.reason` and a detail.
    """
    name, record = codec.decode(data)
    return from_avro(name, record)
