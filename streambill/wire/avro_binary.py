"""Avro binary primitives shared by the direct encoders (`usage_wire`, `state_wire`),
which must write exactly what fastavro writes (their tests compare byte for byte)."""

from __future__ import annotations

_SMALL_LENGTHS = [bytes((2 * n,)) for n in range(64)]  # zig-zag varint of 0..63: one byte


def avro_long(n: int) -> bytes:
    """Avro `int`/`long`: zig-zag, then base-128 varint, least significant group first."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(data: bytes) -> bytes:
    """Avro `string`/`bytes` (already UTF-8 encoded): the length as a long, then the bytes."""
    size = len(data)
    return (_SMALL_LENGTHS[size] if size < 64 else avro_long(size)) + data
