"""Which partitions' account-events backlog the fold pipeline reads, and when
(`FoldPipeline._account_events_first`; the reading itself is the runtime's
`LogReader.account_backlog`, tested against the broker by the contract tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from processors.fold.batch import SourceMessage
from processors.worker.memory_runtime import MemoryLog, MemoryRuntime
from processors.worker.pipeline import FoldPipeline
from processors.worker.ports import HandOver, Partition, Rebalance


def _handed(partition: int) -> HandOver:
    message = SourceMessage("usage-events", partition, 7, None, b"cus", b"")
    return HandOver(Partition("usage-events", partition), [message])


class Asked:
    """A `LogReader` that records the partition sets asked for (an empty backlog)."""

    def __init__(self) -> None:
        self.calls: list[set[int]] = []

    async def account_backlog(
        self, topic: str, partitions: Iterable[int], also_committed: str
    ) -> tuple[list[SourceMessage], dict[tuple[str, int], int]]:
        self.calls.append(set(partitions))
        return [], {}

    async def read_range(self, *args: Any) -> list[SourceMessage]:
        return []

    async def read_all(self, *args: Any) -> list[SourceMessage]:
        return []


def test_backlog_is_read_once_per_partition_and_assignment() -> None:
    runtime = MemoryRuntime(MemoryLog(3), ("usage-events", "account-events"))
    asked = Asked()
    runtime.log = asked  # type: ignore[assignment]
    sources = ("usage-events", "account-events")
    pipeline = FoldPipeline(runtime, None, None, None, sources, None, print)  # type: ignore[arg-type]

    async def batches() -> None:
        await pipeline._account_events_first([_handed(0), _handed(1)])
        await pipeline._account_events_first([_handed(1), _handed(0)])  # both caught up
        await pipeline._account_events_first([_handed(2)])  # its first batch
        pipeline.on_rebalance(Rebalance(revoked=frozenset({1})))
        await pipeline._account_events_first([_handed(0)])
        await pipeline._account_events_first([_handed(2), _handed(0)])

    asyncio.run(batches())
    # After the rebalance: the batch's partitions only, never the revoked one (whose
    # backlog is the new owner's to fold), each partition once.
    assert asked.calls == [{0, 1}, {2}, {0}, {2}]
