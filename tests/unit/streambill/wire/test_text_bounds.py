"""The text bounds of `billing.bounds` (ids, property count, key and value lengths)
hold at the wire's doors as at the SDK's and the API's (issue 22): a record beyond
them is refused by the general decoder naming the field, and the direct decoder
leaves it to the general one (it never decides an error), so the worker
dead-letters it as `invalid_field` with the same detail on every path."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from billing.bounds import (
    MAX_ID_CHARS,
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY_CHARS,
    MAX_PROPERTY_VALUE_CHARS,
)
from billing.events import SubscriptionStarted, UsageRecorded
from processors.fold.admission import Doors, Rejection
from streambill.wire.codec import Codec
from streambill.wire.convert import InvalidField, decode_value, encode_value
from streambill.wire.usage_decoder import UsageDecoder
from tests.unit.samples import SAMPLES

CODEC = Codec()
USAGE = SAMPLES["streambill.usage.v1.UsageRecorded"]
assert isinstance(USAGE, UsageRecorded)
LONG = "é" * (MAX_ID_CHARS + 1)  # more characters, and bytes, than an id may have
EDGE = "é" * MAX_ID_CHARS  # 400 bytes, but only MAX_ID_CHARS characters: fine

BEYOND = {
    "event_id": replace(USAGE, event_id=LONG),
    "customer_id": replace(USAGE, customer_id=LONG),
    "feature_id": replace(USAGE, feature_id=LONG),
    "properties": replace(USAGE, properties={f"k{i}": "v" for i in range(MAX_PROPERTIES + 1)}),
    "key": replace(USAGE, properties={"k" * (MAX_PROPERTY_KEY_CHARS + 1): "v"}),
    "value": replace(USAGE, properties={"k": "v" * (MAX_PROPERTY_VALUE_CHARS + 1)}),
    "empty key": replace(USAGE, properties={"": "v"}),
}


@pytest.mark.parametrize("name", sorted(BEYOND))
def test_beyond_the_text_bounds_is_refused_on_both_paths(name: str) -> None:
    data = encode_value(CODEC, BEYOND[name])
    assert UsageDecoder(CODEC).decode(data) is None  # left to the general path
    with pytest.raises(InvalidField):
        decode_value(CODEC, data)
    with pytest.raises(Rejection) as info:  # what the worker and the close see
        Doors(CODEC, "u", "a", 1).decode("u", data)
    assert str(info.value.reason) == "invalid_field"


def test_at_the_bounds_both_paths_take_the_event() -> None:
    at = replace(
        USAGE,
        event_id=EDGE,
        customer_id=EDGE,
        feature_id=EDGE,
        quantity=Decimal(1),
        properties={
            **{f"k{i}": "v" for i in range(MAX_PROPERTIES - 1)},
            "k" * MAX_PROPERTY_KEY_CHARS: "é" * MAX_PROPERTY_VALUE_CHARS,
        },
    )
    data = encode_value(CODEC, at)
    assert UsageDecoder(CODEC).decode(data) == at == decode_value(CODEC, data)


def test_account_event_ids_are_bounded_too() -> None:
    sub = SAMPLES["streambill.account.v1.SubscriptionStarted"]
    assert isinstance(sub, SubscriptionStarted)
    for bad in (replace(sub, plan_id=LONG), replace(sub, event_id=LONG)):
        with pytest.raises(InvalidField):
            decode_value(CODEC, encode_value(CODEC, bad))
