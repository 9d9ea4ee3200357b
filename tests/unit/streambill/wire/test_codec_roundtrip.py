"""Every schema: domain value -> record -> bytes -> record -> domain value, and golden bytes."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import avro.io
import avro.schema
import pytest
from fastavro.schema import to_parsing_canonical_form

import billing.events
from streambill.wire.codec import MAGIC, Codec
from streambill.wire.convert import SCHEMA_NAMES, decode_value, encode_value, from_avro, to_avro
from tests.unit.samples import SAMPLES

REPO = Path(__file__).resolve().parents[4]
GOLDEN = REPO / "tests" / "golden"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


def test_samples_cover_every_schema_and_every_event_class(codec: Codec) -> None:
    assert set(SAMPLES) == set(codec.names) == set(SCHEMA_NAMES)
    wire_classes = {
        obj
        for obj in vars(billing.events).values()
        if dataclasses.is_dataclass(obj) and hasattr(obj, "VERSION")
    }
    assert wire_classes <= {type(v) for v in SAMPLES.values()}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(codec: Codec, name: str) -> None:
    value = SAMPLES[name]
    schema_name, record = to_avro(value)
    assert schema_name == name
    data = codec.encode(schema_name, record)
    decoded_name, decoded = codec.decode(data)
    assert (decoded_name, decoded) == (name, record)
    assert from_avro(decoded_name, decoded) == value
    assert decode_value(codec, encode_value(codec, value)) == value


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_golden_bytes(codec: Codec, name: str) -> None:
    golden = bytes.fromhex((GOLDEN / f"{name}.hex").read_text().strip())
    assert encode_value(codec, SAMPLES[name]) == golden
    assert decode_value(codec, golden) == SAMPLES[name]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_golden_bytes_read_by_the_reference_avro_implementation(name: str) -> None:
    """Another implementation (the `avro` package) reads the body the same way.

    Its fingerprint is not used: avro-python 1.12 keeps `{"type":"long"}` for primitives
    with a logical type in the Parsing Canonical Form, against the spec's [PRIMITIVES] and
    [STRIP] rules (fastavro and Java give `"long"`); see test_fingerprint_follows_the_spec.
    """
    schema = avro.schema.parse((REPO / "schemas" / f"{name}.avsc").read_text())
    golden = bytes.fromhex((GOLDEN / f"{name}.hex").read_text().strip())
    assert golden[:2] == MAGIC
    body = io.BytesIO(golden[10:])
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(golden) - 10
    ours = to_avro(SAMPLES[name])[1]
    assert json.dumps(record, default=str, sort_keys=True) == json.dumps(
        ours, default=str, sort_keys=True
    )


def _crc64_avro(data: bytes) -> bytes:
    """CRC-64-AVRO, written from the Avro specification's reference algorithm."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def test_fingerprint_follows_the_spec(codec: Codec) -> None:
    # The spec's own example: the fingerprint of "null" is 0x63dd24e7cc258f8a.
    assert _crc64_avro(b'"null"') == (0x63DD24E7CC258F8A).to_bytes(8, "little")
    seats = "streambill.account.v1.SeatsChanged"
    canonical = (
        '{"name":"streambill.account.v1.SeatsChanged","type":"record","fields":['
        '{"name":"event_id","type":"string"},{"name":"customer_id","type":"string"},'
        '{"name":"timestamp","type":"long"},{"name":"seats","type":"int"}]}'
    )
    assert codec.fingerprint(seats) == _crc64_avro(canonical.encode())
    for name in codec.names:
        canonical = to_parsing_canonical_form(codec.schema(name))
        assert codec.fingerprint(name) == _crc64_avro(canonical.encode())


EARLIER = sorted((GOLDEN / "earlier").glob("*.hex"))


@pytest.mark.parametrize("path", EARLIER, ids=lambda p: p.name)
def test_bytes_written_with_an_earlier_schema_version_still_decode(
    codec: Codec, path: Path
) -> None:
    """`tests/golden/earlier/<name>.v<K>.hex` are bytes written with published version K
    (before a compatible change): they decode to today's sample, the added fields at
    their defaults (a subscription without `plan_version`: the plan's lowest version)."""
    name = path.stem.rsplit(".", 1)[0]  # streambill.account.v1.X.v1 -> the schema name
    assert decode_value(codec, bytes.fromhex(path.read_text().strip())) == SAMPLES[name]


def test_a_close_s_catalog_revision_survives_the_wire(codec: Codec) -> None:
    closed = dataclasses.replace(
        SAMPLES["streambill.closes.v1.PeriodClosed"], catalog_revision="ab" * 32
    )
    assert decode_value(codec, encode_value(codec, closed)) == closed


def test_a_pinned_plan_version_survives_the_wire(codec: Codec) -> None:
    for name in (
        "streambill.account.v1.SubscriptionStarted",
        "streambill.account.v1.SubscriptionChanged",
    ):
        pinned = dataclasses.replace(SAMPLES[name], plan_version=3)
        assert decode_value(codec, encode_value(codec, pinned)) == pinned
