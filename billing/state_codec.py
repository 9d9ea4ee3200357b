"""`state_to_dict` / `state_from_dict`: a customer state as JSON-safe data.

Decimals travel as strings, datetimes as ISO 8601 strings with offset, so the
round trip is lossless: `state_to_dict(state_from_dict(d)) == d`, and a restored
state folds further events exactly like the original. Remembered event ids keep
a payload digest (`billing.admission.fingerprint`) and the period they belong to.
Cost: proportional to the retained periods and remembered event ids.

`state_to_dict(state, remember_ids=False)` leaves the remembered event ids out
(`"seen": {}`): everything else round-trips losslessly, and the restored state
equals `forget_ids(state)`, i.e. it folds every event exactly like the original
EXCEPT that it no longer recognizes a re-sent event as a duplicate (or conflict).
Only a caller that deduplicates by itself may use it: the fold worker does (last
applied offset per source partition plus its windowed table of event ids with
payload fingerprints), and it would otherwise rewrite every remembered id of the
retained periods on each save, so its cost grows with history. Cost without the
ids: proportional to the retained periods only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.admission import fingerprint
from billing.errors import StateError
from billing.state import (
    CustomerState,
    PeriodRecord,
    SeenLog,
    new_record,
    new_state,
)

FORMAT = 1


_ISO: dict[datetime, str] = {}  # UTC instants only: equal instants in other zones print differently


def _t(value: datetime | None) -> str | None:
    """ISO 8601; memoized for UTC values (a state repeats its anchor and period
    bounds, and the worker writes one state per changed customer per batch)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        return value.isoformat()
    text = _ISO.get(value)
    if text is None:
        if len(_ISO) >= 4096:
            _ISO.clear()
        text = _ISO[value] = value.isoformat()
    return text


def _pt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _d(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _pd(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _record_to_dict(r: PeriodRecord) -> dict[str, Any]:
    return {
        "start": _t(r.start),
        "end": _t(r.end),
        "plan_id": r.plan_id,
        "usage": {k: str(v) for k, v in sorted(r.usage.items())},
        "tokens": [[f, k, str(i), str(o)] for (f, k), (i, o) in sorted(r.tokens.items())],
        "credits_used": str(r.credits_used),
        "spent": str(r.spent),
        "topped": str(r.topped),
        "alert_idx": dict(sorted(r.alert_idx.items())),
        "spend": str(r.spend),
        "capped": r.capped,
    }


def _record_from_dict(d: dict[str, Any]) -> PeriodRecord:
    start, end = datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"])
    r = new_record(start, end, d["plan_id"])
    r.usage = {k: Decimal(v) for k, v in d["usage"].items()}
    r.tokens = {(f, k): (Decimal(i), Decimal(o)) for f, k, i, o in d["tokens"]}
    r.credits_used, r.spent = Decimal(d["credits_used"]), Decimal(d["spent"])
    r.topped, r.spend = Decimal(d["topped"]), Decimal(d["spend"])
    r.alert_idx = {k: int(v) for k, v in d["alert_idx"].items()}
    r.capped = bool(d["capped"])
    return r


def state_to_dict(state: CustomerState, *, remember_ids: bool = True) -> dict[str, Any]:
    """The state as JSON-safe data; `remember_ids=False` omits the memory of applied
    event ids (see the module docstring for when that is allowed)."""
    seen: dict[str, dict[str, str]] = {}
    entries = state.seen.entries
    visible = state.visible_seen() if remember_ids else {}
    for event_id, (fp, seq, period_start) in visible.items():
        if isinstance(fp, str):
            digest = fp
        else:
            # Memoize: the digest stands for the event everywhere (`same_payload`),
            # so swapping it in is invisible and saves rehashing on the next save.
            digest = fingerprint(fp)
            entries[event_id] = (digest, seq, period_start)
        seen.setdefault(period_start.isoformat(), {})[event_id] = digest
    return {
        "format": FORMAT,
        "customer_id": state.customer_id,
        "version": state.seq,
        "status": state.status,
        "anchor": _t(state.anchor),
        "plans": [[_t(t), p] for t, p in state.plans],
        "cancel_at": _t(state.cancel_at),
        "seats": [[_t(t), n] for t, n in state.seats],
        "periods": [_record_to_dict(r) for r in state.records().values()],
        "horizon": _t(state.horizon),
        "grants": [[_t(e), str(c)] for e, c in state.grants],
        "wallet_opening": str(state.wallet_opening),
        "balance": str(state.balance),
        "last_topup": _d(state.last_topup),
        "alerts_raised": sorted(state.alerts_raised),
        "alert_counts": {str(k): v for k, v in sorted(state.alert_counts.items())},
        "alert_next": _d(state.alert_next),
        "updated_at": _t(state.updated_at),
        "seen": seen,
    }


def state_from_dict(d: dict[str, Any]) -> CustomerState:
    try:
        return _from_dict(d)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise StateError(f"cannot read customer state: {exc!r}") from exc


def _from_dict(d: dict[str, Any]) -> CustomerState:
    if d.get("format") != FORMAT:
        raise StateError(f"unknown state format {d.get('format')!r}")
    s = new_state(d["customer_id"])
    s.status = d["status"]
    s.anchor = _pt(d["anchor"])
    s.plans = tuple((datetime.fromisoformat(t), p) for t, p in d["plans"])
    s.cancel_at = _pt(d["cancel_at"])
    s.seats = tuple((datetime.fromisoformat(t), int(n)) for t, n in d["seats"])
    s.with_records({r.start: r for r in map(_record_from_dict, d["periods"])})
    s.horizon = _pt(d["horizon"])
    s.grants = tuple((_pt(e), Decimal(c)) for e, c in d["grants"])
    s.wallet_opening, s.balance = Decimal(d["wallet_opening"]), Decimal(d["balance"])
    s.last_topup = _pd(d["last_topup"])
    s.alerts_raised = frozenset(int(t) for t in d["alerts_raised"])
    s.alert_counts = {int(k): int(v) for k, v in d["alert_counts"].items()}
    s.alert_next = _pd(d["alert_next"])
    s.updated_at = _pt(d["updated_at"])
    entries: dict[str, tuple[Any, int, datetime]] = {}
    seq = 0
    for period, ids in d["seen"].items():
        start = datetime.fromisoformat(period)
        for event_id, digest in ids.items():
            entries[event_id] = (digest, seq, start)
            seq += 1
    version = int(d["version"])
    if seq > version:
        raise StateError("more remembered events than the state version")
    # Re-stamp remembered ids below the version so they are all visible.
    s.seq = version
    s.seen = SeenLog(entries, version)
    return s
