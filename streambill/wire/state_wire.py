"""The fold worker's hot path: a direct CustomerStateChanged encoder.

`StateEncoder.encode(snapshot)` returns exactly the bytes
`Codec.encode(*convert.to_avro(snapshot))` returns, without the dict conversion
and fastavro: the worker writes one snapshot per changed customer per batch.
Property tests hold it to that reference on arbitrary and edge-value snapshots
(registered in tests/unit/test_fast_paths.py, which also fails when the schema
and `LAYOUT` part). Failure consequence: bytes that differ from the codec's would
still decode, but projections and reconcile would see another value than the
worker meant.

Invariants:
- Bound to the field layout below. If the current schema's Parsing Canonical Form
  ever differs from `LAYOUT`, every call takes the generic path, so a schema change
  can never produce bytes that disagree with their fingerprint.
- Never more permissive than the generic path: a value the conversion functions
  would refuse (a non-finite or over-long decimal, an integer out of its Avro range,
  a naive datetime, a wrong type) makes the direct path give up, and the generic
  path then raises its usual `InvalidField` / `EncodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from fastavro.schema import to_parsing_canonical_form

from billing.events import CustomerStateChanged, Invoice
from streambill.wire import convert
from streambill.wire.avro_binary import avro_long, avro_string
from streambill.wire.codec import MAGIC, Codec
from streambill.wire.fields import MAX_DECIMAL_CHARS

CUSTOMER_STATE_CHANGED = "streambill.state.v1.CustomerStateChanged"
_INVOICE = (
    '{"name":"streambill.state.v1.UpcomingInvoice","type":"record","fields":['
    '{"name":"invoice_id","type":"string"},{"name":"kind","type":"string"},'
    '{"name":"customer_id","type":"string"},{"name":"plan_id","type":"string"},'
    '{"name":"plan_version","type":"int"},{"name":"period_start","type":"long"},'
    '{"name":"period_end","type":"long"},{"name":"currency","type":"string"},'
    '{"name":"lines","type":{"type":"array","items":'
    '{"name":"streambill.state.v1.InvoiceLine","type":"record","fields":['
    '{"name":"description","type":"string"},{"name":"feature_id","type":["null","string"]},'
    '{"name":"quantity","type":"string"},{"name":"unit_price","type":"string"},'
    '{"name":"precise_amount","type":"string"},{"name":"amount","type":"string"}]}}},'
    '{"name":"total","type":"string"},{"name":"issued_at","type":"long"},'
    '{"name":"adjusts_invoice_id","type":["null","string"]}]}'
)
LAYOUT = (
    '{"name":"streambill.state.v1.CustomerStateChanged","type":"record","fields":['
    '{"name":"customer_id","type":"string"},{"name":"version","type":"long"},'
    '{"name":"status","type":"string"},{"name":"plan_id","type":["null","string"]},'
    '{"name":"plan_version","type":["null","int"]},{"name":"model","type":["null","string"]},'
    '{"name":"currency","type":["null","string"]},'
    '{"name":"period_start","type":["null","long"]},'
    '{"name":"period_end","type":["null","long"]},{"name":"seats","type":"int"},'
    '{"name":"usage","type":{"type":"map","values":"string"}},'
    '{"name":"allowance_remaining","type":{"type":"map","values":"string"}},'
    '{"name":"credits_remaining","type":["null","string"]},'
    '{"name":"balance","type":["null","string"]},'
    '{"name":"last_topup","type":["null","string"]},{"name":"allowed","type":"boolean"},'
    '{"name":"upcoming_invoice","type":["null",' + _INVOICE + "]},"
    '{"name":"source_offsets","type":{"type":"map","values":"long"}},'
    '{"name":"updated_at","type":["null","long"]}]}'
)

_NULL = b"\x00"  # union branch 0 ("null"); also a count of 0 ending a map or array
_SOME = b"\x02"  # union branch 1, zig-zag encoded
_BOOL = {False: b"\x00", True: b"\x01"}
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_SIZE = 65_536
_LENGTHS = [avro_long(n) for n in range(MAX_DECIMAL_CHARS + 1)]  # a decimal string's length


class _Unfit(Exception):
    """The direct path declines a value; the generic path decides (and explains)."""


class StateEncoder:
    """Single-object encoding of a `CustomerStateChanged` value. Not thread-safe
    (one per worker; its caches are plain dicts)."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._header = MAGIC + codec.fingerprint(CUSTOMER_STATE_CHANGED)
        self.direct = to_parsing_canonical_form(codec.schema(CUSTOMER_STATE_CHANGED)) == LAYOUT
        self._strings: dict[str, bytes] = {}
        self._times: dict[datetime, bytes] = {}
        self._prefixes: dict[tuple[object, ...], bytes] = {}
        self._headers: dict[tuple[object, ...], bytes] = {}

    def encode(self, snapshot: CustomerStateChanged) -> bytes:
        if self.direct:
            try:
                return b"".join(self._state(snapshot))
            except _Unfit:
                pass
        name, record = convert.to_avro(snapshot)
        return self._codec.encode(name, record)

    # ---------------------------------------------------------------- records

    def _state(self, s: CustomerStateChanged) -> list[bytes]:
        out = [self._header, self._str(s.customer_id), _int(s.version, _INT64), self._prefix(s)]
        self._decimals(out, s.usage)
        self._decimals(out, s.allowance_remaining)
        for value in (s.credits_remaining, s.balance, s.last_topup):
            out.append(_NULL if value is None else _SOME + _dec(value))
        out.append(_bool(s.allowed))
        if s.upcoming_invoice is None:
            out.append(_NULL)
        else:
            out.append(_SOME)
            self._invoice(out, s.upcoming_invoice)
        offsets = s.source_offsets
        if offsets:
            out.append(avro_long(len(offsets)))  # one block holding every entry
            for key, offset in offsets.items():
                out.append(self._str(key))
                out.append(_int(offset, _INT64))
        out.append(_NULL)
        updated = s.updated_at  # the latest event time: new in nearly every snapshot
        out.append(_NULL if updated is None else _SOME + _millis(updated))
        return out

    def _prefix(self, s: CustomerStateChanged) -> bytes:
        """status .. seats, the same in every snapshot of a customer's period: cached
        by their values. The int fields' types are checked first (the direct path
        refuses any other type, and True == 1 would find the bytes of 1); any other
        value equal to a cached one encodes alike (a datetime: the same instant)."""
        version, seats = s.plan_version, s.seats
        if type(seats) is not int or (version is not None and type(version) is not int):
            raise _Unfit
        key = (
            s.status, s.plan_id, version, s.model, s.currency, s.period_start, s.period_end, seats,
        )  # fmt: skip
        try:
            return self._prefixes[key]
        except KeyError:
            pass
        except TypeError:  # unhashable: certainly not a string or a datetime
            raise _Unfit from None
        out = [self._str(s.status)]
        self._opt_str(out, s.plan_id)
        out.append(_NULL if version is None else _SOME + _int(version, _INT32))
        self._opt_str(out, s.model)
        self._opt_str(out, s.currency)
        self._opt_time(out, s.period_start)
        self._opt_time(out, s.period_end)
        out.append(_int(seats, _INT32))
        if len(self._prefixes) >= _CACHE_SIZE:
            self._prefixes.clear()
        encoded = self._prefixes[key] = b"".join(out)
        return encoded

    def _invoice(self, out: list[bytes], inv: Invoice) -> None:
        out.append(self._invoice_header(inv))
        if inv.lines:
            out.append(avro_long(len(inv.lines)))
            for line in inv.lines:
                out.append(self._str(line.description))
                self._opt_str(out, line.feature_id)
                for value in (line.quantity, line.unit_price, line.precise_amount, line.amount):
                    out.append(_dec(value))
        out.append(_NULL)
        out.append(_dec(inv.total))
        out.append(self._time(inv.issued_at))
        self._opt_str(out, inv.adjusts_invoice_id)

    def _invoice_header(self, inv: Invoice) -> bytes:
        """invoice_id .. currency, the same in every preview of a period: cached by
        their values, as in `_prefix`."""
        version = inv.plan_version
        if type(version) is not int:
            raise _Unfit
        key = (
            inv.invoice_id, inv.kind, inv.customer_id, inv.plan_id, version,
            inv.period_start, inv.period_end, inv.currency,
        )  # fmt: skip
        try:
            return self._headers[key]
        except KeyError:
            pass
        except TypeError:
            raise _Unfit from None
        out = [self._str(text) for text in (inv.invoice_id, inv.kind, inv.customer_id, inv.plan_id)]
        out.append(_int(version, _INT32))
        out.append(self._time(inv.period_start))
        out.append(self._time(inv.period_end))
        out.append(self._str(inv.currency))
        if len(self._headers) >= _CACHE_SIZE:
            self._headers.clear()
        encoded = self._headers[key] = b"".join(out)
        return encoded

    # ---------------------------------------------------------------- values

    def _decimals(self, out: list[bytes], values: Mapping[str, Decimal]) -> None:
        if values:
            out.append(avro_long(len(values)))
            for key, value in values.items():
                out.append(self._str(key))
                out.append(_dec(value))
        out.append(_NULL)

    def _opt_str(self, out: list[bytes], text: str | None) -> None:
        out.append(_NULL if text is None else _SOME + self._str(text))

    def _str(self, text: str) -> bytes:
        """Cached: customer, plan, feature ids and line descriptions repeat. Bounded;
        when full it starts over (cheap, and still correct)."""
        try:
            return self._strings[text]
        except KeyError:
            if type(text) is not str:
                raise _Unfit from None
            if len(self._strings) >= _CACHE_SIZE:
                self._strings.clear()
            encoded = self._strings[text] = avro_string(text.encode("utf-8"))
            return encoded
        except TypeError:  # unhashable: certainly not a string
            raise _Unfit from None

    def _opt_time(self, out: list[bytes], value: datetime | None) -> None:
        out.append(_NULL if value is None else _SOME + self._time(value))

    def _time(self, value: datetime) -> bytes:
        """`_millis`, cached by instant (period bounds repeat)."""
        try:
            return self._times[value]
        except KeyError:
            if len(self._times) >= _CACHE_SIZE:
                self._times.clear()
            encoded = self._times[value] = _millis(value)
            return encoded
        except TypeError:
            raise _Unfit from None


def _int(value: int, bounds: tuple[int, int]) -> bytes:
    if type(value) is not int or not bounds[0] <= value <= bounds[1]:
        raise _Unfit
    return avro_long(value)


def _millis(value: datetime) -> bytes:
    """timestamp-millis of an aware datetime, floored to the millisecond as
    `wire.time_to` does."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _Unfit
    delta = value - _EPOCH
    return _int((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000, _INT64)


def _bool(value: bool) -> bytes:
    if type(value) is not bool:
        raise _Unfit
    return _BOOL[value]


def _dec(value: Decimal) -> bytes:
    """The wire string of `wire.dec_to` (plain notation, scale kept) as Avro bytes.

    `str` writes that same plain notation, and more cheaply, whenever it
    writes no exponent (exponent <= 0 and adjusted exponent >= -6, the usual case);
    otherwise `format(value, "f")` does."""
    if type(value) is not Decimal or not value.is_finite():
        raise _Unfit
    text = str(value)
    if "E" in text or "e" in text:  # "e" under a context with capitals=0
        text = format(value, "f")
    try:  # ASCII: as many bytes as characters
        return _LENGTHS[len(text)] + text.encode("ascii")
    except IndexError:  # longer than MAX_DECIMAL_CHARS
        raise _Unfit from None
