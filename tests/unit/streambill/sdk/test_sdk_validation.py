"""SDK calls with bad arguments fail before sending, naming the field (no broker needed:
the client points at a closed port and nothing valid is ever produced here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from streambill.config.settings import Settings
from streambill.sdk.client import UsageClient, ValidationError


@pytest.fixture(scope="module")
def client() -> Iterator[UsageClient]:
    settings = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="unit-never-sent.")
    yield UsageClient(settings, producer_config={"log_level": 0, "message.timeout.ms": 1000})


def _report(client: UsageClient, **changes: Any) -> str:
    args: dict[str, Any] = {"customer_id": "cus_abc123", "feature_id": "tokens", "quantity": 1}
    args.update(changes)
    return client.report(**args)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "   "}, "customer_id"),
        ({"customer_id": None}, "customer_id"),
        ({"feature_id": ""}, "feature_id"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": Decimal("-0.5")}, "quantity"),
        ({"quantity": "-3"}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": "abc"}, "quantity"),
        ({"quantity": Decimal("NaN")}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"properties": {"input_tokens": 1000}}, "properties['input_tokens']"),
        ({"properties": {3: "x"}}, "properties"),
        ({"properties": ["model"]}, "properties"),
        ({"timestamp": datetime(2025, 1, 1)}, "timestamp"),  # noqa: DTZ001 (naive on purpose)
        ({"timestamp": "2025-01-01T00:00:00Z"}, "timestamp"),
        ({"event_id": ""}, "event_id"),
    ],
)
def test_report_names_the_bad_field(
    client: UsageClient, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        _report(client, **changes)
    assert err.value.field == field
    assert field.split("[")[0] in str(err.value)


def test_float_quantity_message_says_why(client: UsageClient) -> None:
    with pytest.raises(ValidationError, match="float is not accepted"):
        _report(client, quantity=0.1)


def test_report_many_validates_everything_before_sending(client: UsageClient) -> None:
    good = {"customer_id": "cus_1", "feature_id": "tokens", "quantity": "2.5"}
    bad = {"customer_id": "cus_2", "feature_id": "tokens", "quantity": -2}
    with pytest.raises(ValidationError) as err:
        client.report_many([good, good, bad])
    assert (err.value.index, err.value.field) == (2, "quantity")
    assert "events[2].quantity" in str(err.value)
    with pytest.raises(ValidationError) as err:
        client.report_many([{**good, "qty": 1}])
    assert err.value.field == "qty"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.subscribe("", "starter"), "customer_id"),
        (lambda c: c.subscribe("cus_1", ""), "plan_id"),
        (lambda c: c.subscribe("cus_1", "starter", seats=0), "seats"),
        (lambda c: c.change_seats("cus_1", True), "seats"),
        (lambda c: c.change_plan("cus_1", None), "plan_id"),
        (lambda c: c.purchase_credits("cus_1", "pack_100", 0), "quantity"),
        (lambda c: c.grant_credits("cus_1", 0), "credits"),
        (lambda c: c.grant_credits("cus_1", 1.0), "credits"),
        (
            lambda c: c.grant_credits("cus_1", 5, datetime(2026, 1, 1)),  # noqa: DTZ001
            "expires_at",
        ),
        (lambda c: c.deposit("cus_1", "-5", "USD"), "amount"),
        (lambda c: c.deposit("cus_1", "5", "usd"), "currency"),
        (lambda c: c.adjust_balance("cus_1", 0, "USD"), "amount"),
        (lambda c: c.adjust_balance("cus_1", "1", "USD", reason=3), "reason"),
        (lambda c: c.cancel("cus_1", timestamp=datetime(2025, 1, 1)), "timestamp"),  # noqa: DTZ001
    ],
)
def test_account_commands_name_the_bad_field(client: UsageClient, call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        call(client)
    assert err.value.field == field


def test_reserved_producer_settings_cannot_be_overridden() -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ValueError, match=r"acks"):
        UsageClient(settings, producer_config={"acks": "1"})


def test_accepted_quantity_forms(client: UsageClient) -> None:
    """Returned ids prove acceptance; these events go nowhere (closed port, purged)."""
    for quantity in (0, 1500, Decimal("0.0025"), "12.50", " 7 ", "1e3"):
        assert _report(client, quantity=quantity, timestamp=datetime.now(UTC))
    client._producer.purge()  # nothing from a unit test may linger


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": 123456789012345678901234567890123}, "quantity"),
        ({"quantity": "123456789012345678901234567890123"}, "quantity"),
        ({"quantity": Decimal("1E+30")}, "quantity"),
        ({"quantity": "0.0000000000001"}, "quantity"),
        ({"properties": {"input_tokens": "9" * 19}}, "properties['input_tokens']"),
    ],
)
def test_the_sdk_refuses_a_number_beyond_the_bounds_naming_the_field(
    client: UsageClient, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match="out of range") as err:
        _report(client, **changes)
    assert err.value.field == field


def test_the_sdk_accepts_the_extremes_within_the_bounds(client: UsageClient) -> None:
    assert _report(client, quantity="999999999999999999.999999999999")
    assert _report(client, quantity=10**18 - 1, properties={"input_tokens": "0.000000000001"})
