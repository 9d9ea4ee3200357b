"""The JSON-lines format of events, in both directions: what `streambill export`
writes (`event_line`) and what `streambill simulate` reads (`read_jsonl`).

A usage event is a line without `type` (the usage file's format); an account event a
line whose `type` names its kind (the accounts file's format). `LINE_TYPES` is the one
table of those names: the writer and the reader both take them from it, and reading
a written line back gives an equal event. Amounts are decimal strings (numbers are
read too, as exact decimals); times RFC 3339 in UTC.

Bad lines never stop a read: they are returned as rejected with a reason code, like
everything the fold rejects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from billing.events import (
    AccountEvent,
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    Event,
    RejectReason,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)

# The `type` of each account event's line.
LINE_TYPES: dict[type[AccountEvent], str] = {
    SubscriptionStarted: "subscription_started",
    SubscriptionChanged: "subscription_changed",
    SubscriptionCancelled: "subscription_cancelled",
    SeatsChanged: "seats_changed",
    CreditsPurchased: "credits_purchased",
    CreditsGranted: "credits_granted",
    WalletDeposited: "wallet_deposited",
    BalanceAdjusted: "balance_adjusted",
}
_CLASSES: dict[str, type[AccountEvent]] = {name: cls for cls, name in LINE_TYPES.items()}
ACCOUNT_TYPES = frozenset(_CLASSES)


class LineError(Exception):
    def __init__(self, reason: RejectReason, detail: str, event_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.event_id = reason, detail, event_id


@dataclass(frozen=True)
class Rejected:
    event_id: str | None
    reason: str
    detail: str


# ------------------------------------------------------------------ writing


def time_text(value: datetime) -> str:
    """RFC 3339 in UTC, with a `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def account_type(event: AccountEvent) -> str:
    """The `type` of an account event's line."""
    return LINE_TYPES[type(event)]


def event_json(event: Event) -> dict[str, Any]:
    """The JSON object `parse_usage` or `parse_account` reads back as `event`."""
    base = {"event_id": event.event_id, "customer_id": event.customer_id}
    at = time_text(event.timestamp)
    if isinstance(event, UsageRecorded):
        return {
            **base,
            "feature_id": event.feature_id,
            "quantity": str(event.quantity),
            "timestamp": at,
            "properties": dict(sorted(event.properties.items())),
        }
    head = {"type": account_type(event), **base, "timestamp": at}
    if isinstance(event, SubscriptionStarted | SubscriptionChanged):
        pin = {} if event.plan_version is None else {"plan_version": event.plan_version}
    if isinstance(event, SubscriptionStarted):
        return {**head, "plan_id": event.plan_id, "seats": event.seats, **pin}
    if isinstance(event, SubscriptionChanged):
        return {**head, "plan_id": event.plan_id, **pin}
    if isinstance(event, SubscriptionCancelled):
        return head
    if isinstance(event, SeatsChanged):
        return {**head, "seats": event.seats}
    if isinstance(event, CreditsPurchased):
        return {**head, "pack_id": event.pack_id, "quantity": event.quantity}
    if isinstance(event, CreditsGranted):
        expires = None if event.expires_at is None else time_text(event.expires_at)
        return {**head, "credits": str(event.credits), "expires_at": expires}
    money = {"amount": str(event.amount), "currency": event.currency}
    if isinstance(event, WalletDeposited):
        return {**head, **money}
    return {**head, **money, "reason": event.reason}


def event_line(event: Event) -> str:
    """One line of the file, newline included."""
    return json.dumps(event_json(event), separators=(", ", ": ")) + "\n"


# ------------------------------------------------------------------ reading


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


def parse_account(obj: Mapping[str, Any]) -> AccountEvent:
    kind = obj.get("type")
    base = (
        _str(obj, "event_id"),
        _str(obj, "customer_id"),
        parse_time(obj.get("timestamp"), "timestamp"),
    )
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise LineError(RejectReason.UNKNOWN_SCHEMA, f"unknown account event type {kind!r}")
    if cls is SubscriptionStarted:
        return SubscriptionStarted(
            *base, plan_id=_str(obj, "plan_id"), seats=_int(obj, "seats", 1),
            plan_version=_version(obj),
        )  # fmt: skip
    if cls is SubscriptionChanged:
        return SubscriptionChanged(*base, plan_id=_str(obj, "plan_id"), plan_version=_version(obj))
    if cls is SubscriptionCancelled:
        return SubscriptionCancelled(*base)
    if cls is SeatsChanged:
        return SeatsChanged(*base, seats=_int(obj, "seats", -1))
    if cls is CreditsPurchased:
        return CreditsPurchased(
            *base, pack_id=_str(obj, "pack_id"), quantity=_int(obj, "quantity", 1)
        )
    if cls is CreditsGranted:
        expires = obj.get("expires_at")
        return CreditsGranted(
            *base,
            credits=_decimal(obj.get("credits"), "credits"),
            expires_at=None if expires is None else parse_time(expires, "expires_at"),
        )
    amount, currency = _decimal(obj.get("amount"), "amount"), _str(obj, "currency")
    if cls is WalletDeposited:
        return WalletDeposited(*base, amount=amount, currency=currency)
    return BalanceAdjusted(
        *base, amount=amount, currency=currency, reason=str(obj.get("reason", ""))
    )


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
