"""Validation of what callers hand to the SDK, before anything is sent.

Each check returns the wire form of the value or raises `ValidationError` naming the
field, so a bad call fails on the caller's line instead of as a dead letter later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from billing import bounds
from billing.events import UsageRecorded
from streambill.wire.fields import MAX_DECIMAL_CHARS, to_millis

_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


class ValidationError(ValueError):
    """An SDK argument that cannot be sent. `field` names it (`quantity`,
    `properties['model']`); `index` is the position in a `report_many` batch."""

    def __init__(self, field: str, detail: str, index: int | None = None) -> None:
        where = field if index is None else f"events[{index}].{field}"
        super().__init__(f"{where}: {detail}")
        self.field = field
        self.detail = detail
        self.index = index


def identifier(value: object, field: str) -> str:
    """A non-empty id (customer, feature, plan, pack, event) of at most
    `billing.bounds.MAX_ID_CHARS` characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty")
    found = bounds.id_problem(value)
    if found is not None:
        raise ValidationError(field, found)
    return value


def decimal_text(value: object, field: str, *, positive: bool = False) -> str:
    """The wire string of a non-negative (or strictly positive) int, Decimal or decimal
    string within the bounds of `billing.bounds`. Floats (and bools) are refused:
    binary floating point is not exact."""
    if isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value):
        text = value  # the common case, already in wire form
    elif isinstance(value, bool | float):
        raise ValidationError(
            field, f"{type(value).__name__} is not accepted; pass an int, a Decimal or a string"
        )
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal | str):
        text = _parse_decimal(value, field)
    else:
        raise ValidationError(field, f"expected an int, Decimal or decimal string, got {value!r}")
    if len(text) > MAX_DECIMAL_CHARS:
        raise ValidationError(field, f"longer than {MAX_DECIMAL_CHARS} characters")
    if text.startswith("-") and Decimal(text) != 0:
        raise ValidationError(field, f"must not be negative, got {text}")
    if positive and Decimal(text) == 0:
        raise ValidationError(field, "must be greater than zero")
    return _bounded(text, field)


def signed_decimal_text(value: object, field: str) -> str:
    """Like `decimal_text` but the sign is free (balance corrections); zero is refused."""
    if isinstance(value, bool | float):
        raise ValidationError(field, f"{type(value).__name__} is not accepted")
    if isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal | str):
        raise ValidationError(field, f"expected an int, Decimal or decimal string, got {value!r}")
    text = _parse_decimal(value, field)
    if Decimal(text) == 0:
        raise ValidationError(field, "must not be zero")
    return _bounded(text, field)


def _bounded(text: str, field: str) -> str:
    """`text` if its number is within the bounds of `billing.bounds`."""
    if bounds.plain_within(text):
        return text
    found = bounds.problem(Decimal(text))
    if found is not None:
        raise ValidationError(field, found)
    return text


def _parse_decimal(value: Decimal | str, field: str) -> str:
    try:
        number = value if isinstance(value, Decimal) else Decimal(value.strip())
    except InvalidOperation:
        raise ValidationError(field, f"not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise ValidationError(field, f"must be finite, got {value!r}")
    text = format(number, "f")
    if len(text) > MAX_DECIMAL_CHARS:
        raise ValidationError(field, f"longer than {MAX_DECIMAL_CHARS} characters")
    return text


def count(value: object, field: str, *, minimum: int = 1) -> int:
    """A whole number (seats, packs) of at least `minimum`, fitting an Avro int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"expected an int, got {value!r}")
    if not minimum <= value < 2**31:
        raise ValidationError(field, f"must be between {minimum} and {2**31 - 1}, got {value}")
    return value


def event_millis(value: object, field: str = "timestamp") -> int:
    """Epoch milliseconds of a timezone-aware datetime (None: now)."""
    if value is None:
        value = datetime.now(UTC)
    if not isinstance(value, datetime):
        raise ValidationError(field, f"expected a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValidationError(field, "must be timezone-aware (e.g. tzinfo=UTC)")
    millis = to_millis(value)
    found = bounds.event_ms_problem(millis)
    if found is not None:
        raise ValidationError(field, found)
    return millis


def properties(value: object) -> Mapping[str, str]:
    """Free-form event dimensions: string keys, string values, within the text bounds
    of `billing.bounds`; the token counts (`billing.bounds.NUMERIC_PROPERTIES`), when
    numbers, within the numeric bounds."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("properties", f"expected a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValidationError("properties", f"key {key!r} is not a string")
        if not isinstance(item, str):
            raise ValidationError(
                f"properties[{key!r}]", f"values must be strings, got {type(item).__name__}"
            )
    found = bounds.text_property_problem(value) or bounds.property_problem(value)
    if found is not None:
        raise ValidationError(*found)
    return value


def currency(value: object, field: str = "currency") -> str:
    if not isinstance(value, str) or _CURRENCY.fullmatch(value) is None:
        raise ValidationError(field, f"expected an ISO 4217 code like 'USD', got {value!r}")
    return value


def usage_fields(event: Mapping[str, Any] | UsageRecorded) -> tuple[object, ...]:
    """The arguments of `report` from one `report_many` item, in `report`'s order."""
    if isinstance(event, UsageRecorded):
        return (
            event.customer_id,
            event.feature_id,
            event.quantity,
            event.event_id,
            event.timestamp,
            event.properties,
        )
    if not isinstance(event, Mapping):
        raise ValidationError("event", f"expected a mapping, got {type(event).__name__}")
    unknown = set(event) - USAGE_KEYS
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown field")
    return (
        event.get("customer_id"),
        event.get("feature_id"),
        event.get("quantity"),
        event.get("event_id"),
        event.get("timestamp"),
        event.get("properties"),
    )


USAGE_KEYS = {"customer_id", "feature_id", "quantity", "event_id", "timestamp", "properties"}
