"""An in-memory `Runtime` (`processors.worker.ports`) for tests: no broker, no Faust.

`MemoryLog` is the durable world (topics and the group's committed offsets); it
outlives a `MemoryRuntime`, so `crash()` gives a fresh runtime that recovers its
tables from their changelogs and redelivers from the committed offsets, as a
restarted worker would. `MemoryProducer` writes into the same log; with `hold` it
keeps its records unacknowledged (and unwritten) until `release()`, so a test can
stop the world between two steps of the commit order.

Hand-overs are made by `deliver()` (everything fetched up to the end of each
assigned partition, at most `fetch` messages per hand-over); rebalances by
`assign()`, announced as Faust does: the revoked partitions first, then the whole
new assignment, then changelog recovery of the tables. Acknowledged offsets are
committed at once (the highest contiguous acknowledged offset).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.fold.batch import SourceMessage
from processors.worker.batch_send import Groups, Meta, Sent
from processors.worker.batches import BatchFeed
from processors.worker.ports import Gap, HandOver, Partition, Rebalance
from streambill.wire.partitioner import owner

Key = tuple[str, int]


@dataclass
class MemoryLog:
    """Topics (records per partition, offset = index) and the group's committed offsets."""

    partitions: int
    records: dict[Key, list[tuple[bytes | None, bytes | None]]] = field(default_factory=dict)
    committed: dict[Key, int] = field(default_factory=dict)  # next offset to read

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> int:
        part = self.records.setdefault((topic, partition), [])
        part.append((key, value))
        return len(part) - 1

    def publish(self, topic: str, key: bytes, value: bytes) -> int:
        """Append a keyed record where its key belongs (murmur2); returns its offset."""
        return self.append(topic, owner(key, self.partitions), key, value)

    def end(self, topic: str, partition: int) -> int:
        return len(self.records.get((topic, partition), ()))

    def read(self, topic: str, partition: int, start: int, stop: int) -> list[SourceMessage]:
        part = self.records.get((topic, partition), [])
        return [
            SourceMessage(topic, partition, o, None, part[o][0], part[o][1] or b"")
            for o in range(max(start, 0), min(stop, len(part)))
        ]

    def values(self, topic: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
        """(partition, offset, key, value) of every record of `topic`."""
        return [
            (p, o, k, v)
            for (t, p), part in sorted(self.records.items())
            if t == topic
            for o, (k, v) in enumerate(part)
        ]


class MemoryProducer:
    """The commit order's producer (`commit.Producer`) writing into a `MemoryLog`."""

    def __init__(self, log: MemoryLog, loop: asyncio.AbstractEventLoop) -> None:
        self._log, self._loop = log, loop
        self.hold = False  # keep records unacknowledged until `release()`
        self.fail: BaseException | None = None  # the next records fail with it
        self._held: list[tuple[asyncio.Future[Meta], str, int, list[Any]]] = []

    def queue(self, groups: Groups) -> Sent:
        sent = Sent()
        for (topic, partition), records in groups.items():
            future: asyncio.Future[Meta] = self._loop.create_future()
            self._held.append((future, topic, partition, records))
            sent.futures.append((future, len(records)))
        if not self.hold:
            self._loop.call_soon(self.release)
        return sent

    def release(self) -> None:
        """Write and acknowledge everything held (or fail it, with `fail`)."""
        held, self._held = self._held, []
        for future, topic, partition, records in held:
            if future.done():
                continue
            if self.fail is not None:
                future.set_exception(self.fail)
                continue
            first = self._log.end(topic, partition)
            for key, value in records:
                self._log.append(topic, partition, key, value)
            future.set_result(Meta(topic, partition, first))

    def pending(self) -> int:
        return len(self._held)


class MemoryTable:
    """A table whose store serializes (as RocksDB does): it keeps what `apply` gets;
    `recover` rebuilds it from its changelog (JSON keys and values)."""

    keeps_objects = False

    def __init__(self, changelog: str) -> None:
        self._changelog = changelog
        self.data: dict[str, Any] = {}

    @property
    def changelog(self) -> str:
        return self._changelog

    def get(self, key: str, partition: int) -> Any:
        return self.data.get(key)

    def apply(self, rows: Sequence[tuple[int, str, Any]], last: dict[tuple[str, int], int]) -> None:
        for _, key, value in rows:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.data.items()))

    def recover(self, log: MemoryLog) -> None:
        self.data = {}
        for _, _, key, value in log.values(self._changelog):
            name = json.loads(key) if key is not None else ""
            if value is None:
                self.data.pop(name, None)
            else:
                row = json.loads(value)
                self.data[name] = tuple(row) if isinstance(row, list) else row


class MemoryLogReader:
    """The port's `LogReader` over a `MemoryLog`."""

    def __init__(self, log: MemoryLog) -> None:
        self._log = log

    async def account_backlog(
        self, topic: str, partitions: Iterable[int], also_committed: str
    ) -> tuple[list[SourceMessage], dict[tuple[str, int], int]]:
        log, out, starts = self._log, [], {}
        for p in sorted(set(partitions)):
            for t in (topic, also_committed):
                starts[(t, p)] = log.committed.get((t, p), 0)
            out += log.read(topic, p, starts[(topic, p)], log.end(topic, p))
        return out, starts

    async def read_range(
        self, topic: str, partition: int, start: int, stop: int
    ) -> list[SourceMessage]:
        return self._log.read(topic, partition, start, stop)

    async def read_all(self, topic: str, partition: int) -> list[SourceMessage]:
        return self._log.read(topic, partition, 0, self._log.end(topic, partition))


class MemoryLag:
    def __init__(self, log: MemoryLog) -> None:
        self._log = log

    async def read(self, tps: Iterable[Partition]) -> dict[Partition, tuple[int, int]]:
        log = self._log
        return {Partition(*tp): (log.committed.get(tp, 0), log.end(*tp)) for tp in tps}

    async def stop(self) -> None:
        return None


class MemoryRuntime:
    """The port's `Runtime` over a `MemoryLog` (see the module docstring)."""

    def __init__(self, log: MemoryLog, sources: tuple[str, str], *, fetch: int = 1000) -> None:
        self.memory = log
        self._sources = sources
        self._fetch = fetch
        self.source = BatchFeed(capacity=1 << 30)
        self.customers = MemoryTable("customers-changelog")
        self.seen = MemoryTable("seen-changelog")
        self.log = MemoryLogReader(log)
        self._listener: Callable[[Rebalance], None] | None = None
        self._assigned: frozenset[int] = frozenset()
        self._position: dict[Key, int] = {}
        self._acked: dict[Key, set[int]] = {}
        self.unacked: set[int] = set()  # ids of hand-overs neither acked nor released
        self.released: list[HandOver] = []
        self.recovering = False
        self.rebalancing = False

    # ---- test controls

    def assign(self, partitions: Iterable[int], *, recover: bool = True) -> None:
        """A rebalance to `partitions`: announced, tables recovered, positions reset
        to the committed offsets (as after Faust's seeks). `recover=False` keeps the
        stores as they were: a runtime whose changelog recovery missed what another
        worker wrote meanwhile (Faust's can start a partition's changelog past records
        it never read; `FoldPipeline._records_from_changelog` says how)."""
        new = frozenset(partitions)
        self.rebalancing = True
        if self._listener is not None and self._assigned:
            self._listener(Rebalance(revoked=self._assigned))
        self._assigned = new
        if self._listener is not None:
            self._listener(Rebalance(assigned=new))
        if recover:
            self.recovering = True
            self.customers.recover(self.memory)
            self.seen.recover(self.memory)
            self.recovering = False
        self._position = {
            (t, p): self.memory.committed.get((t, p), 0) for t in self._sources for p in new
        }
        self.rebalancing = False

    async def deliver(self) -> int:
        """Hand over what the assigned partitions hold beyond their position; returns
        the number of messages handed over."""
        n = 0
        for (topic, partition), start in sorted(self._position.items()):
            end = self.memory.end(topic, partition)
            for first in range(start, end, self._fetch):
                messages = self.memory.read(topic, partition, first, min(first + self._fetch, end))
                handed = HandOver(Partition(topic, partition), messages)
                self.unacked.add(id(handed))
                await self.source.put(handed)
                n += len(messages)
            self._position[(topic, partition)] = end
        return n

    def crash(self) -> MemoryRuntime:
        """A restarted runtime on the same log: everything in memory is lost."""
        return MemoryRuntime(self.memory, self._sources, fetch=self._fetch)

    # ---- the port

    def on_rebalance(self, listener: Callable[[Rebalance], None]) -> None:
        self._listener = listener

    def assigned(self) -> frozenset[Partition]:
        return frozenset(Partition(t, p) for t in self._sources for p in self._assigned)

    def acknowledge(self, handed: Sequence[HandOver]) -> None:
        for h in handed:
            self.unacked.discard(id(h))
            h.acked = True
            self._mark(h.tp, (m.offset for m in h.messages))

    def release(self, handed: Sequence[HandOver]) -> None:
        for h in handed:
            self.unacked.discard(id(h))
            self.released.append(h)

    async def passed(self, gaps: Sequence[Gap]) -> None:
        for tp, offsets in gaps:
            self._mark(tp, offsets)

    def highwater(self, topic: str, partition: int) -> int:
        return self.memory.end(topic, partition)

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        return owner(key or b"", self.memory.partitions)

    @property
    def in_recovery(self) -> bool:
        return self.recovering

    def lag_reader(self) -> MemoryLag:
        return MemoryLag(self.memory)

    def _mark(self, tp: tuple[str, int], offsets: Iterable[int]) -> None:
        key = (tp[0], tp[1])
        acked = self._acked.setdefault(key, set())
        acked.update(offsets)
        nxt = self.memory.committed.get(key, 0)
        while nxt in acked:
            acked.discard(nxt)
            nxt += 1
        self.memory.committed[key] = nxt
