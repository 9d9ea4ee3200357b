"""Field-level rules of the wire form shared by every conversion (schemas/README.md).

- Decimals travel as strings in plain notation: optional '-', digits, optional '.' and
  digits. No exponent, NaN or Infinity; at most `MAX_DECIMAL_CHARS` characters, so a
  hostile value cannot make `Decimal` arithmetic explode downstream.
- Numbers of input events (usage quantity, the token counts `input_tokens` and
  `output_tokens` among its properties, credits, wallet amounts) must also lie within
  `billing.bounds`: finite, magnitude below 10**18, at most 12 digits after the point.
  A well-formed number beyond them raises `OutOfRange` (an `InvalidField` with reason
  "out_of_range"); outputs are not bounded this way.
- Times are timezone-aware UTC datetimes floored to the millisecond (timestamp-millis).
  A naive datetime is refused: fastavro would read it as local time.
- Readers (`*_from`) take a decoded record and raise `InvalidField` naming the field
  (with its path inside nested records, e.g. `upcoming_invoice.lines[2].amount`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from billing import bounds

MAX_DECIMAL_CHARS = 64
_DECIMAL_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class InvalidField(ValueError):
    """A value of the wrong shape in field `field` (reject reason "invalid_field")."""

    reason = "invalid_field"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class OutOfRange(InvalidField):
    """A well-formed number beyond the bounds of `billing.bounds` in an input event
    field (reject reason "out_of_range")."""

    reason = "out_of_range"


def field_path(path: str, name: str) -> str:
    """The name of field `name` inside the nested record at `path` ("" at the top)."""
    return f"{path}.{name}" if path else name


# ------------------------------------------------------------------- decimals


def dec_to(value: Decimal, field: str) -> str:
    """The wire string of a finite Decimal, plain notation, scale kept ("1.50" stays)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidField(field, f"expected a finite Decimal, got {value!r}")
    text = format(value, "f")
    if len(text) > MAX_DECIMAL_CHARS:
        raise InvalidField(field, f"decimal longer than {MAX_DECIMAL_CHARS} characters")
    return text


def opt_dec_to(value: Decimal | None, field: str) -> str | None:
    return None if value is None else dec_to(value, field)


def parse_decimal(text: object, field: str) -> Decimal:
    """A Decimal from its wire string; anything else raises `InvalidField`."""
    if (
        not isinstance(text, str)
        or len(text) > MAX_DECIMAL_CHARS
        or _DECIMAL_RE.fullmatch(text) is None
    ):
        raise InvalidField(field, f"expected a decimal string like '12.50', got {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # unreachable after the regex; kept as a guard
        raise InvalidField(field, f"unparsable decimal {text!r}") from exc


def dec_from(r: Mapping[str, Any], name: str, *, path: str = "") -> Decimal:
    return parse_decimal(r.get(name), field_path(path, name))


def opt_dec_from(r: Mapping[str, Any], name: str, *, path: str = "") -> Decimal | None:
    value = r.get(name)
    return None if value is None else parse_decimal(value, field_path(path, name))


def bounded(value: Decimal, field: str) -> Decimal:
    """`value` if it is within the bounds of `billing.bounds`, else `OutOfRange`."""
    found = bounds.problem(value)
    if found is not None:
        raise OutOfRange(field, found)
    return value


def bounded_dec_from(r: Mapping[str, Any], name: str, *, path: str = "") -> Decimal:
    """An input event's decimal: `dec_from`, then `bounded`."""
    field = field_path(path, name)
    text = r.get(name)
    value = parse_decimal(text, field)
    if bounds.plain_within(text):  # type: ignore[arg-type]  # a str once parsed
        return value
    return bounded(value, field)


def bounded_properties(values: dict[str, str]) -> dict[str, str]:
    """`values` unless they are beyond the text bounds of `billing.bounds` (count, key
    and value lengths: `InvalidField`) or a numeric property
    (`billing.bounds.NUMERIC_PROPERTIES`) holds a number beyond the bounds
    (`OutOfRange` naming it)."""
    text = bounds.text_property_problem(values)
    if text is not None:
        raise InvalidField(*text)
    found = bounds.property_problem(values)
    if found is not None:
        raise OutOfRange(*found)
    return values


def dec_map_to(values: Mapping[str, Decimal], field: str) -> dict[str, str]:
    return {k: dec_to(v, f"{field}[{k!r}]") for k, v in values.items()}


def dec_map_from(r: Mapping[str, Any], name: str, *, path: str = "") -> dict[str, Decimal]:
    field = field_path(path, name)
    values = r.get(name, {})
    if not isinstance(values, Mapping):
        raise InvalidField(field, "expected a map")
    return {str(k): parse_decimal(v, f"{field}[{k!r}]") for k, v in values.items()}


# ---------------------------------------------------------------------- times


def time_to(value: datetime, field: str) -> datetime:
    """`value` in UTC floored to the millisecond: exactly what the wire keeps."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidField(field, f"expected a timezone-aware datetime, got {value!r}")
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


def opt_time_to(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else time_to(value, field)


def time_from(r: Mapping[str, Any], name: str, *, path: str = "") -> datetime:
    value = r.get(name)
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidField(field_path(path, name), f"expected a UTC timestamp, got {value!r}")
    if value.utcoffset() != timedelta(0):
        return value.astimezone(UTC)
    return value


def opt_time_from(r: Mapping[str, Any], name: str, *, path: str = "") -> datetime | None:
    return None if r.get(name) is None else time_from(r, name, path=path)


def to_millis(value: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (integer arithmetic, no float)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------ strings and ints


def str_from(r: Mapping[str, Any], name: str, *, empty_ok: bool = False, path: str = "") -> str:
    value = r.get(name)
    if not isinstance(value, str):
        raise InvalidField(field_path(path, name), f"expected a string, got {value!r}")
    if not empty_ok and not value:
        raise InvalidField(field_path(path, name), "must not be empty")
    return value


def id_from(r: Mapping[str, Any], name: str, *, path: str = "") -> str:
    """An id of an input event: a string within `billing.bounds.MAX_ID_CHARS`, the
    bound the SDK and the API enforce (`billing.bounds.id_problem`)."""
    value = str_from(r, name, path=path)
    problem = bounds.id_problem(value)
    if problem is not None:
        raise InvalidField(field_path(path, name), problem)
    return value


def opt_str_from(r: Mapping[str, Any], name: str, *, path: str = "") -> str | None:
    return None if r.get(name) is None else str_from(r, name, path=path)


def str_map_from(r: Mapping[str, Any], name: str, *, path: str = "") -> dict[str, str]:
    values = r.get(name, {})
    if not isinstance(values, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise InvalidField(field_path(path, name), "expected a map of strings to strings")
    return dict(values)


def int_from(r: Mapping[str, Any], name: str, *, path: str = "", bits: int = 32) -> int:
    return int_to(r.get(name), field_path(path, name), bits=bits)


def int_to(value: object, field: str, *, bits: int = 32) -> int:
    """`value` checked to fit the Avro int (32 bits) or long (64 bits) it travels as."""
    low, high = _INT32 if bits == 32 else _INT64
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidField(field, f"expected a {bits}-bit integer, got {value!r}")
    return value


def opt_int_to(value: int | None, field: str, *, bits: int = 32) -> int | None:
    return None if value is None else int_to(value, field, bits=bits)


def opt_int_from(r: Mapping[str, Any], name: str, *, path: str = "", bits: int = 32) -> int | None:
    return None if r.get(name) is None else int_from(r, name, path=path, bits=bits)
