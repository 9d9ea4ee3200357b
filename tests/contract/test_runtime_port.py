"""The runtime port's contract (`tests/contract/runtime_contract.py`) on the in-memory
runtime: `assign` stands for a group's rebalance, `crash` for a restarted process,
and a second `MemoryRuntime` on the same log for another member of the group."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from processors.worker.memory_runtime import MemoryLog, MemoryProducer, MemoryRuntime
from processors.worker.ports import Runtime
from tests.contract.runtime_contract import CHECKS, Prepare, RuntimeDriver


class MemoryDriver:
    """The contract's `RuntimeDriver` for `MemoryRuntime`."""

    sources = ("u", "a")
    partitions = 3
    patience = 2.0
    quiet = 0.0  # nothing comes unless `fetch` delivers it

    def __init__(self) -> None:
        self.log = MemoryLog(self.partitions)
        self.runtime: MemoryRuntime | None = None
        self.other: MemoryRuntime | None = None  # the member that joined

    def producer(self, loop: asyncio.AbstractEventLoop) -> MemoryProducer:
        return MemoryProducer(self.log, loop)

    async def start(self, prepare: Prepare) -> Runtime:
        runtime = MemoryRuntime(self.log, self.sources, fetch=3)  # small fetches
        prepare(runtime)
        runtime.assign(range(self.partitions))
        self.runtime = runtime
        return runtime

    async def restart(self, prepare: Prepare) -> Runtime:
        assert self.runtime is not None
        self.runtime.crash()  # what it tracked is gone with it
        return await self.start(prepare)

    async def fetch(self, runtime: Runtime) -> None:
        assert isinstance(runtime, MemoryRuntime)
        await runtime.deliver()
        await self._serve_other()

    async def join(self) -> None:
        assert self.runtime is not None
        last = self.partitions - 1
        self.runtime.assign(range(last))
        self.other = MemoryRuntime(self.log, self.sources)
        self.other.assign([last])

    async def leave(self) -> None:
        assert self.runtime is not None
        await self._serve_other()
        self.other = None
        self.runtime.assign(range(self.partitions))

    async def stop(self) -> None:
        self.runtime = self.other = None

    async def _serve_other(self) -> None:
        """The other member acknowledges whatever it is handed."""
        if self.other is not None and await self.other.deliver():
            self.other.acknowledge(await self.other.source.take(1 << 20))


def _driver() -> RuntimeDriver:
    return MemoryDriver()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_memory_runtime_keeps_the_contract(
    check: Callable[[RuntimeDriver], Awaitable[None]],
) -> None:
    asyncio.run(check(_driver()))


def test_released_hand_overs_are_no_longer_tracked() -> None:
    async def run() -> MemoryRuntime:
        runtime = MemoryRuntime(MemoryLog(1), ("u", "a"))
        runtime.memory.append("u", 0, b"k", b"v")
        runtime.assign([0])
        await runtime.deliver()
        runtime.release(await runtime.source.take(10))
        return runtime

    runtime = asyncio.run(run())
    assert not runtime.unacked and len(runtime.released) == 1
    assert runtime.memory.committed.get(("u", 0), 0) == 0
