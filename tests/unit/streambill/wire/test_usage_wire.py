"""The direct UsageRecorded encoder writes exactly the codec's bytes; event ids are UUIDv7,
unique and time-ordered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.admission import to_ms
from billing.events import UsageRecorded
from streambill.wire import convert
from streambill.wire.codec import Codec
from streambill.wire.fields import dec_to
from streambill.wire.usage_decoder import UsageDecoder
from streambill.wire.usage_wire import USAGE_RECORDED, EventIds, UsageEncoder
from tests.unit.billing.strategies import (
    bounded_decimals,
    maps_of,
    wire_texts,
    within_text_bounds,
)
from tests.unit.samples import codec_with_added_field

CODEC = Codec()
ENCODER = UsageEncoder(CODEC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reference(
    eid: str, cus: str, feat: str, qty: str, millis: int, props: dict[str, str]
) -> bytes:
    record = {
        "event_id": eid,
        "customer_id": cus,
        "feature_id": feat,
        "quantity": qty,
        "timestamp": EPOCH + timedelta(milliseconds=millis),
        "properties": props,
    }
    return CODEC.encode(USAGE_RECORDED, record)


def test_direct_path_is_active_for_the_current_schema() -> None:
    assert ENCODER.direct


@settings(max_examples=300, deadline=None)
@given(
    eid=st.text(max_size=80),
    cus=st.text(max_size=80),
    feat=st.text(max_size=80),
    qty=st.from_regex(r"[0-9]{1,70}(\.[0-9]{1,10})?", fullmatch=True),
    millis=st.integers(min_value=-(2**40), max_value=2**45),
    props=st.dictionaries(st.text(max_size=70), st.text(max_size=70), max_size=6),
)
def test_direct_bytes_equal_fastavro_bytes(
    eid: str, cus: str, feat: str, qty: str, millis: int, props: dict[str, str]
) -> None:
    direct = ENCODER.encode(eid, cus, feat, qty, millis, props)
    assert direct == _reference(eid, cus, feat, qty, millis, props)
    assert CODEC.decode(direct)[1]["properties"] == props


MIN_MS = -62_135_596_800_000  # 0001-01-01, the first instant a datetime can hold
MAX_MS = 253_402_300_799_999  # 9999-12-31 23:59:59.999
events = st.builds(
    UsageRecorded,
    event_id=wire_texts(),
    customer_id=wire_texts(),
    feature_id=wire_texts(),
    quantity=bounded_decimals(),
    timestamp=st.integers(MIN_MS, MAX_MS).map(lambda ms: EPOCH + timedelta(milliseconds=ms)),
    properties=maps_of(wire_texts()),
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_direct_bytes_are_the_codec_bytes_of_the_event(event: UsageRecorded) -> None:
    """From the domain event: the SDK's fast bytes (wire decimal string, epoch ms)
    are the codec's bytes of `convert.to_avro(event)`, and both decoders give the
    event back alike (the quantity as written: plain notation, so a positive
    exponent is written out, while the scale of decimals and the sign stay)."""
    quantity = dec_to(event.quantity, "quantity")
    direct = ENCODER.encode(
        event.event_id,
        event.customer_id,
        event.feature_id,
        quantity,
        to_ms(event.timestamp),
        event.properties,
    )
    assert direct == CODEC.encode(*convert.to_avro(event))
    ids = (event.event_id, event.customer_id, event.feature_id)
    if within_text_bounds(*ids, properties=event.properties):  # else invalid_field
        general = convert.decode_value(CODEC, direct)
        fast = UsageDecoder(CODEC).decode(direct)
        assert general == event and fast == general
        assert isinstance(fast, UsageRecorded) and isinstance(general, UsageRecorded)
        assert str(fast.quantity) == str(general.quantity) == str(D(quantity))


def test_changed_schema_falls_back_to_fastavro(tmp_path: Path) -> None:
    codec = codec_with_added_field(tmp_path, USAGE_RECORDED)
    encoder = UsageEncoder(codec)
    assert not encoder.direct
    data = encoder.encode("e1", "cus_1", "tokens", "5", 1_700_000_000_123, {"a": "b"})
    name, record = codec.decode(data)
    assert (name, record["region"], record["quantity"]) == (USAGE_RECORDED, None, "5")
    assert record["timestamp"] == EPOCH + timedelta(milliseconds=1_700_000_000_123)


def test_event_ids_are_uuid7_unique_and_ordered() -> None:
    ids = EventIds()
    batch = [ids() for _ in range(2000)] + ids.take(3000) + [ids() for _ in range(10)]
    assert len(set(batch)) == len(batch)
    assert batch == sorted(batch)
    parsed = [uuid.UUID(i) for i in batch]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert abs((parsed[-1].int >> 80) - now_ms) < 5000  # the prefix is the Unix time in ms
