"""The producer hot path: time-ordered event ids and a direct UsageRecorded encoder.

`UsageEncoder` writes exactly the bytes `Codec.encode(*convert.to_avro(event))`
writes for `streambill.usage.v1.UsageRecorded`, without the dict and fastavro (the
SDK's per-event path). Property tests hold it to that reference on arbitrary and
edge values (registered in tests/unit/test_fast_paths.py). It is bound to the
field layout below: if the current schema's Parsing Canonical Form ever differs
from `LAYOUT`, it falls back to the general fastavro path, so a schema change can
never produce bytes that disagree with their fingerprint (and the registry test
fails until `LAYOUT` follows the schema).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

from fastavro.schema import to_parsing_canonical_form

from streambill.wire.avro_binary import avro_long as _long
from streambill.wire.avro_binary import avro_string as _bytes
from streambill.wire.codec import MAGIC, Codec

USAGE_RECORDED = "streambill.usage.v1.UsageRecorded"
LAYOUT = (
    '{"name":"streambill.usage.v1.UsageRecorded","type":"record","fields":['
    '{"name":"event_id","type":"string"},{"name":"customer_id","type":"string"},'
    '{"name":"feature_id","type":"string"},{"name":"quantity","type":"string"},'
    '{"name":"timestamp","type":"long"},'
    '{"name":"properties","type":{"type":"map","values":"string"}}]}'
)

_EMPTY_MAP = b"\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_SIZE = 65_536


class UsageEncoder:
    """Single-object encoding of UsageRecorded from already validated wire values.

    Thread-safe: its caches are only read and replaced whole, never left half-updated."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._header = MAGIC + codec.fingerprint(USAGE_RECORDED)
        self.direct = to_parsing_canonical_form(codec.schema(USAGE_RECORDED)) == LAYOUT
        self._strings: dict[str, bytes] = {}
        self._last_millis: tuple[int, bytes] = (-1, b"")

    def encode(
        self,
        event_id: str,
        customer_id: str,
        feature_id: str,
        quantity: str,
        millis: int,
        properties: Mapping[str, str],
    ) -> bytes:
        """`quantity` is the wire decimal string, `millis` the event time in epoch ms."""
        if not self.direct:
            return self._codec.encode(
                USAGE_RECORDED,
                {
                    "event_id": event_id,
                    "customer_id": customer_id,
                    "feature_id": feature_id,
                    "quantity": quantity,
                    "timestamp": _EPOCH + timedelta(milliseconds=millis),
                    "properties": dict(properties),
                },
            )
        strings = self._strings
        parts = [self._header, _bytes(event_id.encode("utf-8"))]  # ids are unique: no cache
        for text in (customer_id, feature_id, quantity):
            try:
                parts.append(strings[text])
            except KeyError:
                parts.append(self._remember(text))
        last = self._last_millis  # one tuple: read and replaced atomically across threads
        if last[0] != millis:  # events of one millisecond share its bytes
            last = self._last_millis = (millis, _long(millis))
        parts.append(last[1])
        if properties:
            parts.append(_long(len(properties)))  # one block holding every entry
            for pair in properties.items():
                for text in pair:
                    try:
                        parts.append(strings[text])
                    except KeyError:
                        parts.append(self._remember(text))
        parts.append(_EMPTY_MAP)  # end of the map's blocks
        return b"".join(parts)

    def _remember(self, text: str) -> bytes:
        """Avro bytes of a string, cached: customers, features and property values repeat.
        The cache is bounded; when full it starts over (cheap, and still correct)."""
        if len(self._strings) >= _CACHE_SIZE:
            self._strings.clear()
        encoded = self._strings[text] = _bytes(text.encode("utf-8"))
        return encoded


class EventIds:
    """UUIDv7 strings (RFC 9562): 48-bit Unix ms, then 74 bits that start random each
    millisecond and count up within it, so ids of one generator sort in creation order
    and never repeat (method 2, "monotonic random"). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0
        self._prefix = ""

    def __call__(self) -> str:
        return self.take(1)[0]

    def take(self, n: int) -> list[str]:
        """`n` consecutive ids (cheaper per id than n calls)."""
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._new_millisecond(ms)
            else:
                self._counter += 1
            first = self._counter
            self._counter += n - 1
            if self._counter >= _COUNTER_END:  # exhausted: borrow the next millisecond
                self._new_millisecond(self._last_ms + 1)
                first = self._counter
                self._counter += n - 1
            prefix = self._prefix
        return [_format(prefix, counter) for counter in range(first, first + n)]

    def _new_millisecond(self, ms: int) -> None:
        self._last_ms = ms
        # 73 random bits: the top bit of the 74 stays clear, leaving room to count up.
        self._counter = int.from_bytes(os.urandom(10), "big") >> 7
        stamp = f"{ms:012x}"
        self._prefix = f"{stamp[:8]}-{stamp[8:]}-7"  # unix_ts_ms, then version 7


_COUNTER_END = 1 << 74
_RAND_B = (1 << 62) - 1
_VARIANT = 0b10 << 62


def _format(prefix: str, counter: int) -> str:
    """rand_a = the counter's top 12 bits, then variant 0b10, rand_b = its low 62 bits."""
    low = f"{_VARIANT | (counter & _RAND_B):016x}"
    return f"{prefix}{counter >> 62:03x}-{low[:4]}-{low[4:]}"


class IdBlocks:
    """Fresh event ids for one batch, taken from the generator in blocks (one lock and
    clock read per block). Unused ids of the last block are simply never used."""

    def __init__(self, ids: EventIds, block: int = 1024) -> None:
        self._ids = ids
        self._block = block
        self._current: Iterator[str] = iter(())

    def __call__(self) -> str:
        for event_id in self._current:
            return event_id
        self._current = iter(self._ids.take(self._block))
        return next(self._current)
