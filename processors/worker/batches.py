"""Hand-overs queued between the runtime's fetch loop and the fold loop, and the fold
loop's pacing. Framework-free: both runtimes put into a `BatchFeed`.

The fold loop takes whatever is queued, up to its batch size, after waiting at most
its batch interval since its previous batch started (so a rebalance waits at most
that long for it), so batches grow with the backlog and stay small when it is.
"""

from __future__ import annotations

import asyncio
from collections import deque

from processors.worker.ports import HandOver, Source


class BatchFeed:
    """A bounded FIFO of hand-overs: the fetch loop puts, the agent takes up to a
    batch of messages. One producer and one consumer, both on the app's loop."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity  # in messages
        self._pending: deque[HandOver] = deque()
        self._size = 0
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        """Messages queued."""
        return self._size

    async def put(self, handed: HandOver) -> None:
        """Wait while the feed holds `capacity` messages or more, then append
        (one hand-over may overshoot the capacity; it is never split)."""
        while self._size >= self._capacity:
            self._not_full.clear()
            await self._not_full.wait()
        self._pending.append(handed)
        self._size += len(handed.messages)
        self._not_empty.set()

    async def wait(self) -> None:
        """Wait until something is queued."""
        while not self._pending:
            self._not_empty.clear()
            await self._not_empty.wait()

    async def take(self, limit: int) -> list[HandOver]:
        """Wait until something is queued, then return whole hand-overs in the order
        they were put: as many as fit in `limit` messages, at least one."""
        await self.wait()
        pending = self._pending
        out = [pending.popleft()]
        taken = len(out[0].messages)
        while pending and taken + len(pending[0].messages) <= limit:
            handed = pending.popleft()
            taken += len(handed.messages)
            out.append(handed)
        self._size -= taken
        if self._size < self._capacity:
            self._not_full.set()
        return out


ENOUGH = 32  # messages: a batch this large is worth its produce requests at once


async def paced_take(
    feed: Source, limit: int, interval: float, previous: float
) -> tuple[list[HandOver], float]:
    """The agent's next batch: once something is queued, wait until `interval`
    seconds after `previous` (the loop time the previous batch started) for more to
    arrive, unless `ENOUGH` (or `limit`) messages are queued already; then take up
    to `limit`. Returns the hand-overs and the loop time this batch started.

    Only small batches wait: at low rates they would otherwise be single fetches of
    a few events, each with its own produce requests; at high rates a batch has
    filled up while the previous one folded, and waiting would only add latency."""
    await feed.wait()
    loop = asyncio.get_running_loop()
    pause = previous + interval - loop.time()
    if pause > 0 and len(feed) < min(ENOUGH, limit):
        await asyncio.sleep(pause)
    started = loop.time()
    return await feed.take(limit), started
