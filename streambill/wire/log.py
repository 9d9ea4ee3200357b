"""The port to the log for bounded replays, and its in-memory adapter.

The close, reconcile, `export`, the catalog commands and the catalog loader read
ranges of partitions and write records; that is all they need from Kafka. `LogPort`
is that need as a `typing.Protocol`; `InMemoryLog` implements it
over Python lists (scenario tests, `streambill simulate`-like runs) and
`streambill.wire.kafka_log.KafkaLog` over confluent-kafka. Both pass the same contract
suite (`tests/contract/log_contract.py`).

Offsets are Kafka's: per partition, the first record is at the low watermark, the
next record to be written at the high watermark. Timestamps are milliseconds since
the epoch (the producer sets them to the event time).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from streambill.wire.partitioner import owner


class TopicMissing(Exception):
    """The topic does not exist (adapters raise it, or a subclass of it, from
    `partitions` and `watermarks`)."""


class LogRecord(NamedTuple):
    """One record read from the log. A NamedTuple rather than a frozen dataclass: one
    is built per record read (a million per close), and it costs a third as much."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


class LogPort(Protocol):
    """What a period close needs from the log. `topic` is the physical name."""

    def partitions(self, topic: str) -> list[int]:
        """Partition ids of `topic`, ascending."""
        ...

    def watermarks(self, topic: str) -> tuple[dict[int, int], dict[int, int]]:
        """(low, high) offsets per partition, as of now."""
        ...

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is >= `timestamp_ms`, or -1."""
        ...

    def read(
        self,
        topic: str,
        starts: Mapping[int, int],
        ends: Mapping[int, int],
        keys: frozenset[bytes] | None = None,
    ) -> Iterator[list[LogRecord]]:
        """Every record of [starts[p], ends[p]) for each partition in `starts`, in
        offset order within a partition, in batches. With `keys`, only records whose
        key is in it (the others are skipped without being handed out)."""
        ...

    def prepare_writes(self) -> None:
        """Start whatever writing needs in the background (the Kafka adapter's
        idempotent producer takes ~0.5 s to get its producer id), so the first
        `produce` + `flush` does not wait for it. Optional to call; idempotent."""
        ...

    def produce(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        """Queue one record (partitioned by key); `timestamp_ms` 0 means "now"."""
        ...

    def flush(self) -> None:
        """Block until every queued record is durably written; raise if any was not."""
        ...


def partition_for(key: bytes, partitions: int) -> int:
    """The documented partitioner (`streambill.wire.partitioner.owner`), as Kafka's is."""
    return owner(key, partitions)


@dataclass
class InMemoryLog:
    """`LogPort` over lists: one list of records per (topic, partition)."""

    partition_count: int = 3
    topics: dict[str, list[list[LogRecord]]] = field(default_factory=dict)
    low: dict[tuple[str, int], int] = field(default_factory=dict)
    batch_size: int = 500

    def _parts(self, topic: str) -> list[list[LogRecord]]:
        return self.topics.setdefault(topic, [[] for _ in range(self.partition_count)])

    def partitions(self, topic: str) -> list[int]:
        return list(range(len(self._parts(topic))))

    def watermarks(self, topic: str) -> tuple[dict[int, int], dict[int, int]]:
        parts = self._parts(topic)
        low = {p: self.low.get((topic, p), 0) for p in range(len(parts))}
        return low, {p: len(records) for p, records in enumerate(parts)}

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        out: dict[int, int] = {}
        for p, records in enumerate(self._parts(topic)):
            start = self.low.get((topic, p), 0)
            hit = next((r.offset for r in records[start:] if r.timestamp_ms >= timestamp_ms), -1)
            out[p] = hit
        return out

    def read(
        self,
        topic: str,
        starts: Mapping[int, int],
        ends: Mapping[int, int],
        keys: frozenset[bytes] | None = None,
    ) -> Iterator[list[LogRecord]]:
        parts = self._parts(topic)
        for p in sorted(starts):
            lo = max(starts[p], self.low.get((topic, p), 0))
            chunk = parts[p][lo : ends.get(p, lo)]
            for i in range(0, len(chunk), self.batch_size):
                batch = chunk[i : i + self.batch_size]
                if keys is not None:
                    batch = [r for r in batch if r.key in keys]
                if batch:
                    yield batch

    def prepare_writes(self) -> None:
        return None

    def produce(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        parts = self._parts(topic)
        p = partition_for(key, len(parts))
        parts[p].append(LogRecord(topic, p, len(parts[p]), key, value, timestamp_ms))

    def flush(self) -> None:
        return None

    def delete_before(self, topic: str, partition: int, offset: int) -> None:
        """Simulate retention: records below `offset` are gone."""
        self.low[(topic, partition)] = offset
