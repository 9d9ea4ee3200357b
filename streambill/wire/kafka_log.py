"""`LogPort` over Apache Kafka with confluent-kafka.

Reads assign partitions explicitly (no consumer group membership, nothing
committed: every reader is a bounded replay; the close records its own position in
PeriodClosed) and fetch in batches with `consume(num_messages=...)`. Writes use an
idempotent producer with `acks=all`: broker-side retries cannot duplicate a record
within one producer session, and `flush()` raises unless every record was
acknowledged by all in-sync replicas.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streambill.wire.log import LogRecord, TopicMissing

_NOT_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class LogError(Exception):
    """The log could not be read or written (broker down, record not acknowledged)."""


class TopicAbsent(LogError, TopicMissing):
    """The topic does not exist."""


class KafkaLog:
    """`LogPort` adapter; `config` is `settings.kafka_config()` (bootstrap, security)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        batch_size: int = 5000,
        timeout_s: float = 30.0,
    ) -> None:
        self._config = dict(config)
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._consumer: Any = None
        self._producer: Any = None
        self._errors: list[str] = []

    # ----------------------------------------------------------------- reading
    def _c(self) -> Any:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self._config,
                    "group.id": "streambill-period-close",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "error",
                    "enable.partition.eof": False,
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "max.partition.fetch.bytes": 8 * 1024 * 1024,
                    "queued.min.messages": 200000,
                }
            )
        return self._consumer

    def partitions(self, topic: str) -> list[int]:
        meta = self._c().list_topics(topic, timeout=self._timeout_s)
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise TopicAbsent(f"topic {topic!r} does not exist (run `streambill topics create`)")
        return sorted(info.partitions)

    def watermarks(self, topic: str) -> tuple[dict[int, int], dict[int, int]]:
        low: dict[int, int] = {}
        high: dict[int, int] = {}
        for p in self.partitions(topic):
            low[p], high[p] = self._watermark(topic, p)
        return low, high

    def _watermark(self, topic: str, p: int) -> tuple[int, int]:
        """One partition's watermarks; a retriable broker error (a leader not yet
        elected on a new topic, a leader moving) is asked again until `timeout_s`."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                lo, hi = self._c().get_watermark_offsets(
                    TopicPartition(topic, p), timeout=self._timeout_s, cached=False
                )
                return int(lo), int(hi)
            except KafkaException as exc:
                error = exc.args[0]
                retriable = isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in _NOT_YET
                )
                if not retriable or time.monotonic() >= deadline:
                    raise LogError(f"watermarks of {topic}[{p}]: {exc}") from exc
                time.sleep(0.2)

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        tps = [TopicPartition(topic, p, timestamp_ms) for p in self.partitions(topic)]
        try:
            found = self._c().offsets_for_times(tps, timeout=self._timeout_s)
        except KafkaException as exc:
            raise LogError(f"offsets_for_times on {topic}: {exc}") from exc
        return {tp.partition: int(tp.offset) for tp in found}

    def read(
        self,
        topic: str,
        starts: Mapping[int, int],
        ends: Mapping[int, int],
        keys: frozenset[bytes] | None = None,
    ) -> Iterator[list[LogRecord]]:
        pending = {p: ends[p] for p, s in starts.items() if s < ends.get(p, s)}
        if not pending:
            return
        consumer = self._c()
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in pending])
        try:
            yield from self._drain(consumer, topic, pending, keys, dict(starts))
        finally:
            consumer.unassign()

    def _drain(
        self,
        consumer: Any,
        topic: str,
        pending: dict[int, int],
        keys: frozenset[bytes] | None,
        position: dict[int, int],
    ) -> Iterator[list[LogRecord]]:
        """`consume` waits for its whole `num_messages` until the timeout, so it never
        asks for more than the range still holds: the last batch of a range would
        otherwise cost a full timeout (fewer records remain on a compacted topic;
        then the timeout and `_settle_compacted` end the range as before)."""
        idle_since = time.monotonic()
        while pending:
            left = sum(end - position[p] for p, end in pending.items())
            messages = consumer.consume(
                num_messages=max(1, min(self._batch_size, left)), timeout=0.5
            )
            batch: list[LogRecord] = []
            for m in messages:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise LogError(f"reading {topic}: {err}")
                p, off = m.partition(), m.offset()
                end = pending.get(p)
                if end is None or off >= end:
                    continue  # beyond the watermark: belongs to a later close
                key = m.key()
                if keys is None or key in keys:
                    ts = m.timestamp()[1]
                    batch.append(LogRecord(topic, p, off, key, m.value(), ts))
                position[p] = off + 1
                if off >= end - 1:
                    del pending[p]
            if batch:
                yield batch
            if messages:
                idle_since = time.monotonic()
                continue
            self._settle_compacted(consumer, topic, pending)
            if pending and time.monotonic() - idle_since > self._timeout_s:
                raise LogError(
                    f"reading {topic}: no data for {self._timeout_s}s, still need"
                    f" {pending} (broker down?)"
                )

    @staticmethod
    def _settle_compacted(consumer: Any, topic: str, pending: dict[int, int]) -> None:
        """On a compacted topic the last offsets below the watermark may be gone; a
        position at or past the end means the partition is done."""
        for tp in consumer.position([TopicPartition(topic, p) for p in list(pending)]):
            if tp.offset >= 0 and tp.offset >= pending[tp.partition]:
                del pending[tp.partition]

    # ----------------------------------------------------------------- writing
    def _p(self) -> Any:
        if self._producer is None:
            self._producer = Producer(
                {
                    **self._config,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 20,
                    # Java clients' partitioner: keys land where every other client puts them.
                    "partitioner": "murmur2_random",
                }
            )
        return self._producer

    def prepare_writes(self) -> None:
        # Creating the producer starts its connection and producer-id request in
        # librdkafka's threads; poll(0) serves any callback without waiting.
        self._p().poll(0)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def produce(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        producer = self._p()
        while True:
            try:
                extra = {"timestamp": timestamp_ms} if timestamp_ms else {}
                producer.produce(
                    topic, value=value, key=key, on_delivery=self._on_delivery, **extra
                )
                return
            except BufferError:
                producer.poll(0.1)

    def flush(self) -> None:
        if self._producer is None:
            return
        remaining = self._producer.flush(self._timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise LogError(f"{remaining} record(s) not delivered; errors: {errors[:5]}")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(self._timeout_s)
            self._producer = None
