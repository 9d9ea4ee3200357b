"""from_avro validates and names the bad field; to_avro keeps exactly what the wire keeps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import bounds
from billing.events import Invoice, UsageRecorded
from streambill.wire.codec import Codec
from streambill.wire.convert import (
    InvalidField,
    decode_value,
    encode_value,
    from_avro,
    from_avro_usage_recorded,
    to_avro,
    to_avro_invoice_adjusted,
    to_avro_usage_recorded,
)
from tests.unit.samples import ADJUSTMENT, PERIOD_INVOICE, SAMPLES

USAGE = "streambill.usage.v1.UsageRecorded"


def _usage_record(**changes: Any) -> dict[str, Any]:
    record = to_avro(SAMPLES[USAGE])[1]
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_id": ""}, "customer_id"),
        ({"event_id": ""}, "event_id"),
        ({"feature_id": None}, "feature_id"),
        ({"quantity": "1e3"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"quantity": "12,5"}, "quantity"),
        ({"quantity": "1" * 65}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"timestamp": datetime(2025, 1, 1)}, "timestamp"),  # noqa: DTZ001 (naive on purpose)
        ({"timestamp": 1735689600000}, "timestamp"),
        ({"properties": {"model": 4}}, "properties"),
    ],
)
def test_invalid_usage_fields_are_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as err:
        from_avro(USAGE, _usage_record(**changes))
    assert err.value.field == field
    assert err.value.reason == "invalid_field"


def test_negative_quantity_is_left_to_the_ledger() -> None:
    event = from_avro_usage_recorded(_usage_record(quantity="-5"))
    assert isinstance(event, UsageRecorded)
    assert event.quantity == Decimal("-5")


def test_nested_field_paths() -> None:
    name, record = to_avro(SAMPLES["streambill.state.v1.CustomerStateChanged"])
    record["upcoming_invoice"]["lines"][1]["amount"] = "4.5.0"
    with pytest.raises(InvalidField) as err:
        from_avro(name, record)
    assert err.value.field == "upcoming_invoice.lines[1].amount"


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("streambill.alerts.v1.AlertRaised", "kind", "credit_low"),
        ("streambill.state.v1.CustomerStateChanged", "status", "paused"),
        ("streambill.state.v1.CustomerStateChanged", "model", "hybrid"),
        ("streambill.rejected.v1.EventRejected", "reason", "whatever"),
        ("streambill.invoices.v1.InvoiceIssued", "kind", "adjustment"),
        ("streambill.invoices.v1.InvoiceAdjusted", "kind", "period"),
        ("streambill.account.v1.SeatsChanged", "seats", True),
        ("streambill.account.v1.WalletDeposited", "currency", ""),
    ],
)
def test_unknown_codes_are_invalid(name: str, field: str, value: object) -> None:
    record = to_avro(SAMPLES[name])[1]
    record[field] = value
    with pytest.raises(InvalidField) as err:
        from_avro(name, record)
    assert err.value.field == field


def test_watermark_partition_must_be_a_number() -> None:
    name, record = to_avro(SAMPLES["streambill.closes.v1.PeriodClosed"])
    record["watermarks"]["streambill.usage-events"]["x"] = 5
    with pytest.raises(InvalidField, match="partition"):
        from_avro(name, record)


def test_unknown_schema_name() -> None:
    with pytest.raises(InvalidField) as err:
        from_avro("streambill.usage.v9.UsageRecorded", {})
    assert err.value.field == "schema"


def test_invoices_travel_by_kind() -> None:
    assert to_avro(PERIOD_INVOICE)[0] == "streambill.invoices.v1.InvoiceIssued"
    assert to_avro(ADJUSTMENT)[0] == "streambill.invoices.v1.InvoiceAdjusted"
    with pytest.raises(InvalidField):
        to_avro_invoice_adjusted(dataclasses.replace(ADJUSTMENT, adjusts_invoice_id=None))
    purchase = dataclasses.replace(PERIOD_INVOICE, kind="purchase")
    assert isinstance(from_avro(*to_avro(purchase)), Invoice)


def test_to_avro_refuses_naive_times_and_non_finite_decimals() -> None:
    usage = SAMPLES[USAGE]
    assert isinstance(usage, UsageRecorded)
    with pytest.raises(InvalidField) as err:
        to_avro_usage_recorded(dataclasses.replace(usage, timestamp=datetime(2025, 1, 1)))  # noqa: DTZ001
    assert err.value.field == "timestamp"
    with pytest.raises(InvalidField) as err:
        to_avro_usage_recorded(dataclasses.replace(usage, quantity=Decimal("Infinity")))
    assert err.value.field == "quantity"


def test_times_are_floored_to_the_millisecond_and_normalised_to_utc() -> None:
    usage = SAMPLES[USAGE]
    assert isinstance(usage, UsageRecorded)
    cet = timezone(timedelta(hours=1))
    event = dataclasses.replace(usage, timestamp=datetime(2025, 1, 1, 1, 0, 0, 123999, tzinfo=cet))
    record = to_avro_usage_recorded(event)
    assert record["timestamp"] == datetime(2025, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


# Any number an input event may carry: within billing.bounds (beyond them, OutOfRange).
_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: bounds.problem(d) is None
)
_text = st.text(min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    quantity=_decimals,
    customer=_text,
    feature=_text,
    props=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=5),
    millis=st.integers(min_value=0, max_value=4102444800000),
)
def test_usage_round_trip_any_value(
    quantity: Decimal, customer: str, feature: str, props: dict[str, str], millis: int
) -> None:
    codec = _CODEC
    event = UsageRecorded(
        event_id="e1",
        customer_id=customer,
        feature_id=feature,
        quantity=quantity,
        timestamp=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis),
        properties=props,
    )
    back = decode_value(codec, encode_value(codec, event))
    assert back == event
    assert isinstance(back, UsageRecorded)
    assert str(back.quantity) == str(Decimal(format(quantity, "f")))  # scale kept


_CODEC = Codec()


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("streambill.account.v1.CreditsGranted", "credits", "1" + "0" * 18),
        ("streambill.account.v1.WalletDeposited", "amount", "0.0000000000001"),
        ("streambill.account.v1.BalanceAdjusted", "amount", "-" + "9" * 40),
    ],
)
def test_input_numbers_beyond_the_bounds_raise_out_of_range(
    name: str, field: str, value: str
) -> None:
    from datetime import UTC, datetime

    from streambill.wire.convert import OutOfRange, from_avro

    record = {
        "event_id": "e", "customer_id": "c", "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "credits": value, "amount": value, "currency": "USD", "reason": "", "expires_at": None,
    }  # fmt: skip
    with pytest.raises(OutOfRange) as err:
        from_avro(name, record)
    assert err.value.field == field and err.value.reason == "out_of_range"
