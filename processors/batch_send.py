"""Producing many records at once: whole record batches per topic-partition.

The worker writes a few thousand records per batch (effects, `seen` entries,
customer records). Sending them one by one costs an awaited coroutine and a
partitioner call each; here records are grouped by topic-partition, packed into
aiokafka `BatchBuilder`s and handed over with one `send_batch` per full batch.
Order within a topic-partition is kept (batches of one partition are queued in
order and aiokafka delivers them in order).

Records without an explicit partition are placed by the producer's own
partitioner (murmur2 of the key, like `send` would), so keyed effects land where
they always did. The caller awaits `Sent.wait()` for durability (acks=all).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Row = tuple[str, int | None, bytes | None, bytes | None]  # topic, partition, key, value


@dataclass(slots=True)
class Sent:
    """Futures of the queued batches and the last offset each will end at."""

    futures: list[tuple[asyncio.Future[Any], int]] = field(default_factory=list)

    async def wait(self) -> dict[tuple[str, int], int]:
        """Wait for every batch; return the highest offset written per (topic,
        partition). Raises if any batch failed (the caller must not ack)."""
        if not self.futures:
            return {}
        metas = await asyncio.gather(*(f for f, _ in self.futures))
        last: dict[tuple[str, int], int] = {}
        for meta, (_, count) in zip(metas, self.futures, strict=True):
            key = (meta.topic, meta.partition)
            last[key] = max(last.get(key, -1), meta.offset + count - 1)
        return last


async def send_rows(producer: Any, rows: Iterable[Row]) -> Sent:
    """Queue `rows` (aiokafka producer) in as few batches as possible; returns
    at once with the futures (nothing is durable until `Sent.wait()`)."""
    groups: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    partitions: dict[str, list[int]] = {}
    for topic, partition, key, value in rows:
        if partition is None:
            parts = partitions.get(topic)
            if parts is None:
                parts = partitions[topic] = sorted(await producer.partitions_for(topic))
            # The producer's configured partitioner: what `send` would pick.
            partition = int(producer._partitioner(key, parts, parts))
        groups.setdefault((topic, partition), []).append((key, value))
    sent = Sent()
    for (topic, partition), records in groups.items():
        batch, count = producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                if count == 0:  # a single record larger than a batch
                    raise ValueError(f"record for {topic}/{partition} exceeds the batch size")
                await _queue(producer, sent, batch, count, topic, partition)
                batch, count = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"record for {topic}/{partition} exceeds the batch size")
            count += 1
        if count:
            await _queue(producer, sent, batch, count, topic, partition)
    return sent


async def _queue(
    producer: Any, sent: Sent, batch: Any, count: int, topic: str, partition: int
) -> None:
    future = await producer.send_batch(batch, topic, partition=partition)
    sent.futures.append((future, count))
