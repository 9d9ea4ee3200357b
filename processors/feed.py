"""Source messages from Faust's fetch loop to the fold agent, a whole fetch at a time.

Faust hands every fetched message to its streams one by one: per message it starts
a task (`wait_first`), decodes through the conductor, queues an `Event` and acks
it from the stream, about 40 µs each, which alone capped one worker near 10,000
events/s before any billing work. `install_batch_drain` replaces the consumer's
fetch loop (`Consumer._drain_messages`, run by Faust's `Fetcher` service) with one
that passes the messages of the source topics (usage-events, account-events) into a
`BatchFeed` as whole lists, and every other topic (the tables' changelogs during
recovery) through Faust's own per-message path, unchanged.

What stays Faust's: group membership, partition assignment (tables co-partitioned
with the sources), pausing partitions while tables recover, changelog recovery,
flow control on rebalance, and commits of acknowledged offsets. The agent still
subscribes to the source topics; their messages simply never reach its stream.

Invariants the fetch loop keeps, as Faust's does:
- messages are handed over only while the consumer's flow is active, only for
  active (recovered, unpaused) partitions, and not once the consumer generation
  changed during the hand-over (exactly Faust's rules: whatever they drop is
  fetched again after the seeks that follow every rebalance; dropping more than
  Faust does stalls table recovery, seen); a stale source message that still gets
  through is harmless: the fold skips offsets already applied, and messages of
  partitions no longer assigned are dropped by the agent unacknowledged;
- every handed-over message is tracked as unacknowledged before it enters the
  feed, so a rebalance (`wait_empty`) waits until the agent has made it durable
  and acknowledged it: nothing is ever taken back from the feed.
The agent takes whatever is queued, up to its batch size, without waiting for
more (a batch never holds messages back from a rebalance), so batches grow with
the backlog and stay small when it is small.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection, Sequence
from types import MethodType
from typing import Any


class BatchFeed:
    """A bounded FIFO of messages: the fetch loop puts whole fetches, the agent takes
    up to a batch. One producer and one consumer, both on the app's event loop."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._pending: deque[Any] = deque()
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def put(self, messages: Sequence[Any]) -> None:
        """Wait while the feed holds `capacity` or more, then append all of
        `messages` (one fetch may overshoot the capacity; it is never split)."""
        while len(self._pending) >= self._capacity:
            self._not_full.clear()
            await self._not_full.wait()
        self._pending.extend(messages)
        if self._pending:
            self._not_empty.set()

    async def take(self, limit: int) -> list[Any]:
        """Wait until something is queued, then return up to `limit` messages in
        the order they were put."""
        while not self._pending:
            self._not_empty.clear()
            await self._not_empty.wait()
        pending = self._pending
        if len(pending) <= limit:
            out = list(pending)
            pending.clear()
        else:
            out = [pending.popleft() for _ in range(limit)]
        if len(pending) < self._capacity:
            self._not_full.set()
        return out


def install_batch_drain(
    consumer: Any, feed: BatchFeed, sources: Collection[str], fetch_wait_ms: int = 20
) -> None:
    """Make `consumer` (a Faust consumer, before its Fetcher starts) hand the messages
    of `sources` to `feed` (see the module docstring), and its fetch requests wait at
    most `fetch_wait_ms` at the broker.

    Why the fetch wait: Faust fixes it at 1.5 s, and aiokafka keeps one fetch in
    flight per broker; a fetch for partitions with nothing new (account-events, the
    changelogs) then holds back the next fetch of usage-events for up to 1.5 s, and
    events arrived in bursts of 1.5 s (seen: p50 1.6 s at 5,000 events/s)."""

    async def drain(self: Any, fetcher: Any) -> None:
        await drain_in_batches(self, fetcher, feed, frozenset(sources))

    consumer._drain_messages = MethodType(drain, consumer)
    thread = consumer._thread
    create = thread._create_worker_consumer

    def create_with_short_wait(*args: Any, **kwargs: Any) -> Any:
        client = create(*args, **kwargs)
        client._fetch_max_wait_ms = fetch_wait_ms  # read when the client starts
        return client

    thread._create_worker_consumer = create_with_short_wait


async def drain_in_batches(
    consumer: Any, fetcher: Any, feed: BatchFeed, sources: frozenset[str]
) -> None:
    """The replacement fetch loop; stops with the consumer or the fetcher."""
    consumer_stopped: Callable[[], bool] = consumer._stopped.is_set
    fetcher_stopped: Callable[[], bool] = fetcher._stopped.is_set
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            records, active = await consumer._wait_next_records(1.0)
            # As Faust's `getmany`: the generation the fetch is taken to belong to is
            # read once it returned; a rebalance during the hand-over stops it.
            generation = consumer.app.consumer_generation_id
            for tp, batch in (records or {}).items():
                if consumer.should_stop or not consumer.flow_active:
                    break
                if consumer.app.consumer_generation_id != generation:
                    break
                paused = active is not None and tp not in active
                if paused and tp not in consumer._buffered_partitions:
                    continue
                if tp.topic in sources:
                    await _hand_over(consumer, feed, tp, batch)
                else:
                    await _one_by_one(consumer, tp, batch)
            await _commit_if_due(consumer)
            await asyncio.sleep(0)  # a fetch loop that never yields starves the loop
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            return
        raise


def _fresh(consumer: Any, tp: Any, batch: Sequence[Any]) -> list[Any]:
    """The batch's records beyond the offset last read on `tp` (a fetch that overlaps
    the previous one after a seek must not hand anything over twice)."""
    last = consumer._read_offset[tp]
    if last is None:
        return list(batch)
    return [r for r in batch if r.offset >= last]


async def _hand_over(consumer: Any, feed: BatchFeed, tp: Any, batch: Sequence[Any]) -> None:
    records = _fresh(consumer, tp, batch)
    if not records:
        return
    to_message = consumer._to_message
    messages = [to_message(tp, r) for r in records]
    unacked = consumer._unacked_messages
    for message in messages:
        unacked.add(message)  # `wait_empty` now waits for the agent to ack it
    consumer._read_offset[tp] = messages[-1].offset + 1  # the next offset, as after a seek
    await feed.put(messages)


async def _one_by_one(consumer: Any, tp: Any, batch: Sequence[Any]) -> None:
    """Faust's own per-message path (table changelogs during recovery)."""
    callback = consumer.callback
    read_offset = consumer._read_offset
    for record in _fresh(consumer, tp, batch):
        message = consumer._to_message(tp, record)
        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
        read_offset[tp] = message.offset


async def _commit_if_due(consumer: Any) -> None:
    """Faust's `broker_commit_every`: commit after that many acknowledgements, not
    only on the commit timer."""
    every = consumer._commit_every
    if every is not None and consumer._n_acked >= every:
        consumer._n_acked = 0
        await consumer.commit()


def ack_all(consumer: Any, messages: Sequence[Any]) -> None:
    """Acknowledge handed-over messages once they are durable: their offsets become
    committable (Faust commits the highest contiguous acknowledged offset)."""
    ack = consumer.ack
    for message in messages:
        ack(message)
