"""Which partitions' account-events backlog the fold pipeline reads, and when
(`FoldPipeline._account_events_first`; the reading itself is `catch_up.account_backlog`,
tested against the broker by the worker's integration tests)."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from faust.types import TP

from processors.fold.batch import SourceMessage
from processors.worker import pipeline as pipeline_module
from processors.worker.feed import HandOver
from processors.worker.pipeline import FoldPipeline
from streambill.config.settings import Settings


def _handed(partition: int) -> HandOver:
    message = SourceMessage("usage-events", partition, 7, None, b"cus", b"")
    return HandOver(TP("usage-events", partition), [message])


def _table() -> Any:
    return types.SimpleNamespace(data=types.SimpleNamespace(data={}))


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The partition sets the pipeline asks `account_backlog` for (an empty backlog)."""
    calls: list[set[int]] = []

    async def no_backlog(*args: Any, **kwargs: Any) -> tuple[list[Any], dict[Any, int]]:
        calls.append(set(args[3]))
        return [], {}

    monkeypatch.setattr(pipeline_module, "account_backlog", no_backlog)
    return calls


def test_backlog_is_read_once_per_partition_and_assignment(asked: list[set[int]]) -> None:
    settings = Settings(worker_store="memory://")
    pipeline = FoldPipeline(None, None, _table(), _table(), None, None, settings, print)  # type: ignore[arg-type]

    async def batches() -> None:
        await pipeline._account_events_first([_handed(0), _handed(1)])
        await pipeline._account_events_first([_handed(1), _handed(0)])  # both caught up
        await pipeline._account_events_first([_handed(2)])  # its first batch
        pipeline.cache.drop({1})  # a rebalance revoked partition 1
        await pipeline._account_events_first([_handed(0)])
        await pipeline._account_events_first([_handed(2), _handed(0)])

    asyncio.run(batches())
    # After the rebalance: the batch's partitions only, never the revoked one (whose
    # backlog is the new owner's to fold), each partition once.
    assert asked == [{0, 1}, {2}, {0}, {2}]
