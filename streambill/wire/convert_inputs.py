"""Avro records of the input events: usage-events and account-events (see `convert`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.events import (
    AccountHead,
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from streambill.wire.fields import (
    InvalidField,
    bounded_dec_from,
    bounded_properties,
    dec_to,
    id_from,
    int_from,
    int_to,
    opt_int_from,
    opt_int_to,
    opt_time_from,
    opt_time_to,
    str_from,
    str_map_from,
    time_from,
    time_to,
)

Record = dict[str, Any]


def _head(event: AccountHead) -> Record:
    """Fields shared by every account event."""
    return {
        "event_id": event.event_id,
        "customer_id": event.customer_id,
        "timestamp": time_to(event.timestamp, "timestamp"),
    }


def _head_from(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_id": id_from(r, "event_id"),
        "customer_id": id_from(r, "customer_id"),
        "timestamp": time_from(r, "timestamp"),
    }


# ---------------------------------------------------------------------- usage


def to_avro_usage_recorded(e: UsageRecorded) -> Record:
    return {
        "event_id": e.event_id,
        "customer_id": e.customer_id,
        "feature_id": e.feature_id,
        "quantity": dec_to(e.quantity, "quantity"),
        "timestamp": time_to(e.timestamp, "timestamp"),
        "properties": _properties_to(e.properties),
    }


def from_avro_usage_recorded(r: Mapping[str, Any]) -> UsageRecorded:
    return UsageRecorded(
        event_id=id_from(r, "event_id"),
        customer_id=id_from(r, "customer_id"),
        feature_id=id_from(r, "feature_id"),
        quantity=bounded_dec_from(r, "quantity"),
        timestamp=time_from(r, "timestamp"),
        properties=bounded_properties(str_map_from(r, "properties")),
    )


# -------------------------------------------------------------------- account


def to_avro_subscription_started(e: SubscriptionStarted) -> Record:
    return {
        **_head(e),
        "plan_id": e.plan_id,
        "seats": int_to(e.seats, "seats"),
        "plan_version": opt_int_to(e.plan_version, "plan_version"),
    }


def from_avro_subscription_started(r: Mapping[str, Any]) -> SubscriptionStarted:
    return SubscriptionStarted(
        **_head_from(r),
        plan_id=id_from(r, "plan_id"),
        seats=int_from(r, "seats"),
        plan_version=opt_int_from(r, "plan_version"),
    )


def to_avro_subscription_changed(e: SubscriptionChanged) -> Record:
    return {
        **_head(e),
        "plan_id": e.plan_id,
        "plan_version": opt_int_to(e.plan_version, "plan_version"),
    }


def from_avro_subscription_changed(r: Mapping[str, Any]) -> SubscriptionChanged:
    return SubscriptionChanged(
        **_head_from(r),
        plan_id=id_from(r, "plan_id"),
        plan_version=opt_int_from(r, "plan_version"),
    )


def to_avro_subscription_cancelled(e: SubscriptionCancelled) -> Record:
    return _head(e)


def from_avro_subscription_cancelled(r: Mapping[str, Any]) -> SubscriptionCancelled:
    return SubscriptionCancelled(**_head_from(r))


def to_avro_seats_changed(e: SeatsChanged) -> Record:
    return {**_head(e), "seats": int_to(e.seats, "seats")}


def from_avro_seats_changed(r: Mapping[str, Any]) -> SeatsChanged:
    return SeatsChanged(**_head_from(r), seats=int_from(r, "seats"))


def to_avro_credits_purchased(e: CreditsPurchased) -> Record:
    return {**_head(e), "pack_id": e.pack_id, "quantity": int_to(e.quantity, "quantity")}


def from_avro_credits_purchased(r: Mapping[str, Any]) -> CreditsPurchased:
    return CreditsPurchased(
        **_head_from(r), pack_id=id_from(r, "pack_id"), quantity=int_from(r, "quantity")
    )


def to_avro_credits_granted(e: CreditsGranted) -> Record:
    return {
        **_head(e),
        "credits": dec_to(e.credits, "credits"),
        "expires_at": opt_time_to(e.expires_at, "expires_at"),
    }


def from_avro_credits_granted(r: Mapping[str, Any]) -> CreditsGranted:
    return CreditsGranted(
        **_head_from(r),
        credits=bounded_dec_from(r, "credits"),
        expires_at=opt_time_from(r, "expires_at"),
    )


def to_avro_wallet_deposited(e: WalletDeposited) -> Record:
    return {**_head(e), "amount": dec_to(e.amount, "amount"), "currency": e.currency}


def from_avro_wallet_deposited(r: Mapping[str, Any]) -> WalletDeposited:
    return WalletDeposited(
        **_head_from(r), amount=bounded_dec_from(r, "amount"), currency=str_from(r, "currency")
    )


def to_avro_balance_adjusted(e: BalanceAdjusted) -> Record:
    return {
        **_head(e),
        "amount": dec_to(e.amount, "amount"),
        "currency": e.currency,
        "reason": e.reason,
    }


def from_avro_balance_adjusted(r: Mapping[str, Any]) -> BalanceAdjusted:
    return BalanceAdjusted(
        **_head_from(r),
        amount=bounded_dec_from(r, "amount"),
        currency=str_from(r, "currency"),
        reason=str_from(r, "reason", empty_ok=True),
    )


def _properties_to(values: Mapping[str, str]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise InvalidField("properties", "keys and values must be strings")
    return dict(values)
