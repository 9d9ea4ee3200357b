"""The Avro primitives of the direct encoders write what fastavro writes."""

from __future__ import annotations

import io

from fastavro.io.binary_encoder import BinaryEncoder
from hypothesis import given
from hypothesis import strategies as st

from streambill.wire.avro_binary import avro_long, avro_string


def _fastavro_long(n: int) -> bytes:
    buffer = io.BytesIO()
    encoder = BinaryEncoder(buffer)
    encoder.write_long(n)
    encoder.flush()
    return buffer.getvalue()


# Where the varint grows by a byte (zig-zag: 2n for n >= 0, -2n - 1 below), and
# the ends of the long range.
EDGES = [
    s * (2 ** (7 * k)) // 2 + d
    for k in range(1, 10)
    for s in (1, -1)
    for d in (-2, -1, 0, 1)
] + [0, 1, -1, 2**63 - 1, -(2**63)]  # fmt: skip


def test_long_at_every_length_boundary() -> None:
    for n in EDGES:
        assert avro_long(n) == _fastavro_long(n), n


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers(-(2**22), 2**22))
def test_long_anywhere_in_range(n: int) -> None:
    assert avro_long(n) == _fastavro_long(n)


@given(st.binary(max_size=300))
def test_string_is_its_length_then_its_bytes(data: bytes) -> None:
    assert avro_string(data) == _fastavro_long(len(data)) + data
