"""Admission: which events count. One decision, pure, shared by every path.

Between "an event was decoded from the log" and `billing.ledger.apply` every path
(the fold worker's batch fold, the period close, reconcile and `simulate`) asks
`decide` the same question with the same customer-level facts, so a live run and
any replay accept exactly the same events. The doors before it (decoding, numeric
bounds, the message key and its partition) are `processors.fold.admission`'s; they look
at one record alone.

The rules, for one event of customer C (docs/ARCHITECTURE.md, "Admission"):

1. Future: an event more than `future_tolerance_ms` after `now_ms` is rejected
   (`timestamp_in_future`). `now_ms` is the reader's clock (the worker's wall
   clock; a replay passes its own), the one rule a replay cannot re-decide
   exactly; reconcile compares the close with the live worker to catch it.
2. Lateness: C's watermark is the latest event time of C's usage events in log
   order (usage-events offset order, which every path reads in), advanced by every
   usage event that passes rules 1 and 2, whatever happens to it afterwards. An
   event (usage or account) more than `max_lateness_ms` behind it is rejected
   (`too_late`). Account events never move the watermark: their order against
   usage is not fixed by the log (two topics), so it must not decide anything.
3. Dedupe, scope `(customer_id, event_id)`: two customers may use the same id. An
   id C applied before, whose event time is not yet `dedupe_window_ms` behind C's
   watermark, makes a copy with the same canonical fingerprint a duplicate and a
   copy with another one a `duplicate_conflict`. An entry past the window counts
   as absent at lookup, whenever it is physically pruned, so the moment of pruning
   never changes a decision. `max_lateness_ms <= dedupe_window_ms`: any copy that
   passes rule 2 still finds its original.
4. Then `ledger.apply` (customer known, subscription in force, feature priced...).

The fingerprint is over the decoded, canonical payload: a retry whose properties
were serialized in another order, or whose quantity was written `12.50` instead
of `12.5`, is the same event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal

from billing.events import Event, RejectReason, UsageRecorded

__all__ = [
    "DUPLICATE",
    "AdmissionPolicy",
    "Refusal",
    "canonical_decimal",
    "decide",
    "dedupe_key",
    "expired",
    "fingerprint",
    "same_payload",
    "to_ms",
]


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """The settings the rules read (milliseconds)."""

    dedupe_window_ms: int
    max_lateness_ms: int
    future_tolerance_ms: int

    def __post_init__(self) -> None:
        if min(self.max_lateness_ms, self.dedupe_window_ms, self.future_tolerance_ms) < 0:
            raise ValueError("admission durations must not be negative")
        if self.max_lateness_ms > self.dedupe_window_ms:
            raise ValueError("max_lateness must not exceed dedupe_window")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `decide` did not admit an event: a duplicate (nothing to do), or a
    rejection with its reason code and a readable detail."""

    duplicate: bool = False
    reason: RejectReason | None = None
    detail: str = ""


DUPLICATE = Refusal(duplicate=True)


def to_ms(at: datetime) -> int:
    """Event time in whole milliseconds since the epoch (the wire's resolution)."""
    delta = at - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def dedupe_key(customer_id: str, event_id: str) -> str:
    """The dedupe scope as one string key: unambiguous (length-prefixed)."""
    return f"{len(customer_id)}:{customer_id}{event_id}"


def decide(
    policy: AdmissionPolicy,
    usage: bool,
    event_ms: int,
    watermark_ms: int | None,
    prior: tuple[Callable[[], bool], int] | None,
    now_ms: int | None,
) -> tuple[int | None, Refusal | None]:
    """Rules 1-3 for one event: (the customer's watermark after it, None when it is
    admitted, else the `Refusal`). The watermark is returned whatever the outcome
    (rule 2). `prior` is what dedupe remembers of an earlier event with the same
    `(customer_id, event_id)`: a function that says whether its canonical payload
    equals this event's (called only when it matters: the fingerprints, or
    `same_payload` where both events are at hand) and its event time; or None.
    `now_ms` None skips rule 1 (a reader without a clock). Called once per event on
    every path: positional, and no object made for an admitted event."""
    if now_ms is not None and event_ms > now_ms + policy.future_tolerance_ms:
        return watermark_ms, Refusal(
            reason=RejectReason.TIMESTAMP_IN_FUTURE,
            detail=f"event time {_iso(event_ms)} is more than {policy.future_tolerance_ms} ms"
            f" after {_iso(now_ms)}",
        )
    if watermark_ms is not None:
        if event_ms < watermark_ms - policy.max_lateness_ms:
            return watermark_ms, Refusal(
                reason=RejectReason.TOO_LATE,
                detail=f"event time {_iso(event_ms)} is more than {policy.max_lateness_ms} ms"
                f" behind the customer's watermark {_iso(watermark_ms)}",
            )
        if usage and event_ms > watermark_ms:
            watermark_ms = event_ms
    elif usage:
        watermark_ms = event_ms
    if prior is None or expired(policy, prior[1], watermark_ms):
        return watermark_ms, None
    if prior[0]():
        return watermark_ms, DUPLICATE
    return watermark_ms, Refusal(
        reason=RejectReason.DUPLICATE_CONFLICT,
        detail="this event id was applied before for this customer with another payload",
    )


def expired(policy: AdmissionPolicy, event_ms: int, watermark_ms: int | None) -> bool:
    """Whether a dedupe entry of event time `event_ms` no longer counts (rule 3):
    what `decide` ignores, and so what a store may prune."""
    return watermark_ms is not None and event_ms < watermark_ms - policy.dedupe_window_ms


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


# ---------------------------------------------------------------- fingerprint


def fingerprint(event: Event, event_ms: int | None = None) -> str:
    """A digest of the event's canonical payload: the event type, then every field
    in schema order with decimals without trailing zeros, times in milliseconds and
    mappings sorted by key. Equal events (by value) have equal fingerprints. A field
    added to an event type later (its `ADDED_FIELDS`) counts only when set, by name,
    so an event from before it existed keeps the digest it was remembered by.
    `event_ms`: `to_ms(event.timestamp)` when the caller has it already.

    The one payload rule of dedupe: the worker's `seen` table, the replay and the
    core's id memory (`billing.state.same_payload`, digests of serialized states)
    all use it. The UsageRecorded branch is the general one written out for speed;
    a property test holds the two equal (tests/unit/billing/test_admission_properties.py)."""
    if type(event) is UsageRecorded:  # the hot path: one string, one digest
        props = event.properties
        ms = to_ms(event.timestamp) if event_ms is None else event_ms
        text = (
            f"UsageRecorded\x1e{event.event_id}\x1e{event.customer_id}\x1e{event.feature_id}"
            f"\x1e{canonical_decimal(event.quantity)}\x1e{ms}\x1e"
            + ("\x1f".join(map(_pair, sorted(props.items()))) if props else "")
        )
    else:
        parts = [type(event).__name__]
        added = getattr(event, "ADDED_FIELDS", ())
        for f in fields(event):
            value = getattr(event, f.name)
            if value is None and f.name in added:
                continue  # unset, as in every event written before the field existed
            parts.append(
                _canonical(value) if f.name not in added else f"{f.name}={_canonical(value)}"
            )
        text = "\x1e".join(parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def same_payload(a: Event, b: Event) -> bool:
    """`fingerprint(a) == fingerprint(b)`, without hashing, for two events at hand:
    dataclass equality compares decimals by value, times by instant (events carry
    whole milliseconds) and mappings regardless of order, which is the canonical
    form. A property test holds the two against each other."""
    return a == b


_pair = "\x1d".join  # (key, value) of a property


def canonical_decimal(value: Decimal) -> str:
    """Plain notation without trailing fractional zeros: 12.50 -> 12.5, -0 -> 0.
    Exact for every finite value (no context involved)."""
    text = str(value)
    if "E" not in text and "." not in text and text != "-0":
        return text  # an integer written without exponent: already canonical
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _canonical(value: object) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return canonical_decimal(value)
    if isinstance(value, datetime):
        return str(to_ms(value))
    if isinstance(value, Mapping):
        return "\x1f".join(f"{k}\x1d{_canonical(value[k])}" for k in sorted(value))
    return str(value)
