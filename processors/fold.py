"""One batch of source messages folded into customer records: the worker's logic
without Faust or a broker (the agent in `processors.worker` only moves bytes).

Per message, in DESIGN.md section 4 order:
1. decode and validate (codec, conversion, topic/key agreement, event-time checks);
2. skip what was already applied: the customer's last applied offset for this
   topic-partition, then the windowed `seen` table of event ids (same id at another
   position: same payload -> duplicate, other payload -> duplicate_conflict);
3. `billing.ledger.apply`;
4. collect the new record, the seen entry and the effects.
After the batch, each changed customer's state is pruned to the periods the
lateness limit can still reach (`ledger.prune`) and stripped of the core's memory
of event ids (`ledger.forget_ids`), so its size stays bounded and a state kept in
memory between batches is exactly the state a restarted worker reads back from the
changelog (which never holds those ids): live and restarted workers decide alike.
Why dropping the ids is safe: within a batch the core still has them, but the
batch's own pending `seen` entries answer first; across batches, any event the
core would remember was recorded in `seen` and passed the offset check, and any
copy of it that passes the lateness check is still inside the seen window
(max_lateness <= dedupe_window), so the worker's guards catch it before `apply`.
Pruning is invisible too: the worker rejects events older than watermark -
max_lateness itself, and `prune` keeps every period from there on.
Nothing here performs I/O; `BatchResult` says what the caller must make durable.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, cast

from billing import ledger
from billing.catalog import Catalog
from billing.events import (
    AlertRaised,
    AlertResolved,
    CustomerStateChanged,
    Event,
    EventRejected,
    Invoice,
    RejectReason,
    UsageRecorded,
)
from processors.records import (
    CustomerRecord,
    SeenEntry,
    datetime_to_ms,
    fingerprint,
    ms_to_datetime,
    tp_key,
)
from streambill import convert
from streambill.codec import Codec, DecodeError
from streambill.state_wire import StateEncoder
from streambill.usage_decoder import UsageDecoder
from streambill.usage_wire import USAGE_RECORDED


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One consumed Kafka message, bytes untouched."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Output:
    """An encoded effect for `topic` (physical name)."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Topics:
    """Physical topic names the fold reads and writes."""

    usage: str
    account: str
    state: str
    alerts: str
    invoices: str
    rejected: str


@dataclass(frozen=True, slots=True)
class FoldPolicy:
    dedupe_window_ms: int
    max_lateness_ms: int
    future_tolerance_ms: int

    def __post_init__(self) -> None:
        # An event that passes the lateness check must still be in the seen window.
        if self.max_lateness_ms > self.dedupe_window_ms:
            raise ValueError("max_lateness must not exceed dedupe_window")


class RecordView(Protocol):
    """Read access to the two tables as of the start of the batch."""

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None: ...

    def seen(self, event_id: str, partition: int) -> SeenEntry | None: ...


@dataclass(slots=True)
class BatchResult:
    """What one batch changed. The caller makes `outputs` durable first, then
    `seen`, then `customers` (see the agent docstring for why)."""

    outputs: list[Output] = field(default_factory=list)
    seen: dict[str, tuple[int, SeenEntry]] = field(default_factory=dict)
    customers: dict[str, tuple[int, CustomerRecord]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


def merge_by_time(messages: Sequence[SourceMessage]) -> list[SourceMessage]:
    """Interleave the topic-partitions of a batch by message timestamp, keeping each
    topic-partition's own order (offsets must be applied in order).

    usage-events and account-events are separate logs; Kafka gives no order between
    them. Merging by timestamp inside a batch makes a subscription and the usage
    behind it meet in time order whenever they arrive in the same batch (a fresh
    replay's first batch holds both), so replay decides like the live run did.
    Across batches, arrival order still rules (a documented limitation)."""
    per_tp: dict[tuple[str, int], list[SourceMessage]] = {}
    for m in messages:
        per_tp.setdefault((m.topic, m.partition), []).append(m)
    if len(per_tp) < 2:
        return list(messages)
    return list(heapq.merge(*per_tp.values(), key=lambda m: m.timestamp_ms or 0))


class Rejection(Exception):
    """Internal control flow: this message becomes a dead letter."""

    def __init__(self, reason: RejectReason, detail: str, event: Event | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.event = event


class BatchFolder:
    """Folds batches; holds only configuration (catalog, codec, policy, clock)."""

    def __init__(
        self,
        catalog: Catalog,
        codec: Codec,
        policy: FoldPolicy,
        topics: Topics,
        clock: Callable[[], datetime],
    ) -> None:
        self._catalog = catalog
        self._codec = codec
        self._policy = policy
        self._topics = topics
        self._clock = clock
        self._fast = UsageDecoder(codec).decode
        self._state_bytes = StateEncoder(codec).encode  # one snapshot per changed customer

    def fold(self, messages: Iterable[SourceMessage], view: RecordView) -> BatchResult:
        batch = _Batch(view)
        now_ms = datetime_to_ms(self._clock())
        for message in messages:
            batch.out.counts["in"] += 1
            try:
                self._fold_one(message, batch, now_ms)
            except Rejection as rej:
                self._dead_letter(message, rej, batch)
        for customer_id, (_, record) in batch.out.customers.items():
            record.state = self._settle(record)
            snapshot = self._state_bytes(self._snapshot(record))
            batch.out.outputs.append(Output(self._topics.state, customer_id.encode(), snapshot))
        return batch.out

    # ------------------------------------------------------------------ steps

    def _fold_one(self, message: SourceMessage, batch: _Batch, now_ms: int) -> None:
        event = self._decode(message)
        record = batch.customer(event.customer_id, message.partition)
        position = tp_key(message.topic, message.partition)
        last = record.offsets.get(position)  # `record.applied`, inlined (per event)
        if last is not None and message.offset <= last:
            batch.out.counts["redelivered"] += 1
            return
        event_ms = datetime_to_ms(event.timestamp)
        self._check_time(event, event_ms, record, now_ms)
        digest = fingerprint(message.value)
        seen = batch.seen(event.event_id, message.partition)
        if seen is not None and not seen.same_message(
            message.topic, message.partition, message.offset
        ):
            if seen.fingerprint != digest:
                raise Rejection(
                    RejectReason.DUPLICATE_CONFLICT,
                    f"event_id {event.event_id} was applied from {seen.topic}/"
                    f"{seen.partition}@{seen.offset} with a different payload",
                    event,
                )
            batch.out.counts["deduplicated"] += 1
            return
        new_state, effects = ledger.apply(record.state, event, self._catalog)
        if effects.rejection is not None:
            rej = effects.rejection
            raise Rejection(RejectReason(rej.reason), rej.detail, event)
        if effects.duplicate:
            batch.out.counts["deduplicated"] += 1
            return
        record.state = new_state
        record.offsets[position] = message.offset
        record.watermark_ms = max(record.watermark_ms or event_ms, event_ms)
        batch.out.customers[event.customer_id] = (message.partition, record)
        entry = SeenEntry(
            digest, message.topic, message.partition, message.offset, event.customer_id, event_ms
        )
        batch.out.seen[event.event_id] = (message.partition, entry)
        batch.out.counts["applied"] += 1
        key = event.customer_id.encode()
        for alert in effects.alerts:
            self._emit(batch.out, key, alert)
        for invoice in effects.invoices:
            self._emit(batch.out, key, invoice)

    def _decode(self, message: SourceMessage) -> Event:
        """The direct decoder takes valid UsageRecorded (same result, several times
        faster); everything else, every bad input included, the general path."""
        value: object = self._fast(message.value)
        name = USAGE_RECORDED
        if value is None:
            try:
                name, record = self._codec.decode(message.value)
            except DecodeError as exc:
                raise Rejection(RejectReason(exc.reason), str(exc)) from exc
            try:
                value = convert.from_avro(name, record)
            except convert.InvalidField as exc:
                raise Rejection(RejectReason(exc.reason), str(exc)) from exc
        expected_usage = message.topic == self._topics.usage
        event = cast(Event, value)
        if not isinstance(value, _EVENT_TYPES) or isinstance(event, UsageRecorded) != (
            expected_usage
        ):
            raise Rejection(
                RejectReason.UNKNOWN_SCHEMA, f"{name} is not accepted on {message.topic}"
            )
        if message.key is not None and message.key != event.customer_id.encode():
            raise Rejection(
                RejectReason.INVALID_FIELD,
                f"customer_id {event.customer_id!r} differs from the message key {message.key!r}",
                event,
            )
        return event

    def _check_time(self, event: Event, event_ms: int, record: CustomerRecord, now_ms: int) -> None:
        """Future: against the wall clock. Late: against the customer's event-time
        watermark, so a replay decides exactly as the live run did."""
        if event_ms > now_ms + self._policy.future_tolerance_ms:
            raise Rejection(
                RejectReason.TIMESTAMP_IN_FUTURE,
                f"event time {event.timestamp.isoformat()} is more than "
                f"{self._policy.future_tolerance_ms} ms after {ms_to_datetime(now_ms).isoformat()}",
                event,
            )
        wm = record.watermark_ms
        if wm is not None and event_ms < wm - self._policy.max_lateness_ms:
            raise Rejection(
                RejectReason.TOO_LATE,
                f"event time {event.timestamp.isoformat()} is more than "
                f"{self._policy.max_lateness_ms} ms behind the customer's watermark "
                f"{ms_to_datetime(wm).isoformat()}",
                event,
            )

    def _settle(self, record: CustomerRecord) -> ledger.CustomerState:
        """Bounded state between batches (see the module docstring)."""
        state = record.state
        if record.watermark_ms is not None:
            before = ms_to_datetime(record.watermark_ms - self._policy.max_lateness_ms)
            state = ledger.prune(state, before)
        return ledger.forget_ids(state)

    # ---------------------------------------------------------------- outputs

    def _snapshot(self, record: CustomerRecord) -> CustomerStateChanged:
        as_of = ms_to_datetime(record.watermark_ms or 0)
        return ledger.snapshot(
            record.state, self._catalog, source_offsets=record.offsets, as_of=as_of
        )

    def _dead_letter(self, message: SourceMessage, rej: Rejection, batch: _Batch) -> None:
        event = rej.event
        customer = event.customer_id if event is not None else None
        letter = EventRejected(
            reason=rej.reason,
            detail=rej.detail,
            event_id=event.event_id if event is not None else None,
            customer_id=customer,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            original=message.value,
        )
        key = customer.encode() if customer is not None else message.key
        self._emit(batch.out, key, letter)
        batch.out.rejected[rej.reason.value] += 1

    def _emit(self, out: BatchResult, key: bytes | None, value: object) -> None:
        name, record = convert.to_avro(value)  # type: ignore[arg-type]
        out.outputs.append(Output(self._topic_for(value), key, self._codec.encode(name, record)))

    def _topic_for(self, value: object) -> str:
        if isinstance(value, AlertRaised | AlertResolved):
            return self._topics.alerts
        if isinstance(value, Invoice):
            return self._topics.invoices
        if isinstance(value, EventRejected):
            return self._topics.rejected
        return self._topics.state


_EVENT_TYPES: tuple[type, ...] = tuple(Event.__args__)


class _Batch:
    """Reads through to the tables, but sees this batch's own writes first."""

    def __init__(self, view: RecordView) -> None:
        self.view = view
        self.out = BatchResult()
        self._loaded: dict[str, CustomerRecord] = {}

    def customer(self, customer_id: str, partition: int) -> CustomerRecord:
        record = self._loaded.get(customer_id)
        if record is None:
            stored = self.view.customer(customer_id, partition)
            # A copy: the view may hand out records it keeps (the worker's cache),
            # which must not change before the batch is durable.
            record = stored.copy() if stored is not None else CustomerRecord.new(customer_id)
            self._loaded[customer_id] = record
        return record

    def seen(self, event_id: str, partition: int) -> SeenEntry | None:
        pending = self.out.seen.get(event_id)
        return pending[1] if pending is not None else self.view.seen(event_id, partition)
