"""The direct CustomerStateChanged encoder writes exactly the codec's bytes, and refuses
exactly what the generic conversion refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.events import CustomerStateChanged, Invoice, InvoiceLine
from streambill import convert
from streambill.codec import Codec
from streambill.state_wire import CUSTOMER_STATE_CHANGED, StateEncoder
from streambill.wire import InvalidField
from tests.unit.samples import SAMPLES, codec_with_added_field

CODEC = Codec()
ENCODER = StateEncoder(CODEC)
SAMPLE = SAMPLES[CUSTOMER_STATE_CHANGED]
assert isinstance(SAMPLE, CustomerStateChanged)


def _reference(snapshot: CustomerStateChanged) -> bytes:
    return CODEC.encode(*convert.to_avro(snapshot))


texts = st.text(max_size=70)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: len(format(d, "f")) <= 64
)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
times = st.datetimes(  # hypothesis wants naive bounds; `timezones` makes the values aware
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=zones,
)
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
lines = st.builds(
    InvoiceLine,
    description=texts,
    quantity=decimals,
    unit_price=decimals,
    precise_amount=decimals,
    amount=decimals,
    feature_id=st.none() | texts,
)
invoices = st.builds(
    Invoice,
    invoice_id=texts,
    kind=st.sampled_from(["period", "purchase", "adjustment"]),
    customer_id=texts,
    plan_id=texts,
    plan_version=int32,
    period_start=times,
    period_end=times,
    currency=texts,
    lines=st.lists(lines, max_size=4).map(tuple),
    total=decimals,
    issued_at=times,
    adjusts_invoice_id=st.none() | texts,
)
snapshots = st.builds(
    CustomerStateChanged,
    customer_id=texts,
    version=int64,
    status=st.sampled_from(["none", "active", "cancelled"]),
    plan_id=st.none() | texts,
    plan_version=st.none() | int32,
    model=st.none() | st.sampled_from(["metered", "credits", "balance"]),
    currency=st.none() | texts,
    period_start=st.none() | times,
    period_end=st.none() | times,
    seats=int32,
    usage=st.dictionaries(texts, decimals, max_size=4),
    allowance_remaining=st.dictionaries(texts, decimals, max_size=4),
    credits_remaining=st.none() | decimals,
    balance=st.none() | decimals,
    last_topup=st.none() | decimals,
    allowed=st.booleans(),
    upcoming_invoice=st.none() | invoices,
    source_offsets=st.dictionaries(texts, int64, max_size=4),
    updated_at=st.none() | times,
)


def test_direct_path_is_active_for_the_current_schema() -> None:
    assert ENCODER.direct


def test_sample_bytes_equal_the_codec_bytes() -> None:
    assert ENCODER.encode(SAMPLE) == _reference(SAMPLE)


@settings(max_examples=400, deadline=None)
@given(snapshots)
def test_direct_bytes_equal_fastavro_bytes(snapshot: CustomerStateChanged) -> None:
    direct = ENCODER.encode(snapshot)
    assert direct == _reference(snapshot)
    assert ENCODER.encode(snapshot) == direct  # the caches change nothing
    assert CODEC.decode(direct)[0] == CUSTOMER_STATE_CHANGED


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2**63},
        {"seats": 2**31},
        {"seats": True},
        {"balance": Decimal("NaN")},
        {"balance": Decimal("1E+70")},
        {"usage": {"tokens": Decimal("Infinity")}},
        {"updated_at": datetime(2025, 1, 1)},  # noqa: DTZ001 (naive on purpose)
        {"source_offsets": {"usage/0": 2**64}},
        {"plan_id": 7},
    ],
)
def test_what_the_conversion_refuses_is_refused_the_same_way(change: dict[str, object]) -> None:
    bad = replace(SAMPLE, **change)  # type: ignore[arg-type]
    with pytest.raises(Exception) as direct:
        ENCODER.encode(bad)
    with pytest.raises(Exception) as generic:
        _reference(bad)
    assert type(direct.value) is type(generic.value)
    assert str(direct.value) == str(generic.value)


def test_a_refused_value_is_an_invalid_field() -> None:
    with pytest.raises(InvalidField, match="balance"):
        ENCODER.encode(replace(SAMPLE, balance=Decimal("NaN")))


def test_changed_schema_falls_back_to_fastavro(tmp_path: Path) -> None:
    codec = codec_with_added_field(tmp_path, CUSTOMER_STATE_CHANGED)
    encoder = StateEncoder(codec)
    assert not encoder.direct
    name, record = codec.decode(encoder.encode(SAMPLE))
    assert (name, record["region"], record["customer_id"]) == (
        CUSTOMER_STATE_CHANGED,
        None,
        SAMPLE.customer_id,
    )
