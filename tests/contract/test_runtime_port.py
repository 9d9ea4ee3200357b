"""The runtime port's contract (`processors.worker.ports`) on the in-memory runtime:
hand-overs per partition in offset order, the rebalance listener before the first
hand-over, redelivery from the lowest unacknowledged offset, tables recovered from
their changelogs, placement by murmur2."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from processors.worker.commit import CommitOrder
from processors.worker.memory_runtime import MemoryLog, MemoryProducer, MemoryRuntime
from processors.worker.metrics import WorkerMetrics
from processors.worker.ports import Partition, Rebalance
from streambill.wire.partitioner import owner

SOURCES = ("u", "a")


def _log() -> MemoryLog:
    log = MemoryLog(2)
    for i in range(10):
        log.append("u", i % 2, f"k{i}".encode(), f"v{i}".encode())
    return log


def test_hand_overs_follow_the_rebalance_and_keep_offset_order() -> None:
    runtime = MemoryRuntime(_log(), SOURCES, fetch=3)
    seen: list[Rebalance] = []
    runtime.on_rebalance(seen.append)
    runtime.assign([0, 1])
    assert seen == [Rebalance(assigned=frozenset({0, 1}))]
    assert runtime.assigned() == {Partition(t, p) for t in SOURCES for p in (0, 1)}

    async def take() -> list[tuple[object, list[int]]]:
        await runtime.deliver()
        handed = await runtime.source.take(100)
        return [(h.tp, [m.offset for m in h.messages]) for h in handed]

    got = asyncio.run(take())
    for tp, offsets in got:
        assert offsets == sorted(offsets) and len({tp}) == 1
    per = {tp: [o for t, offs in got if t == tp for o in offs] for tp, _ in got}
    assert per == {("u", 0): [0, 1, 2, 3, 4], ("u", 1): [0, 1, 2, 3, 4]}


def test_after_a_restart_only_unacknowledged_offsets_come_again() -> None:
    runtime = MemoryRuntime(_log(), SOURCES)
    runtime.assign([0, 1])

    async def first() -> None:
        await runtime.deliver()
        handed = await runtime.source.take(100)
        runtime.acknowledge([h for h in handed if h.tp == ("u", 0)])

    asyncio.run(first())
    again = runtime.crash()
    again.assign([0, 1])

    async def second() -> set[tuple[str, int]]:
        await again.deliver()
        return {h.tp for h in await again.source.take(100)}

    assert asyncio.run(second()) == {("u", 1)}


def test_table_rows_written_through_the_changelog_are_recovered() -> None:
    log = _log()
    runtime = MemoryRuntime(log, SOURCES)
    runtime.assign([0, 1])
    metrics = WorkerMetrics(CollectorRegistry())

    async def write() -> None:
        commits = CommitOrder(runtime, lambda loop: MemoryProducer(log, loop), metrics, {}, print)
        await commits.write_table(runtime.seen, [(0, "e1", ["x", "u", 0, 1, "c", 5])])
        await commits.write_table(runtime.seen, [(1, "e2", ["y", "u", 1, 2, "d", 6])])
        await commits.write_table(runtime.seen, [(1, "e2", None)])

    asyncio.run(write())
    assert dict(runtime.seen.items()) == {"e1": ["x", "u", 0, 1, "c", 5]}
    again = runtime.crash()
    again.assign([0, 1])
    assert dict(again.seen.items()) == {"e1": ("x", "u", 0, 1, "c", 5)}


def test_placement_is_murmur2_and_recovery_is_signalled() -> None:
    runtime = MemoryRuntime(_log(), SOURCES)
    assert asyncio.run(runtime.partition_for("s", b"cus_1")) == owner(b"cus_1", 2)
    during: list[bool] = []
    runtime.on_rebalance(lambda change: during.append(runtime.rebalancing))
    runtime.assign([0])
    assert during == [True] and not runtime.in_recovery and not runtime.rebalancing
