"""`RecordJson`: a customer record's changelog value, written directly.

`RecordJson().encode(record)` is byte for byte `_json(record.to_dict())` of
`processors.worker.pipeline` (compact separators, `ensure_ascii=False`, the key order and
`sorted()` orders of `billing.state_codec.state_to_dict(..., remember_ids=False)`),
without building the dicts or running the encoder: strings go through the encoder's
own `encode_basestring` (`json_string`), times are `isoformat()` (UTC ones put
together from memoized pieces), decimals `"str(d)"` (a Decimal's str never needs
escaping), ints `str(n)`. Values must have the types `billing.state` declares.
Property tests hold it to the reference on folded histories, worker batches and
hand-built records (registered in tests/unit/test_fast_paths.py); a difference
would make a record restored from the changelog differ from the one the worker kept.

Most of a record does not change from one batch to the next: states are immutable
once published (`billing.state`), the `Account` (cold fields) and the dict of earlier
period records keep their identity until something in them changes, and so do the
live record's dicts and bounds. So, per customer id, the JSON of those parts is kept
with a strong reference to the object it was written from and reused only while
the new state holds that very object (`is`, never `id()`: ids are reused once an
object is freed). The entries are dropped all at once beyond `limit` customers.
Per usage event only the live period's counters, grants, balance, times, version,
offsets and watermark are written afresh.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.state import Account, PeriodRecord
from billing.state_codec import FORMAT
from processors.fold.records import CustomerRecord, json_string

_reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# `datetime.isoformat()` of a UTC instant in pieces (`updated_at` is new on every
# event): '"YYYY-MM-DDT' per day (memoized), "HH:", "MM:", "SS", and
# the fraction with the offset, from a table for whole milliseconds (the wire's unit).
_DAYS: dict[int, str] = {}
_TWO = [f"{i:02d}" for i in range(60)]
_HM = [f"{i:02d}:" for i in range(60)]
_MS = ['+00:00"', *(f'.{ms:03d}000+00:00"' for ms in range(1, 1000))]


def _time(value: datetime | None) -> str:
    """The quoted ISO 8601 form `state_codec` writes (`isoformat()`), or null."""
    if value is None:
        return "null"
    if value.tzinfo is not UTC or type(value) is not datetime:
        return f'"{value.isoformat()}"'  # ISO 8601: nothing to escape
    day = _DAYS.get(n := value.toordinal())
    if day is None:
        if len(_DAYS) >= 4096:
            _DAYS.clear()
        day = _DAYS[n] = f'"{value.date().isoformat()}T'
    us = value.microsecond
    frac = _MS[us // 1000] if not us % 1000 else f'.{us:06d}+00:00"'
    return f"{day}{_HM[value.hour]}{_HM[value.minute]}{_TWO[value.second]}{frac}"


def _dec(value: Decimal | None) -> str:
    return "null" if value is None else f'"{value}"'


def _bool(value: bool) -> str:
    return "true" if value is True else "false" if value is False else _reference(value)


def _usage(usage: dict[str, Decimal]) -> str:
    if len(usage) == 1:  # the common case: sorting and joining cost more than the rest
        ((k, v),) = usage.items()
        return f'{json_string(k)}:"{v}"'
    return ",".join([f'{json_string(k)}:"{v}"' for k, v in sorted(usage.items())])


def _tokens(tokens: dict[tuple[str, str], tuple[Decimal, Decimal]]) -> str:
    return ",".join(
        [
            f'[{json_string(f)},{json_string(k)},"{i}","{o}"]'
            for (f, k), (i, o) in sorted(tokens.items())
        ]
    )


def _alert_idx(marks: dict[str, int]) -> str:
    return ",".join([f"{json_string(k)}:{v}" for k, v in sorted(marks.items())])


def _head(r: PeriodRecord) -> str:
    return (
        f'{{"start":{_time(r.start)},"end":{_time(r.end)},'
        f'"plan_id":{json_string(r.plan_id)},"usage":{{'
    )


def _period(r: PeriodRecord) -> str:
    """One period record, as `state_codec._record_to_dict` gives it."""
    return _tail(r, _head(r), _usage(r.usage), _tokens(r.tokens), _alert_idx(r.alert_idx))


def _tail(r: PeriodRecord, head: str, usage: str, tokens: str, marks: str) -> str:
    return (
        f'{head}{usage}}},"tokens":[{tokens}],"credits_used":"{r.credits_used}",'
        f'"spent":"{r.spent}","topped":"{r.topped}","alert_idx":{{{marks}}},'
        f'"spend":"{r.spend}","capped":{_bool(r.capped)}}}'
    )


def _account(a: Account) -> tuple[str, str, str, str]:
    """The cold fields, as the four runs they form between the hot ones: up to
    `"periods":[`, `],"horizon":…,"grants":`, `,"wallet_opening":…,"balance":`,
    and `,"last_topup":…,"updated_at":`."""
    plans = ",".join([f"[{_time(t)},{json_string(p)}]" for t, p in a.plans])
    seats = ",".join([f"[{_time(t)},{n}]" for t, n in a.seats])
    raised = ",".join([str(level) for level in sorted(a.alerts_raised)])
    counts = ",".join([f'"{k}":{v}' for k, v in sorted(a.alert_counts.items())])
    return (
        f',"status":{json_string(a.status)},"anchor":{_time(a.anchor)},"plans":[{plans}],'
        f'"cancel_at":{_time(a.cancel_at)},"seats":[{seats}],"periods":[',
        f'],"horizon":{_time(a.horizon)},"grants":',
        f',"wallet_opening":"{a.wallet_opening}","balance":',
        f',"last_topup":{_dec(a.last_topup)},"alerts_raised":[{raised}],'
        f'"alert_counts":{{{counts}}},"alert_next":{_dec(a.alert_next)},"updated_at":',
    )


def _grants(grants: tuple[tuple[datetime | None, Decimal], ...]) -> str:
    return "[" + ",".join([f'[{_time(e)},"{c}"]' for e, c in grants]) + "]"


class _Entry:
    """One customer's fragments, each beside the object it was written from."""

    __slots__ = (
        "acct", "acct_text", "earlier", "earlier_text", "grants", "grants_text", "head",
        "ids", "last", "last_text", "marks", "marks_text", "rec_bounds", "rec_head",
        "tokens", "tokens_text", "usage", "usage_text",
    )  # fmt: skip

    def __init__(self) -> None:
        none: Any = None  # nothing is `is` None where an object is expected
        self.ids: tuple[str, str] | None = None
        self.head = ""
        self.acct, self.acct_text = none, ("", "", "", "")
        self.earlier, self.earlier_text = none, ""
        self.last, self.last_text = none, ""
        self.rec_bounds: tuple[Any, Any, Any] = (none, none, none)
        self.rec_head = ""
        self.usage, self.usage_text = none, ""
        self.tokens, self.tokens_text = none, ""
        self.marks, self.marks_text = none, ""
        self.grants, self.grants_text = none, ""


class RecordJson:
    """Writes customer records as JSON, reusing per customer what did not change."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Customers with fragments kept."""
        return len(self._entries)

    def encode(self, record: CustomerRecord) -> bytes:
        s = record.state
        last, earlier = s.last, s.earlier
        if earlier and last is not None and last.start in earlier:
            # Not a state the ledger makes (`records()` would list it once): exact anyway.
            return _reference(record.to_dict()).encode()
        entries = self._entries
        e = entries.get(record.customer_id)
        if e is None:
            if len(entries) >= self.limit:
                entries.clear()
            e = entries[record.customer_id] = _Entry()
        if e.ids != (record.customer_id, s.customer_id):
            e.ids = (record.customer_id, s.customer_id)
            e.head = (
                f'{{"customer_id":{json_string(record.customer_id)},"state":{{"format":{FORMAT},'
                f'"customer_id":{json_string(s.customer_id)},"version":'
            )
        if s.acct is not e.acct:
            e.acct, e.acct_text = s.acct, _account(s.acct)
        if earlier is not e.earlier:
            e.earlier = earlier
            e.earlier_text = ",".join([_period(earlier[k]) for k in sorted(earlier)])
        if last is not e.last:
            e.last, e.last_text = last, "" if last is None else self._live(last, e)
        if s.grants is not e.grants:
            e.grants, e.grants_text = s.grants, _grants(s.grants)
        a1, a2, a3, a4 = e.acct_text
        periods = e.earlier_text
        if e.last_text:
            periods = f"{periods},{e.last_text}" if periods else e.last_text
        wm = record.watermark_ms
        offsets = ",".join([f"{json_string(k)}:{v}" for k, v in record.offsets.items()])
        return (
            f'{e.head}{s.seq}{a1}{periods}{a2}{e.grants_text}{a3}"{s.balance}"{a4}'
            f'{_time(s.updated_at)},"seen":{{}}}},"offsets":{{{offsets}}},'
            f'"watermark_ms":{"null" if wm is None else wm}}}'
        ).encode()

    @staticmethod
    def _live(r: PeriodRecord, e: _Entry) -> str:
        """The live period record, reusing the parts the previous one shared."""
        bounds = e.rec_bounds
        if r.start is not bounds[0] or r.end is not bounds[1] or r.plan_id is not bounds[2]:
            e.rec_bounds, e.rec_head = (r.start, r.end, r.plan_id), _head(r)
        if r.usage is not e.usage:
            e.usage, e.usage_text = r.usage, _usage(r.usage)
        if r.tokens is not e.tokens:
            e.tokens, e.tokens_text = r.tokens, _tokens(r.tokens)
        if r.alert_idx is not e.marks:
            e.marks, e.marks_text = r.alert_idx, _alert_idx(r.alert_idx)
        return _tail(r, e.rec_head, e.usage_text, e.tokens_text, e.marks_text)
