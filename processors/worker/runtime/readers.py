"""The worker's own reads of the log, with plain aiokafka consumers that never join
the group nor commit: a partition's account-events backlog and the group's
committed offsets (`processors.worker.catch_up`), a range Faust skipped, and the
watchdog's lag (committed and end offsets, `processors.worker.watchdog`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from processors.fold.batch import SourceMessage
from processors.worker.ports import Partition


async def account_backlog(
    bootstrap_servers: str,
    group_id: str,
    topic: str,
    partitions: Iterable[int],
    also_committed: str,
    timeout_s: float = 60.0,
    client: Mapping[str, Any] | None = None,
) -> tuple[list[SourceMessage], dict[tuple[str, int], int]]:
    """Messages of `topic` in `partitions` between the group's committed offset
    (the beginning if none) and the end offset as of now, in offset order; and the
    group's committed offsets of `topic` and `also_committed` in `partitions`, raised
    to each log's start offset, the log start where none (where the stream will
    resume; see `OffsetOrder`)."""
    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    others = [TopicPartition(also_committed, p) for p in sorted(set(partitions))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=group_id,  # only to read its committed offsets: never subscribes
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(client or {}),
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        pending: set[TopicPartition] = set()
        starts: dict[tuple[str, int], int] = {}
        firsts = await consumer.beginning_offsets([*tps, *others])
        for tp in [*tps, *others]:
            offset = await consumer.committed(tp)
            # Nothing committed: the stream starts at the log start ("earliest");
            # retention may have deleted the messages after an old commit.
            starts[(tp.topic, tp.partition)] = max(offset or 0, firsts[tp])
        for tp in tps:
            consumer.seek(tp, starts[(tp.topic, tp.partition)])
            if await consumer.position(tp) < ends[tp]:
                pending.add(tp)
        return await _read_until(consumer, pending, ends, timeout_s), starts
    finally:
        await consumer.stop()


async def read_range(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    start: int,
    end: int,
    timeout_s: float = 60.0,
    client: Mapping[str, Any] | None = None,
) -> list[SourceMessage]:
    """The messages of one partition with start <= offset < end, in offset order (from
    the log start if retention deleted some), read with a plain consumer that never
    joins a group nor commits."""
    tp = TopicPartition(topic, partition)
    return await _read_partition(bootstrap_servers, tp, start, end, timeout_s, client)


async def read_all(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    timeout_s: float = 60.0,
    client: Mapping[str, Any] | None = None,
) -> list[SourceMessage]:
    """Every message of one partition from its log start up to its end offset as of
    now, in offset order, read with a plain consumer that never joins a group."""
    tp = TopicPartition(topic, partition)
    return await _read_partition(bootstrap_servers, tp, 0, None, timeout_s, client)


async def _read_partition(
    bootstrap_servers: str,
    tp: TopicPartition,
    start: int,
    end: int | None,
    timeout_s: float,
    client: Mapping[str, Any] | None,
) -> list[SourceMessage]:
    """[max(start, log start), end) of `tp`; `end` None: its end offset now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","), enable_auto_commit=False, **(client or {})
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        if end is None:
            end = (await consumer.end_offsets([tp]))[tp]
        start = max(start, (await consumer.beginning_offsets([tp]))[tp])
        if start >= end:
            return []
        consumer.seek(tp, start)
        return await _read_until(consumer, {tp}, {tp: end}, timeout_s)
    finally:
        await consumer.stop()


async def _read_until(
    consumer: AIOKafkaConsumer,
    pending: set[TopicPartition],
    ends: dict[TopicPartition, int],
    timeout_s: float,
) -> list[SourceMessage]:
    """From each partition's position up to (excluding) its end offset."""
    out: list[SourceMessage] = []
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sorted(map(str, pending))} not read in {timeout_s} s")
        fetched = await consumer.getmany(*pending, timeout_ms=500)
        for tp, records in fetched.items():
            for r in records:
                if r.offset < ends[tp]:
                    out.append(_message(tp, r))
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return out


def _message(tp: TopicPartition, r: ConsumerRecord[bytes, bytes]) -> SourceMessage:
    return SourceMessage(
        topic=tp.topic,
        partition=tp.partition,
        offset=r.offset,
        timestamp_ms=r.timestamp,
        key=r.key,
        value=r.value if r.value is not None else b"",
    )


class AiokafkaLog:
    """The port's `LogReader` for one group (its committed offsets are read, never written)."""

    def __init__(self, bootstrap_servers: str, group_id: str, client: Mapping[str, Any]) -> None:
        self._servers, self._group, self._client = bootstrap_servers, group_id, client

    async def account_backlog(
        self, topic: str, partitions: Iterable[int], also_committed: str
    ) -> tuple[list[SourceMessage], dict[tuple[str, int], int]]:
        return await account_backlog(
            self._servers,
            self._group,
            topic,
            partitions,
            also_committed=also_committed,
            client=self._client,
        )

    async def read_range(
        self, topic: str, partition: int, start: int, stop: int
    ) -> list[SourceMessage]:
        return await read_range(self._servers, topic, partition, start, stop, client=self._client)

    async def read_all(self, topic: str, partition: int) -> list[SourceMessage]:
        return await read_all(self._servers, topic, partition, client=self._client)


class GroupLag:
    """End offsets and the group's committed offsets, read with a plain consumer
    (the port's `LagReader`; created and used on the watchdog's own loop)."""

    def __init__(self, bootstrap_servers: str, group_id: str, **client: object) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers.split(","),
            group_id=group_id,  # only to read committed offsets: never subscribes
            enable_auto_commit=False,
            **client,
        )
        self._started = False

    async def read(self, tps: Iterable[Partition]) -> dict[Partition, tuple[int, int]]:
        """(committed, end) per partition; committed is 0 where the group has none."""
        if not self._started:
            await self._consumer.start()
            self._started = True
        wanted = sorted({TopicPartition(t, p) for t, p in tps})
        ends = await self._consumer.end_offsets(wanted)
        out: dict[Partition, tuple[int, int]] = {}
        for tp in wanted:
            committed = await self._consumer.committed(tp)
            out[Partition(tp.topic, tp.partition)] = (committed or 0, ends[tp])
        return out

    async def stop(self) -> None:
        if self._started:
            await self._consumer.stop()
