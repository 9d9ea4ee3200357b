"""One batch of source messages folded into customer records: the worker's logic
without Faust or a broker (`processors.worker` only moves bytes and makes them durable).

Per message (docs/ARCHITECTURE.md, "Admission"):
1. the doors, `processors.fold.admission.Doors`: decode, key and partition placement;
2. skip a redelivery: the customer's last applied offset for this topic-partition;
3. the customer-level rules, `billing.admission.decide` (future, lateness against
   the customer's usage watermark, dedupe by `(customer_id, event_id)` against the
   windowed `seen` table, canonical fingerprint);
4. `billing.ledger.apply` (without the core's own id memory: admission decided);
   an exception there dead-letters the one event (`internal_error`);
5. collect the new record, the seen entry and the effects.
A customer whose watermark moved is written even if nothing was applied, so the
watermark (which decides lateness and dedupe expiry) survives a restart; a
snapshot is emitted for customers with an applied event, as of the latest event
time the state applied, so the latest snapshot is the same whatever the batches.
After the batch, each changed customer's state is pruned to the periods the
lateness limit can still reach (`ledger.prune`), so its size stays bounded; the
pruned periods are exactly those the admission rules refuse, so pruning never
changes a decision, and a state kept in memory between batches decides like a
restarted worker that reads it back from the changelog. If a snapshot cannot be
built (a bug, or a value past the bounds that slipped through), the batch is
folded again checking that customer's snapshot after each event, and the event
that breaks it is dead-lettered `internal_error`: the worker never stops on data.
Nothing here performs I/O; `BatchResult` says what the caller must make durable.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import setcontext
from typing import Protocol

from billing import bounds, ledger
from billing.admission import AdmissionPolicy, decide, dedupe_key, fingerprint, to_ms
from billing.catalog import Catalog
from billing.events import (
    AlertRaised,
    AlertResolved,
    CustomerStateChanged,
    EventRejected,
    Invoice,
    RejectReason,
)
from processors.fold.admission import Doors, Rejection
from processors.fold.records import CustomerRecord, SeenEntry, ms_to_datetime, tp_key
from streambill.wire import convert
from streambill.wire.codec import Codec
from streambill.wire.state_wire import StateEncoder

__all__ = [
    "BatchFolder",
    "BatchResult",
    "Output",
    "RecordView",
    "Rejection",
    "SourceMessage",
    "Topics",
    "merge_by_time",
]


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


class RecordView(Protocol):
    """Read access to the two tables as of the start of the batch."""

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None: ...

    def seen(self, key: str, partition: int) -> SeenEntry | None:
        """The entry of `billing.admission.dedupe_key(customer_id, event_id)`."""
        ...


@dataclass(slots=True)
class BatchResult:
    """What one batch changed. The caller makes `outputs` durable first, then
    `seen`, then `customers` (`processors.worker.commit.CommitOrder.carry_out` says why)."""

    outputs: list[Output] = field(default_factory=list)
    seen: dict[str, tuple[int, SeenEntry]] = field(default_factory=dict)  # by dedupe key
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


class BatchFolder:
    """Folds batches; holds only configuration (catalog, codec, policy, clock, the
    partition count of the input topics)."""

    def __init__(
        self,
        catalog: Catalog,
        codec: Codec,
        policy: AdmissionPolicy,
        topics: Topics,
        clock: Callable[[], datetime],
        partitions: int = 1,
    ) -> None:
        self._catalog = catalog
        self._next_catalog: Catalog | None = None
        self._codec = codec
        self._policy = policy
        self._topics = topics
        self._clock = clock
        self.doors = Doors(codec, topics.usage, topics.account, partitions)
        self._state_bytes = StateEncoder(codec).encode  # one snapshot per changed customer

    def use_catalog(self, catalog: Catalog) -> None:
        """Fold with `catalog` from the next batch on (any thread may call it): a batch
        is folded with one catalog. Safe at any batch boundary because a catalog only
        gains versions and a customer's pin names one (`billing.catalog.Catalog`)."""
        self._next_catalog = catalog

    def fold(self, messages: Iterable[SourceMessage], view: RecordView) -> BatchResult:
        if self._next_catalog is not None:
            self._catalog, self._next_catalog = self._next_catalog, None
        batch = list(messages)
        now_ms = to_ms(self._clock())
        old = bounds.enter()  # once per batch: the core's calls inside find it current
        try:
            out, broken = self._fold(batch, view, now_ms, frozenset())
            if broken:  # rare: fold again, checking those customers' snapshots per event
                out, broken = self._fold(batch, view, now_ms, frozenset(broken))
        finally:
            if old is not None:
                setcontext(old)
        return out

    def _fold(
        self,
        messages: Sequence[SourceMessage],
        view: RecordView,
        now_ms: int,
        suspects: frozenset[str],
    ) -> tuple[BatchResult, list[str]]:
        batch = _Batch(view)
        for message in messages:
            batch.out.counts["in"] += 1
            try:
                self._fold_one(message, batch, now_ms, suspects)
            except Rejection as rej:
                self._dead_letter(message, rej, batch)
        broken: list[str] = []
        for customer_id, (_, record) in batch.out.customers.items():
            record.state = self.settle(record)
            if customer_id not in batch.changed:
                continue  # only its watermark moved: the snapshot would be the same
            try:
                snapshot = self._state_bytes(self._snapshot(record))
            except Exception:  # see the module docstring: found and dead-lettered next
                broken.append(customer_id)
                batch.out.counts["snapshot_failed"] += 1
                continue
            batch.out.outputs.append(Output(self._topics.state, customer_id.encode(), snapshot))
        return batch.out, broken

    # ------------------------------------------------------------------ steps

    def _fold_one(
        self, message: SourceMessage, batch: _Batch, now_ms: int, suspects: frozenset[str]
    ) -> None:
        event = self.doors.read(message.topic, message.partition, message.key, message.value)
        customer_id = event.customer_id
        record = batch.customer(customer_id, message.partition)
        position = tp_key(message.topic, message.partition)
        last = record.offsets.get(position)  # `record.applied`, inlined (per event)
        if last is not None and message.offset <= last:
            batch.out.counts["redelivered"] += 1
            return
        event_ms = to_ms(event.timestamp)
        digest = fingerprint(event, event_ms)
        key = dedupe_key(customer_id, event.event_id)
        seen = batch.seen(key, message.partition)
        prior = None
        if seen is not None and not seen.same_message(
            message.topic, message.partition, message.offset
        ):
            prior = (lambda: seen.fingerprint == digest, seen.event_ms)
        watermark, refusal = decide(
            self._policy,
            message.topic == self._topics.usage,
            event_ms,
            record.watermark_ms,
            prior,
            now_ms,
        )
        if watermark != record.watermark_ms:
            record.watermark_ms = watermark
            batch.out.customers[customer_id] = (message.partition, record)
        if refusal is not None:
            if refusal.duplicate:
                batch.out.counts["deduplicated"] += 1
                return
            raise Rejection(refusal.reason or RejectReason.INVALID_FIELD, refusal.detail, event)
        try:
            new_state, effects = ledger.apply(record.state, event, self._catalog, remember=False)
            if customer_id in suspects and effects.rejection is None:
                trial = CustomerRecord(customer_id, new_state, record.offsets, record.watermark_ms)
                self._state_bytes(self._snapshot(trial))
        except Exception as exc:  # one event's failure, never the batch's
            raise Rejection(
                RejectReason.INTERNAL_ERROR, f"folding raised {type(exc).__name__}: {exc}", event
            ) from exc
        if effects.rejection is not None:
            rej = effects.rejection
            raise Rejection(RejectReason(rej.reason), rej.detail, event)
        record.state = new_state
        record.offsets[position] = message.offset
        batch.out.customers[customer_id] = (message.partition, record)
        batch.changed.add(customer_id)
        entry = SeenEntry(
            digest, message.topic, message.partition, message.offset, customer_id, event_ms
        )
        batch.out.seen[key] = (message.partition, entry)
        batch.out.counts["applied"] += 1
        out_key = customer_id.encode()
        for alert in effects.alerts:
            self._emit(batch.out, out_key, alert)
        for invoice in effects.invoices:
            self._emit(batch.out, out_key, invoice)

    def settle(self, record: CustomerRecord) -> ledger.CustomerState:
        """Bounded state between batches (see the module docstring); also what a
        rebuilt record starts from (`processors.reconcile.rebuild`)."""
        state = record.state
        if record.watermark_ms is not None:
            before = ms_to_datetime(record.watermark_ms - self._policy.max_lateness_ms)
            state = ledger.prune(state, before)
        return ledger.forget_ids(state)

    # ---------------------------------------------------------------- outputs

    def snapshot_bytes(self, record: CustomerRecord) -> bytes:
        """The customer-state value the worker publishes for `record`."""
        return self._state_bytes(self._snapshot(record))

    def _snapshot(self, record: CustomerRecord) -> CustomerStateChanged:
        """The customer as of the latest event time its state applied (account events
        included): a function of the state alone, so the latest snapshot is the same
        whatever the batches were (the watermark also moves on rejected usage)."""
        updated = record.state.updated_at
        return ledger.snapshot(
            record.state,
            self._catalog,
            source_offsets=record.offsets,
            as_of=updated if updated is not None else ms_to_datetime(0),
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
            original=message.value or b"",  # a tombstone has no bytes
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


class _Batch:
    """Reads through to the tables, but sees this batch's own writes first."""

    def __init__(self, view: RecordView) -> None:
        self.view = view
        self.out = BatchResult()
        self.changed: set[str] = set()  # customers with an event applied: a snapshot each
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

    def seen(self, key: str, partition: int) -> SeenEntry | None:
        pending = self.out.seen.get(key)
        return pending[1] if pending is not None else self.view.seen(key, partition)
