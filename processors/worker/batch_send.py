"""Producing the worker's writes: many records at once, on librdkafka's threads.

The worker writes a few thousand records per batch (effects, `seen` entries,
customer records). They go through a confluent-kafka (librdkafka) producer of its
own, `Writer`, not through Faust's aiokafka producer: aiokafka's sender runs on
the app's event loop, one request per broker at a time, so while the loop folds
the next batch (tens of ms of CPU) a finished batch's snapshots sat unsent and
its acks unread. librdkafka's threads put records on the wire and read the acks
whatever the loop is doing; the loop reads their delivery reports (one per
record, `_Group` counts them per topic-partition) whenever it is free.

Durability is what it was: the producer is idempotent with acks=all, so a
partition's records are written in order, once, and a record is durable when its
delivery report says so. `Sent.wait()` raises if any record failed (the caller
must then not acknowledge anything).

Records without an explicit partition are placed by the runtime's partitioner
(`Runtime.partition_for`: murmur2 of the key, as Faust's producer would), so keyed
effects land where they always did (librdkafka's own default partitioner differs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

Row = tuple[str, int | None, bytes | None, bytes | None]  # topic, partition, key, value
Groups = dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]]


@dataclass(slots=True)
class Sent:
    """Futures of the queued records, one per topic-partition with its record count."""

    futures: list[tuple[asyncio.Future[Any], int]] = field(default_factory=list)

    async def wait(self) -> dict[tuple[str, int], int]:
        """Wait for every record; return the highest offset written per (topic,
        partition). Raises if any record failed (the caller must not ack)."""
        if not self.futures:
            return {}
        metas = await asyncio.gather(*(f for f, _ in self.futures))
        last: dict[tuple[str, int], int] = {}
        for meta, (_, count) in zip(metas, self.futures, strict=True):
            key = (meta.topic, meta.partition)
            last[key] = max(last.get(key, -1), meta.offset + count - 1)
        return last


Placed = dict[tuple[str, bytes | None], int]
Place = Callable[[str, bytes | None], Awaitable[int]]
PLACED_MAX = 200_000  # entries; then forgotten at once (a bounded memo)


async def group_rows(place: Place, rows: Iterable[Row], placed: Placed) -> Groups:
    """`rows` by topic-partition, in order; `place(topic, key)` is the runtime's
    partitioner for rows without a partition (`Runtime.partition_for`). `placed`
    remembers placements by (topic, key): murmur2 in Python costs more than
    producing the record, and the same customers come back batch after batch."""
    groups: Groups = {}
    for topic, partition, key, value in rows:
        if partition is None:
            partition = placed.get((topic, key))
            if partition is None:
                partition = await _place(place, topic, key, placed)
        groups.setdefault((topic, partition), []).append((key, value))
    return groups


async def _place(place: Place, topic: str, key: bytes | None, placed: Placed) -> int:
    partition = await place(topic, key)
    if key is None:  # placed at random: not remembered
        return partition
    if len(placed) >= PLACED_MAX:
        placed.clear()
    placed[(topic, key)] = partition
    return partition


@dataclass(frozen=True, slots=True)
class Meta:
    """Where a group of records starts (as aiokafka's RecordMetadata has it)."""

    topic: str
    partition: int
    offset: int


class _Group:
    """Counts the delivery reports of one topic-partition's records of a batch."""

    __slots__ = ("count", "future", "last", "partition", "remaining", "topic")

    def __init__(
        self, future: asyncio.Future[Meta], topic: str, partition: int, count: int
    ) -> None:
        self.future, self.topic, self.partition = future, topic, partition
        self.count = self.remaining = count
        self.last = -1

    def delivered(self, err: KafkaError | None, msg: Any) -> None:
        if self.future.done():  # failed already, or nobody waits any more
            return
        if err is not None:
            self.future.set_exception(KafkaException(err))
            return
        offset = msg.offset()
        if offset > self.last:
            self.last = offset
        self.remaining -= 1
        if self.remaining == 0:  # `Sent.wait` reads offset + count - 1 as the last one
            self.future.set_result(Meta(self.topic, self.partition, self.last - self.count + 1))


class Writer:
    """An idempotent librdkafka producer. Its delivery reports are served on the
    event loop it was created on (`poll` while records are pending), so they
    resolve futures without a thread fighting the folding loop for the GIL."""

    poll_interval_s = 0.001

    def __init__(self, config: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self._producer = Producer(
            {
                **config,
                "enable.idempotence": True,  # implies acks=all, in order, no duplicates
                "acks": "all",
                "linger.ms": 1,
                "batch.size": 1024 * 1024,
            }
        )
        self._loop = loop
        self._pending = 0  # groups not yet fully reported
        self._polling: asyncio.TimerHandle | None = None

    def queue(self, groups: Groups) -> Sent:
        """Hand `groups` to librdkafka (returns at once; nothing is durable until
        `Sent.wait()`)."""
        sent = Sent()
        produce = self._producer.produce
        for (topic, partition), records in groups.items():
            future: asyncio.Future[Meta] = self._loop.create_future()
            future.add_done_callback(self._reported)
            report = _Group(future, topic, partition, len(records)).delivered
            for key, value in records:
                while True:
                    try:
                        produce(topic, value, key, partition=partition, on_delivery=report)
                        break
                    except BufferError:  # local queue full: serve reports, then retry
                        self._producer.poll(0.01)
            self._pending += 1
            sent.futures.append((future, len(records)))
        self._schedule()
        return sent

    def _reported(self, _: asyncio.Future[Meta]) -> None:
        self._pending -= 1

    def _schedule(self) -> None:
        if self._pending and self._polling is None:
            self._polling = self._loop.call_later(self.poll_interval_s, self._poll)

    def _poll(self) -> None:
        self._polling = None
        self._producer.poll(0)  # runs the delivery reports here, on the loop
        self._schedule()

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to `timeout` for what is queued (reports served by the caller)."""
        if self._polling is not None:
            self._polling.cancel()
            self._polling = None
        self._producer.flush(timeout)
