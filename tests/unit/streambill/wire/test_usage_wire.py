"""The direct UsageRecorded encoder writes exactly the codec's bytes; event ids are UUIDv7,
unique and time-ordered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streambill.wire.codec import Codec
from streambill.wire.usage_wire import USAGE_RECORDED, EventIds, UsageEncoder
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
