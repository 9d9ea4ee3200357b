"""Bad bytes never crash the codec and never yield a half-decoded record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streambill.wire.codec import MAGIC, Codec, DecodeError, EncodeError

GOLDEN = Path(__file__).resolve().parents[3] / "golden"
GOLDENS = {p.stem: bytes.fromhex(p.read_text().strip()) for p in sorted(GOLDEN.glob("*.hex"))}
USAGE = GOLDENS["streambill.usage.v1.UsageRecorded"]


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


@pytest.mark.parametrize(
    "data",
    [None, b"", b"\xc3", b"\xc3\x01", b"\xc3\x01\x00\x00", b"hello world", b"\x00" * 32, "text"],
)
def test_not_single_object_encoded(codec: Codec, data: object) -> None:
    with pytest.raises(DecodeError) as err:
        codec.decode(data)  # type: ignore[arg-type]
    assert err.value.reason == "undecodable"


def test_unknown_fingerprint(codec: Codec) -> None:
    data = MAGIC + b"\x01\x02\x03\x04\x05\x06\x07\x08" + USAGE[10:]
    with pytest.raises(DecodeError) as err:
        codec.decode(data)
    assert err.value.reason == "unknown_schema"
    assert "0102030405060708" in err.value.detail


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_every_truncation_is_undecodable(codec: Codec, name: str) -> None:
    data = GOLDENS[name]
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as err:
            codec.decode(data[:cut])
        assert err.value.reason == "undecodable", cut


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_trailing_bytes_are_undecodable(codec: Codec, name: str) -> None:
    with pytest.raises(DecodeError, match="trailing") as err:
        codec.decode(GOLDENS[name] + b"\x00")
    assert err.value.reason == "undecodable"


def test_body_of_another_schema_is_not_read_silently(codec: Codec) -> None:
    """A UsageRecorded body under the SubscriptionCancelled header leaves trailing bytes."""
    header = MAGIC + codec.fingerprint("streambill.account.v1.SubscriptionCancelled")
    with pytest.raises(DecodeError):
        codec.decode(header + USAGE[10:])


def test_invalid_utf8_is_undecodable(codec: Codec) -> None:
    broken = bytearray(USAGE)
    broken[11] = 0xFF  # first byte of event_id
    with pytest.raises(DecodeError) as err:
        codec.decode(bytes(broken))
    assert err.value.reason == "undecodable"


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=200), name=st.sampled_from(sorted(GOLDENS)))
def test_garbage_bodies_raise_decode_error_or_give_a_full_record(
    codec: Codec, body: bytes, name: str
) -> None:
    header = GOLDENS[name][:10]
    try:
        decoded_name, record = codec.decode(header + body)
    except DecodeError as err:
        assert err.reason == "undecodable"
    else:  # random bytes that happen to be a valid body: every field is there
        assert decoded_name == name
        fields = {f["name"] for f in codec.schema(name)["fields"]}
        assert set(record) == fields


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120))
def test_arbitrary_bytes_never_crash(codec: Codec, data: bytes) -> None:
    try:
        codec.decode(data)
    except DecodeError as err:
        assert err.reason in ("undecodable", "unknown_schema")


def test_memoryview_and_bytearray_accepted(codec: Codec) -> None:
    assert codec.decode(memoryview(USAGE)) == codec.decode(bytearray(USAGE)) == codec.decode(USAGE)


def test_encode_refuses_unknown_schema_and_misfit_record(codec: Codec) -> None:
    with pytest.raises(EncodeError, match="unknown schema"):
        codec.encode("streambill.usage.v9.Nope", {})
    with pytest.raises(EncodeError):
        codec.encode("streambill.account.v1.SubscriptionCancelled", {"event_id": 3})


def test_data_of_a_published_older_version_is_resolved_into_the_current_schema(
    tmp_path: Path,
) -> None:
    """A compatible v2 adds an optional field; bytes written with v1 still decode."""
    v1 = json.loads((GOLDEN.parent.parent / "schemas" / "streambill.account.v1.SeatsChanged.avsc")
                    .read_text())  # fmt: skip
    v2 = json.loads(json.dumps(v1))
    v2["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    name = "streambill.account.v1.SeatsChanged"
    (tmp_path / f"{name}.avsc").write_text(json.dumps(v2))
    (tmp_path / "published" / name).mkdir(parents=True)
    (tmp_path / "published" / name / "v1.avsc").write_text(json.dumps(v1))
    (tmp_path / "published" / name / "v2.avsc").write_text(json.dumps(v2))
    old_bytes = GOLDENS[name]
    decoded_name, record = Codec(tmp_path).decode(old_bytes)
    assert decoded_name == name
    assert record["note"] is None
    assert record["seats"] == Codec().decode(old_bytes)[1]["seats"]
