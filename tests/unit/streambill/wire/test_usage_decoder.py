"""The direct UsageRecorded decoder returns exactly what fastavro + `from_avro` return,
and leaves every input it does not take (including every bad one) to that path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.events import UsageRecorded
from processors.fold.admission import Doors, Rejection
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import decode_value
from streambill.wire.fields import InvalidField
from streambill.wire.usage_decoder import UsageDecoder
from streambill.wire.usage_wire import USAGE_RECORDED
from tests.unit.billing.strategies import (
    bounded_decimals,
    maps_of,
    wire_texts,
    within_text_bounds,
)
from tests.unit.samples import codec_with_added_field

CODEC = Codec()
DOORS = Doors(CODEC, "u", "a", 1)
DECODER = UsageDecoder(CODEC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MS = -62_135_596_800_000  # 0001-01-01, the first instant a datetime can hold
MAX_MS = 253_402_300_799_999  # 9999-12-31 23:59:59.999


def _encode(eid: str, cus: str, feat: str, qty: str, millis: int, props: dict[str, str]) -> bytes:
    """Bytes written by fastavro, outside the range of datetime too (as a raw long)."""
    schema = CODEC.schema(USAGE_RECORDED)
    plain = json.loads(json.dumps(schema))
    plain["fields"][4]["type"] = "long"  # same bytes as timestamp-millis, any value
    out = BytesIO()
    out.write(DECODER.header)
    schemaless_writer(
        out,
        parse_schema(plain),
        {
            "event_id": eid,
            "customer_id": cus,
            "feature_id": feat,
            "quantity": qty,
            "timestamp": millis,
            "properties": props,
        },
    )
    return out.getvalue()


def _corrupted(record: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    """`record` after each (op, position, bytes) edit in turn: flip the byte at the
    position (xor with the first given byte), cut the rest, add the bytes, drop one byte;
    positions wrap around the current length."""
    data = bytearray(record)
    for op, at, extra in edits:
        i = at % (len(data) + 1)
        if op == "flip" and i < len(data):
            data[i] ^= (extra[0] if extra else 0xFF) or 1
        elif op == "cut":
            del data[i:]
        elif op == "add":
            data[i:i] = extra
        elif op == "drop" and i < len(data):
            del data[i]
    return bytes(data)


def _general(data: bytes) -> tuple[str, Any]:
    """("ok", event) or ("error", reason) of the general path."""
    try:
        return "ok", decode_value(CODEC, data)
    except (DecodeError, InvalidField) as exc:
        return "error", exc.reason


def _exact(e: UsageRecorded) -> tuple[Any, ...]:
    """Every field with its type and exact text (Decimal('1.0') == Decimal('1.00'))."""
    return (
        e.event_id,
        e.customer_id,
        e.feature_id,
        str(e.quantity),
        e.timestamp,
        e.timestamp.tzinfo,
        sorted(e.properties.items()),
        type(e.properties),
    )


def _agrees(data: bytes) -> UsageRecorded | None:
    fast = DECODER.decode(data)
    if fast is not None:
        outcome, general = _general(data)
        assert outcome == "ok", f"fast path accepted what the general path rejects: {general}"
        assert isinstance(general, UsageRecorded)
        assert _exact(fast) == _exact(general)
        assert fast == general
    return fast


def test_direct_path_is_active_for_the_current_schema() -> None:
    assert DECODER.direct


ids = st.text(max_size=40)
quantities = st.one_of(
    st.from_regex(r"-?[0-9]{1,70}(\.[0-9]{1,10})?", fullmatch=True),
    st.text(max_size=12),
)
props = st.dictionaries(st.text(min_size=1, max_size=30), st.text(max_size=30), max_size=5)


@settings(max_examples=400, deadline=None)
@given(
    eid=ids,
    cus=ids,
    feat=ids,
    qty=quantities,
    millis=st.integers(min_value=-(2**62), max_value=2**62),
    properties=props,
)
def test_equal_to_fastavro_on_arbitrary_records(
    eid: str, cus: str, feat: str, qty: str, millis: int, properties: dict[str, str]
) -> None:
    data = _encode(eid, cus, feat, qty, millis, properties)
    fast = _agrees(data)
    valid = _general(data)[0] == "ok"
    if valid and abs(millis) < 2**62:
        assert fast is not None, "a valid record must take the fast path"


@settings(max_examples=300, deadline=None)
@given(
    eid=ids.filter(bool),
    cus=ids.filter(bool),
    qty=st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
    millis=st.integers(min_value=MIN_MS, max_value=MAX_MS),
    properties=props,
)
def test_valid_records_decode_directly(
    eid: str, cus: str, qty: str, millis: int, properties: dict[str, str]
) -> None:
    data = _encode(eid, cus, "tokens", qty, millis, properties)
    fast = _agrees(data)
    assert fast is not None
    assert fast.timestamp == EPOCH + timedelta(milliseconds=millis)


@settings(max_examples=500, deadline=None)
@given(
    millis=st.integers(min_value=0, max_value=2**44),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "add", "drop"]),
            st.integers(0, 200),
            st.binary(max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_corrupted_records_agree_or_fall_back(
    millis: int, edits: list[tuple[str, int, bytes]]
) -> None:
    _agrees(_corrupted(_encode("evt_1", "cus_1", "tokens", "12.5", millis, {"model": "m"}), edits))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_garbage_after_the_header_agrees_or_falls_back(body: bytes) -> None:
    _agrees(DECODER.header + body)


def test_not_taken_inputs() -> None:
    good = _encode("e", "c", "f", "1", 5, {})
    assert DECODER.decode(good) is not None
    other_schema = CODEC.encode(
        "streambill.account.v1.SubscriptionCancelled",
        {"event_id": "e", "customer_id": "c", "timestamp": EPOCH},
    )
    assert DECODER.decode(other_schema) is None
    assert DECODER.decode(good + b"\x00") is None  # trailing byte
    assert DECODER.decode(good[:-1]) is None  # truncated
    # Only bytes take the fast path.
    assert DECODER.decode(bytearray(good)) is None  # type: ignore[arg-type]
    assert DECODER.decode(_encode("", "c", "f", "1", 5, {})) is None  # empty id
    assert DECODER.decode(_encode("e", "c", "f", "1e5", 5, {})) is None  # not plain decimal
    # A map written as one sized block (count -1, then its byte size): valid Avro that
    # fastavro reads; the fast path leaves it to fastavro.
    sized = good[:-1] + b"\x01\x0a\x02k\x02v\x00"
    assert DECODER.decode(sized) is None
    event = DOORS.decode("u", sized)
    assert isinstance(event, UsageRecorded) and event.properties == {"k": "v"}


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc3", b"garbage bytes", DECODER.header, DECODER.header + b"\xff" * 20],
)
def test_the_doors_reject_with_the_general_errors(data: bytes) -> None:
    with pytest.raises(Rejection) as info:
        DOORS.decode("u", data)
    assert info.value.reason in {"undecodable", "unknown_schema", "invalid_field"}


def test_bad_fields_are_invalid_field_at_the_doors() -> None:
    for data in (_encode("", "c", "f", "1", 5, {}), _encode("e", "c", "f", "abc", 5, {})):
        with pytest.raises(Rejection) as info:
            DOORS.decode("u", data)
        assert info.value.reason == "invalid_field"


def test_changed_schema_switches_the_fast_path_off(tmp_path: Path) -> None:
    decoder = UsageDecoder(codec_with_added_field(tmp_path, USAGE_RECORDED))
    assert not decoder.direct
    assert decoder.decode(_encode("e", "c", "f", "1", 5, {})) is None


def test_repeated_values_are_shared() -> None:
    a = DECODER.decode(_encode("e1", "cus_7", "tokens", "15", 5, {}))
    b = DECODER.decode(_encode("e2", "cus_7", "tokens", "15", 6, {}))
    assert a is not None and b is not None
    assert a.customer_id is b.customer_id and a.quantity is b.quantity


beyond = st.one_of(
    st.from_regex(r"[1-9][0-9]{18,40}(\.[0-9]{1,12})?", fullmatch=True),  # >= 10**18
    st.from_regex(r"[0-9]{1,18}\.[0-9]{13,30}", fullmatch=True),  # more than 12 decimals
)
within = st.one_of(
    st.sampled_from(["0", "999999999999999999.999999999999", "0.000000000001"]),
    st.from_regex(r"[0-9]{1,18}(\.[0-9]{1,12})?", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(
    qty=st.one_of(beyond, within),
    tokens=st.one_of(st.none(), beyond, within),
    millis=st.integers(min_value=0, max_value=2**44),
)
def test_out_of_range_numbers_fall_back_to_the_general_out_of_range(
    qty: str, tokens: str | None, millis: int
) -> None:
    props = {} if tokens is None else {"model": "small", "input_tokens": tokens}
    data = _encode("e1", "c1", "tokens", qty, millis, props)
    fast = _agrees(data)
    outcome, general = _general(data)
    out_of_range = any(x is not None and x.split(".")[0].lstrip("0")[18:] for x in (qty, tokens))
    out_of_range = out_of_range or any(
        x is not None and "." in x and len(x.split(".")[1]) > 12 for x in (qty, tokens)
    )
    if out_of_range:
        assert fast is None and (outcome, general) == ("error", "out_of_range")
    else:
        assert fast is not None and outcome == "ok"


@settings(max_examples=100, deadline=None)
@given(
    eid=wire_texts(),
    qty=bounded_decimals(),
    millis=st.integers(min_value=MIN_MS, max_value=MAX_MS),
    properties=maps_of(wire_texts()),
    tokens=st.none() | bounded_decimals(),
)
def test_edge_values_decode_like_the_general_path(
    eid: str, qty: Decimal, millis: int, properties: dict[str, str], tokens: Decimal | None
) -> None:
    """Quantities and token counts at the bounds (extremes, negative zero, 12
    decimals), any unicode, maps from empty to large (a two-byte block count)."""
    if tokens is not None:
        properties = {**properties, "input_tokens": format(tokens, "f")}
    data = _encode(eid, "c😀", "tokens", format(qty, "f"), millis, properties)
    fast = _agrees(data)
    valid = within_text_bounds(eid, properties=properties)
    assert (fast is not None) == valid  # every valid one takes the fast path


def _outcome(doors: Doors, data: bytes) -> tuple[str, Any, Any]:
    try:
        event = doors.decode("u", data)
    except Rejection as refused:
        return "rejected", refused.reason, refused.detail
    return "event", _exact(event) if isinstance(event, UsageRecorded) else event, None


GENERAL_DOORS = Doors(CODEC, "u", "a", 1)
GENERAL_DOORS._fast = lambda data: None  # the doors as they are without the fast decoder


@settings(max_examples=200, deadline=None)
@given(
    qty=st.sampled_from(["1", "-0", "0.5000", "1e3", "abc", "1" * 19, "0." + "1" * 13]),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "add"]), st.integers(0, 80), st.binary(max_size=2)
        ),
        max_size=2,
    ),
)
def test_the_doors_decide_the_same_with_and_without_the_fast_decoder(
    qty: str, edits: list[tuple[str, int, bytes]]
) -> None:
    """Same event, or the same rejection (reason and detail), for valid, bad and
    corrupted records: the fast decoder never decides an error."""
    data = _corrupted(_encode("evt_1", "cus_1", "tokens", qty, 5, {"input_tokens": qty}), edits)
    assert _outcome(DOORS, data) == _outcome(GENERAL_DOORS, data)
