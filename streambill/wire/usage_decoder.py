"""The consumer hot path: bytes of a UsageRecorded straight to the domain event.

`UsageDecoder.decode` returns exactly the `UsageRecorded` that
`streambill.wire.convert.decode_value` returns for the same bytes, parsing the
single-object header and the Avro body by hand without the intermediate dict: a
period close decodes a month of usage in one go. Property tests hold it to that
reference on arbitrary, edge-value and corrupted records, and the doors to the same
event or rejection with and without it (registered in tests/unit/test_fast_paths.py).

It only takes the common, valid case and answers None for everything else: another
schema or fingerprint, a current schema whose Parsing Canonical Form is not
`LAYOUT` (then it is switched off for good), a map written in sized blocks, a
varint longer than 9 bytes, an empty or too long id, a quantity that is not a plain
decimal within the bounds of `billing.bounds` (nor may the numeric properties exceed
them), more properties or longer keys or values than its text bounds,
truncated or trailing bytes, invalid UTF-8. The caller then takes the general path,
which decodes what it can and raises the precise `DecodeError` / `InvalidField` for
the rest. So the fast path never decides an error, and cannot disagree with the
general one about what is bad input.

Repeated values (customer ids, feature ids, quantities, property strings) are
cached, so events of one customer share one string and one `Decimal`: a close
keeps every event it folds (the ledger remembers applied events for dedupe).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fastavro.schema import to_parsing_canonical_form

from billing.bounds import (
    MAX_ID_CHARS,
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY_CHARS,
    MAX_PROPERTY_VALUE_CHARS,
    NUMERIC_PROPERTIES,
)
from billing.events import UsageRecorded
from streambill.wire.codec import HEADER_SIZE, MAGIC, Codec
from streambill.wire.fields import InvalidField, bounded, bounded_properties, parse_decimal
from streambill.wire.usage_wire import LAYOUT, USAGE_RECORDED

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_SIZE = 65_536
_MAX_VARINT_BYTES = 9  # 63 bits: read identically whatever the reader's integer width


class _NotFast(Exception):
    """The record is not one the fast path takes (the general path decides)."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(zig-zag decoded long, position after it); at most 9 bytes."""
    shift = 0
    n = 0
    for i in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        b = data[i]
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), i + 1
        shift += 7
    raise _NotFast


def _length(data: bytes, pos: int) -> tuple[int, int]:
    """The length prefix of a string at `pos`: (start of its bytes, end of its bytes)."""
    b = data[pos]
    if b < 0x80:
        if b & 1:
            raise _NotFast  # negative length
        start = pos + 1
        end = start + (b >> 1)
    else:
        size, start = _varint(data, pos)
        if size < 0:
            raise _NotFast
        end = start + size
    if end > len(data):
        raise _NotFast  # a slice would silently stop at the end: truncated
    return start, end


_NUMERIC = frozenset(NUMERIC_PROPERTIES)
_TEXT_LIMITS = (MAX_PROPERTY_KEY_CHARS, MAX_PROPERTY_VALUE_CHARS)  # of a key, of a value
_FIELDS = ("event_id", "customer_id", "feature_id", "quantity", "timestamp", "properties")
Make = Callable[[str, str, str, Decimal, datetime, dict[str, str]], UsageRecorded]


def _constructor() -> Make:
    """A UsageRecorded maker that fills the slots directly: half the cost of the frozen
    dataclass `__init__` (which sets each field through `object.__setattr__`), same
    object. Only while the class is the plain six-field dataclass it is today; if a
    field or a `__post_init__` is ever added, the real constructor is used."""
    names = tuple(f.name for f in dataclasses.fields(UsageRecorded))
    if names != _FIELDS or hasattr(UsageRecorded, "__post_init__"):
        return UsageRecorded
    set0, set1, set2, set3, set4, set5 = (getattr(UsageRecorded, n).__set__ for n in names)
    new = object.__new__

    def make(
        event_id: str,
        customer_id: str,
        feature_id: str,
        quantity: Decimal,
        timestamp: datetime,
        properties: dict[str, str],
    ) -> UsageRecorded:
        event: UsageRecorded = new(UsageRecorded)
        set0(event, event_id)
        set1(event, customer_id)
        set2(event, feature_id)
        set3(event, quantity)
        set4(event, timestamp)
        set5(event, properties)
        return event

    return make


class UsageDecoder:
    """Direct decoder of `streambill.usage.v1.UsageRecorded` written with the current
    schema. One per process; not thread-safe (its caches are plain dicts)."""

    def __init__(self, codec: Codec) -> None:
        self.header = MAGIC + codec.fingerprint(USAGE_RECORDED)
        self.direct = to_parsing_canonical_form(codec.schema(USAGE_RECORDED)) == LAYOUT
        self._strings: dict[bytes, str] = {}
        self._quantities: dict[bytes, Decimal] = {}
        self._in_range: set[str] = set()
        self._make = _constructor()

    def decode(self, data: bytes) -> UsageRecorded | None:
        """The event, or None when the general path must decide (see the module)."""
        if type(data) is not bytes or not self.direct or data[:HEADER_SIZE] != self.header:
            return None
        try:
            return self._body(data)
        except (_NotFast, IndexError, UnicodeDecodeError, OverflowError, InvalidField):
            return None

    def _body(self, data: bytes) -> UsageRecorded:
        # Lengths below 64 are one even byte (`b & 0x81 == 0`); other lengths go through
        # `_length`. A length running past the end is caught by the final position check
        # (positions only grow, so the end is missed) or by an IndexError before it.
        strings = self._strings
        b = data[HEADER_SIZE]
        if b & 0x81:
            start, end = _length(data, HEADER_SIZE)
        else:
            start = HEADER_SIZE + 1
            end = start + (b >> 1)
        if start == end:
            raise _NotFast  # empty event_id: the general path names the field
        event_id = data[start:end].decode()  # unique: not cached
        if end - start > MAX_ID_CHARS and len(event_id) > MAX_ID_CHARS:
            raise _NotFast  # too long: the general path names the field
        b = data[end]
        if b & 0x81:
            start, end = _length(data, end)
        else:
            start = end + 1
            end = start + (b >> 1)
        raw = data[start:end]
        customer_id = strings.get(raw) or self._remember_id(raw)
        if end - start > MAX_ID_CHARS:
            self._check_id(customer_id)
        b = data[end]
        if b & 0x81:
            start, end = _length(data, end)
        else:
            start = end + 1
            end = start + (b >> 1)
        raw = data[start:end]
        feature_id = strings.get(raw) or self._remember_id(raw)
        if end - start > MAX_ID_CHARS:
            self._check_id(feature_id)
        b = data[end]
        if b & 0x81:
            start, end = _length(data, end)
        else:
            start = end + 1
            end = start + (b >> 1)
        raw = data[start:end]
        quantity = self._quantities.get(raw)
        if quantity is None:
            quantity = self._quantity(raw)
        b = data[end]  # the timestamp: `_varint` inlined (this loop is hot)
        millis = b & 0x7F
        shift = 7
        pos = end + 1
        while b & 0x80:
            if shift == 7 * _MAX_VARINT_BYTES:
                raise _NotFast
            b = data[pos]
            pos += 1
            millis |= (b & 0x7F) << shift
            shift += 7
        millis = (millis >> 1) ^ -(millis & 1)
        timestamp = _EPOCH + timedelta(0, 0, millis * 1000)  # fastavro's arithmetic
        if data[pos] == 0:  # empty map: one zero block count
            pos += 1
            properties: dict[str, str] = {}
        else:
            properties, pos = self._properties(data, pos)
        if pos != len(data):
            raise _NotFast  # trailing bytes, or a length past the end
        if properties:
            if len(properties) > MAX_PROPERTIES:
                raise _NotFast  # beyond the text bounds: the general path names it
            if properties.keys() & _NUMERIC:
                self._numeric(properties)
        return self._make(event_id, customer_id, feature_id, quantity, timestamp, properties)

    @staticmethod
    def _check_id(text: str) -> None:
        if len(text) > MAX_ID_CHARS:
            raise _NotFast  # too long: the general path names the field

    def _remember_id(self, raw: bytes) -> str:
        if not raw:
            raise _NotFast  # empty id: the general path names the field
        return self._remember(raw)

    def _remember(self, raw: bytes) -> str:
        if len(self._strings) >= _CACHE_SIZE:
            self._strings.clear()  # bounded; starting over is cheap and still correct
        text = self._strings[raw] = raw.decode()
        return text

    def _quantity(self, raw: bytes) -> Decimal:
        value = bounded(parse_decimal(raw.decode(), "quantity"), "quantity")  # as the general path
        if len(self._quantities) >= _CACHE_SIZE:
            self._quantities.clear()
        self._quantities[raw] = value  # immutable: safe to share
        return value

    def _numeric(self, properties: dict[str, str]) -> None:
        """`OutOfRange` (general path decides) for a numeric property beyond the
        bounds; texts found in range are remembered, like the quantities."""
        known = self._in_range
        for name in _NUMERIC:
            text = properties.get(name)
            if text is not None and text not in known:
                bounded_properties({name: text})
                if len(known) >= _CACHE_SIZE:
                    known.clear()
                known.add(text)

    def _properties(self, data: bytes, pos: int) -> tuple[dict[str, str], int]:
        """A map of strings in blocks with positive counts, ended by a zero count."""
        out: dict[str, str] = {}
        strings = self._strings
        while True:
            count, pos = _varint(data, pos)
            if count == 0:
                return out, pos
            if count < 0:
                raise _NotFast  # sized block: rare, left to fastavro
            for _ in range(count):
                pair: list[str] = []
                for limit in _TEXT_LIMITS:  # the key, then the value
                    start, pos = _length(data, pos)
                    raw = data[start:pos]
                    text = strings.get(raw)
                    if text is None:
                        text = self._remember(raw)
                    if pos - start > limit and len(text) > limit:
                        raise _NotFast  # beyond the text bounds: the general path names it
                    pair.append(text)
                if not pair[0]:
                    raise _NotFast  # an empty key: the general path names it
                out[pair[0]] = pair[1]
