"""The projector: customer-state, billing-alerts and invoices -> Redis read models.

Commit order, per batch (the loop in `Projector.run`):
  1. Consume up to `batch_size` records (confluent-kafka, `enable.auto.commit=false`).
     Kafka's group offsets are never used to resume: the positions stored in Redis
     are, because they live next to the data they describe.
  2. Check the generation sentinel in Redis. Missing or changed means the read models
     were lost (FLUSHALL, a new Redis) or rebuilt: drop the batch, start or adopt the
     new generation and seek every assigned partition to its stored position of that
     generation, i.e. to the beginning after a loss. Then go back to 1.
  3. Decode each record into a `Write`. A record that does not decode or does not
     belong on its topic is logged, counted and skipped; it stays in the topic, and
     skipping it is deterministic, so a rebuild skips it too.
  4. Apply the writes: one Lua script per write stores the data and its source offset
     atomically, and skips a write at or below the customer's stored offset.
  5. Advance each partition's position (next offset) in Redis.
  6. Commit the positions of 5 to Kafka, in the projector's own group (asynchronous),
     so `kafka-consumer-groups --describe` shows the projector's lag. Display only:
     nothing ever resumes from these offsets. With metrics (`ProjectorMetrics`), the
     positions stored in Redis and the consumer's cached high watermarks give the lag
     gauges, after every batch and at least every `LAG_INTERVAL` seconds when idle.

What a crash does:
  - before 4: nothing was written; the restart resumes at the stored position and
    reads the batch again.
  - inside 4: a prefix of the writes is stored with its offsets; on replay those
    are skipped and the rest applied.
  - between 4 and 5: all data is stored, the position lags; replay skips everything.
  - between 5 and 6 (or a commit the broker refused, e.g. during a rebalance): the read
    models and positions are complete; only the lag Kafka displays is stale (too
    high). The restart resumes at the Redis positions as always, and commits them
    again as soon as the partitions are assigned (`_on_assign`), which corrects the
    display even for a partition that receives nothing new.
  - after 6: resumes right after the batch.
  - Redis loses data while we run: noticed at step 2 of the next batch (or within one
    idle poll); writes that landed in the emptied Redis carry the old generation and
    are wiped when the replay first touches their customer (see `store`). The offsets
    in Kafka stay where they were until the replay's batches commit lower ones, so
    until then the display shows less lag than there is.
  - Redis loses data while we are down: no generation on start, so every partition
    is read from the beginning.
On partition assignment each partition starts at its stored position (or the
beginning), whatever Kafka holds for the group. Committed offsets only ever repeat
positions Redis already recorded, so at-least-once plus the stored offsets gives
exactly the state of the log, whatever the redeliveries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from projections.read.metrics import ProjectorMetrics
from projections.read.model import Source, UnexpectedRecord, Write, to_write
from projections.read.store import ReadModelStore

log = logging.getLogger(__name__)

LAG_INTERVAL = 1.0  # seconds between lag updates of an idle projector (with metrics)

Decoder = Callable[[bytes], object]


class RecordLike(Protocol):
    """The part of a confluent-kafka `Message` the projector reads."""

    def error(self) -> Any: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def value(self) -> bytes | None: ...


@dataclass
class Counters:
    consumed: int = 0
    applied: int = 0
    skipped_duplicate: int = 0
    skipped_bad: int = 0
    resets: int = 0
    by_partition: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass
class BatchCounts:
    """What one `BatchApplier.apply` did: writes stored per physical topic, records
    skipped per reason (`duplicate`, `undecodable`)."""

    applied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


class BatchApplier:
    """Steps 3-5 for one batch: decode, apply with offsets, advance positions.

    Shared by the live projector and `rebuild`, so both apply records identically.
    `logical` maps physical topic names to the logical ones stored in Redis."""

    def __init__(
        self,
        store: ReadModelStore,
        decode: Decoder,
        bad_record_errors: tuple[type[Exception], ...],
        logical: Mapping[str, str],
    ) -> None:
        self.store = store
        self.decode = decode
        self.bad_record_errors: tuple[type[Exception], ...] = (
            *bad_record_errors,
            UnexpectedRecord,
        )
        self.logical = dict(logical)
        self.counters = Counters()
        self.last = BatchCounts()  # of the latest `apply`

    def apply(self, generation: str, records: Sequence[RecordLike]) -> dict[tuple[str, int], int]:
        """Steps 3-5; returns the positions advanced: (physical topic, partition) -> next
        offset, each already stored in Redis."""
        writes: list[Write] = []
        topics: list[str] = []  # the physical topic of each write
        next_offsets: dict[tuple[str, int], int] = {}
        advanced: dict[tuple[str, int], int] = {}
        bad_before = self.counters.skipped_bad
        for record in records:
            topic, partition, offset = record.topic(), record.partition(), record.offset()
            if record.error() is not None or topic is None or partition is None or offset is None:
                log.warning("projector: consumer error %s", record.error())
                continue
            self.counters.consumed += 1
            source = Source(self.logical[topic], partition, offset)
            next_offsets[(source.topic, partition)] = offset + 1
            advanced[(topic, partition)] = offset + 1
            write = self._to_write(record.value(), source)
            if write is not None:
                writes.append(write)
                topics.append(topic)
        results = self.store.apply(generation, writes)
        applied = sum(results)
        self.counters.applied += applied
        self.counters.skipped_duplicate += len(results) - applied
        self.last = BatchCounts(
            {},
            {
                "duplicate": len(results) - applied,
                "undecodable": self.counters.skipped_bad - bad_before,
            },
        )
        for topic, stored in zip(topics, results, strict=True):
            if stored:
                self.last.applied[topic] = self.last.applied.get(topic, 0) + 1
        for (topic, partition), nxt in next_offsets.items():
            self.store.advance(generation, topic, partition, nxt)
            self.counters.by_partition[(topic, partition)] = nxt
        return advanced

    def _to_write(self, value: bytes | None, source: Source) -> Write | None:
        try:
            if value is None:
                raise UnexpectedRecord("empty value")
            return to_write(self.decode(value), source)
        except self.bad_record_errors as exc:
            self.counters.skipped_bad += 1
            log.warning(
                "projector: skipping %s/%d@%d: %s",
                source.topic,
                source.partition,
                source.offset,
                exc,
            )
            return None


class Projector:
    """The live loop (see the module docstring for its commit order). `metrics`, if
    given, is told of every non-empty batch, every reset, and the lag of every
    assigned partition with a stored position; `clock` times batches, `wall` stamps
    them (unix time)."""

    def __init__(
        self,
        consumer: Consumer,
        applier: BatchApplier,
        *,
        batch_size: int = 500,
        poll_timeout: float = 0.2,
        metrics: ProjectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.consumer = consumer
        self.applier = applier
        self.metrics = metrics
        self.clock = clock
        self.wall = wall
        self.store = applier.store
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.generation = ""
        self.assigned: set[tuple[str, int]] = set()
        # Step 6's backlog: positions stored in Redis, not yet handed to Kafka.
        self.uncommitted: dict[tuple[str, int], int] = {}
        # Every assigned partition's position stored in Redis (none yet for one that
        # starts at the beginning): what the lag gauges are measured from.
        self.positions: dict[tuple[str, int], int] = {}
        self._lag_at = float("-inf")  # `clock` of the last lag update

    def subscribe(self) -> None:
        self.consumer.subscribe(
            sorted(self.applier.logical), on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _start_offsets(self, partitions: Iterable[tuple[str, int]]) -> list[TopicPartition]:
        """Stored positions of the current generation; the beginning where none."""
        wanted = list(partitions)
        out: list[TopicPartition] = []
        for topic in {t for t, _ in wanted}:
            numbers = [p for t, p in wanted if t == topic]
            stored = self.store.positions(self.generation, self.applier.logical[topic], numbers)
            for p in numbers:
                out.append(TopicPartition(topic, p, stored.get(p, OFFSET_BEGINNING)))
        return out

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.generation = self.store.ensure_generation()
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        start = self._start_offsets((tp.topic, tp.partition) for tp in partitions)
        log.info("projector: assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in start])
        consumer.assign(start)
        # Kafka may hold older offsets (a crash between steps 5 and 6): show the stored ones.
        stored = {(tp.topic, tp.partition): tp.offset for tp in start if tp.offset >= 0}
        self.uncommitted.update(stored)
        self.positions.update(stored)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned -= revoked
        for key in revoked:  # the next owner commits (and reports) its own positions
            self.uncommitted.pop(key, None)
            self.positions.pop(key, None)
            if self.metrics is not None:
                self.metrics.forget(*key)

    def _commit_positions(self) -> None:
        """Step 6: hand the stored positions to Kafka for display. A commit refused at
        once is tried again with the next step; one the broker refuses later
        (`_commit_done`) leaves only the displayed lag stale until the partition's next
        batch or assignment."""
        if not self.uncommitted:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(self.uncommitted.items())]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.info("projector: offsets not committed to Kafka (display only): %s", exc)
            return
        self.uncommitted.clear()

    def _report(self, metrics: ProjectorMetrics, records: int, started: float) -> None:
        """A non-empty batch to `metrics`; then, after one or `LAG_INTERVAL` after the
        last update, the lag of every position stored in Redis against the high
        watermark the consumer's last fetch of the partition reported (local, no
        broker round trip). A partition not fetched yet has no high watermark and
        keeps its previous value."""
        now = self.clock()
        if records:
            last = self.applier.last
            metrics.record_batch(last.applied, last.skipped, now - started, self.wall())
        elif now - self._lag_at < LAG_INTERVAL:
            return
        self._lag_at = now
        for (topic, partition), position in sorted(self.positions.items()):
            try:
                watermarks = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if watermarks is not None and watermarks[1] >= 0:
                metrics.record_position(topic, partition, position, watermarks[1])

    def _generation_changed(self) -> bool:
        return bool(self.assigned) and self.store.generation() != self.generation

    def _reset(self) -> None:
        """Step 2: the read models were lost or rebuilt; adopt the generation, reseek."""
        self.generation = self.store.ensure_generation()
        self.applier.counters.resets += 1
        if self.metrics is not None:
            self.metrics.record_reset()
        targets = self._start_offsets(self.assigned)
        self.uncommitted = {(tp.topic, tp.partition): tp.offset for tp in targets if tp.offset >= 0}
        self.positions = dict(self.uncommitted)
        if self.metrics is not None:  # from the beginning again: no stale lag shown
            for key in self.assigned - self.positions.keys():
                self.metrics.forget(*key)
        log.warning("projector: read models lost or rebuilt; reseeking %d partitions", len(targets))
        for tp in targets:
            try:
                self.consumer.seek(tp)
            except KafkaException:
                # Not yet fetching: an assign with explicit offsets works in any state.
                self.consumer.assign(targets)
                return

    def step(self) -> int:
        """One iteration of the loop; returns the number of records consumed."""
        records = self.consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
        started = self.clock()
        if self._generation_changed():
            self._reset()
            return 0
        if records:
            advanced = self.applier.apply(self.generation, records)
            self.uncommitted.update(advanced)
            self.positions.update(advanced)
        self._commit_positions()
        if self.metrics is not None:
            self._report(self.metrics, len(records), started)
        return len(records)

    def run(self, stop: threading.Event) -> None:
        self.subscribe()
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.consumer.close()


# A SIGKILLed projector keeps its partitions until the broker gives up on its
# session: librdkafka's default (45 s) made a restarted projector wait that long
# before it could rejoin and catch up. Heartbeats every 2 s keep a live one well
# inside the 10 s; the broker's group.min.session.timeout.ms (default 6 s) allows it.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 2_000


def _commit_done(error: object, partitions: list[TopicPartition]) -> None:
    """The broker's answer to step 6; a refusal leaves only the displayed lag stale."""
    if error is not None:
        log.info("projector: Kafka refused the display offsets of %d partitions: %s",
                 len(partitions), error)  # fmt: skip


def consumer_config(group_id: str) -> dict[str, Any]:
    """confluent-kafka settings of the projector (added to the settings' base config).
    Offsets are committed by the projector itself (step 6), never automatically."""
    return {
        "group.id": group_id,
        "enable.auto.commit": False,
        "on_commit": _commit_done,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
    }
