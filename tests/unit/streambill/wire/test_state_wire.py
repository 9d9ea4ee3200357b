"""The direct CustomerStateChanged encoder writes exactly the codec's bytes, and refuses
exactly what the generic conversion refuses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.events import CustomerStateChanged, Invoice, InvoiceLine
from streambill.wire import convert
from streambill.wire.codec import Codec
from streambill.wire.fields import InvalidField
from streambill.wire.state_wire import CUSTOMER_STATE_CHANGED, StateEncoder
from tests.unit.billing.strategies import bounded_decimals, maps_of, wire_texts
from tests.unit.samples import SAMPLES, codec_with_added_field

T = TypeVar("T")

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


def _snapshots(
    texts: st.SearchStrategy[str],
    decimals: st.SearchStrategy[Decimal],
    maps: Callable[[st.SearchStrategy[T]], st.SearchStrategy[dict[str, T]]],
) -> st.SearchStrategy[CustomerStateChanged]:
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
    return st.builds(
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
        usage=maps(decimals),
        allowance_remaining=maps(decimals),
        credits_remaining=st.none() | decimals,
        balance=st.none() | decimals,
        last_topup=st.none() | decimals,
        allowed=st.booleans(),
        upcoming_invoice=st.none() | invoices,
        source_offsets=maps(int64),
        updated_at=st.none() | times,
    )


def _small(values: st.SearchStrategy[T]) -> st.SearchStrategy[dict[str, T]]:
    return st.dictionaries(texts, values, max_size=4)


snapshots = _snapshots(texts, decimals, _small)
# What the worker publishes at the edges: decimals within billing.bounds (extremes,
# negative zero, 12 decimals, trailing zeros), any unicode, maps from empty to large.
edge_snapshots = _snapshots(wire_texts(), bounded_decimals(), maps_of)


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


@settings(max_examples=60, deadline=None)
@given(edge_snapshots)
def test_edge_values_encode_like_the_codec(snapshot: CustomerStateChanged) -> None:
    direct = ENCODER.encode(snapshot)
    assert direct == _reference(snapshot)
    name, record = CODEC.decode(direct)
    assert name == CUSTOMER_STATE_CHANGED and record["source_offsets"] == snapshot.source_offsets


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


# Consecutive snapshots of one customer: the encoder caches the fields that repeat
# (status .. seats, the invoice header) by value. Each field below draws from a few
# values, some equal but not alike: True == 1, the same instant in two zones, a
# naive time, decimals equal in value but not in scale or sign.
IST = timezone(timedelta(hours=5, minutes=30))
START, END = SAMPLE.period_start, SAMPLE.period_end
assert START is not None and END is not None
NEXT = END + timedelta(days=31)
INVOICE = SAMPLE.upcoming_invoice
assert INVOICE is not None
instants = st.sampled_from(
    [
        START,
        START.astimezone(IST),
        END,
        NEXT,
        START.replace(tzinfo=None),
        START + timedelta(0, 0, 999),
    ]
)
amounts = st.sampled_from(
    [Decimal(x) for x in ("0", "-0", "0.00", "1", "1.0", "1E+3", "1000", "1E-7", "-2.50", "1E+70")]
)
customer_changes = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([1, 2, 2**63]),
        "status": st.sampled_from(["active", "cancelled"]),
        "plan_id": st.sampled_from([None, "starter", "scale"]),
        "plan_version": st.sampled_from([None, 1, 2, True, 2**31]),
        "model": st.sampled_from([None, "metered", "credits"]),
        "currency": st.sampled_from([None, "USD", "EUR"]),
        "period_start": st.none() | instants,
        "period_end": st.none() | instants,
        "seats": st.sampled_from([0, 1, 3, True, 2**31]),
        "usage": st.dictionaries(st.sampled_from(["tokens", "query"]), amounts, max_size=2),
        "balance": st.none() | amounts,
        "updated_at": st.none() | instants,
    },
)
invoice_changes = st.fixed_dictionaries(
    {},
    optional={
        "invoice_id": st.sampled_from(["inv_a", "inv_b"]),
        "plan_id": st.sampled_from(["starter", "scale"]),
        "plan_version": st.sampled_from([1, 2, True]),
        "period_start": instants,
        "period_end": instants,
        "currency": st.sampled_from(["USD", "EUR"]),
        "total": amounts,
        "issued_at": instants,
    },
)


@st.composite
def one_customer(draw: st.DrawFn) -> CustomerStateChanged:
    change = draw(customer_changes)
    if draw(st.booleans()):
        change["upcoming_invoice"] = replace(INVOICE, **draw(invoice_changes))
    return replace(SAMPLE, **change)


@settings(max_examples=300, deadline=None)
@given(st.lists(one_customer(), min_size=2, max_size=12))
def test_consecutive_snapshots_of_a_customer_encode_like_the_codec(
    history: list[CustomerStateChanged],
) -> None:
    encoder = StateEncoder(CODEC)  # caches filled by this history only
    for snapshot in history:
        try:
            expected = _reference(snapshot)
        except Exception as refused:
            with pytest.raises(type(refused)) as direct:
                encoder.encode(snapshot)
            assert str(direct.value) == str(refused)
        else:
            assert encoder.encode(snapshot) == expected


@pytest.mark.parametrize(
    "first, then",
    [
        ({"seats": 1}, {"seats": True}),
        ({"plan_version": 1}, {"plan_version": True}),
        ({"seats": 1}, {"seats": 2}),
        ({"period_start": START}, {"period_start": START.astimezone(IST)}),
        ({"period_start": START}, {"period_start": START.replace(tzinfo=None)}),
        ({"status": "active"}, {"status": "cancelled"}),
        ({"plan_id": "starter"}, {"plan_id": None}),
        (
            {"upcoming_invoice": replace(INVOICE, plan_version=1)},
            {"upcoming_invoice": replace(INVOICE, plan_version=True)},
        ),
        (
            {"upcoming_invoice": INVOICE},
            {"upcoming_invoice": replace(INVOICE, period_end=NEXT)},
        ),
    ],
)
def test_a_cached_prefix_is_used_only_for_alike_values(
    first: dict[str, object], then: dict[str, object]
) -> None:
    encoder = StateEncoder(CODEC)
    before = replace(SAMPLE, **first)  # type: ignore[arg-type]
    assert encoder.encode(before) == _reference(before)
    after = replace(SAMPLE, **then)  # type: ignore[arg-type]
    try:
        expected = _reference(after)
    except Exception as refused:
        with pytest.raises(type(refused)):
            encoder.encode(after)
    else:
        assert encoder.encode(after) == expected


@pytest.mark.parametrize("capitals", [0, 1])
@pytest.mark.parametrize(
    "text", ["0", "-0", "0E+2", "1E+2", "1.50", "0.000001", "1E-7", "-1.2E-9", "123456789.000"]
)
def test_decimals_are_written_in_plain_notation(text: str, capitals: int) -> None:
    snapshot = replace(SAMPLE, balance=Decimal(text), usage={"tokens": Decimal(text)})
    with localcontext(capitals=capitals):
        assert ENCODER.encode(snapshot) == _reference(snapshot)
