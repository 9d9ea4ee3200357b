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
- every hand-over (the fresh messages of one fetch of one partition, converted
  straight to `SourceMessage`s) is tracked among the consumer's unacknowledged
  messages before it enters the feed, so a rebalance (`wait_empty`) waits until
  the agent has made it durable and acknowledged it: nothing is ever taken back
  from the feed. Acknowledging marks its offsets as Faust's `ack` does, in bulk.
The agent takes whatever is queued, up to its batch size, after waiting at most
its batch interval since its previous batch started (so a rebalance waits at most
that long for it), so batches grow with the backlog and stay small when it is.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from types import MethodType
from typing import Any

from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from processors.fold.batch import SourceMessage


@dataclass(eq=False)
class HandOver:
    """The fresh messages of one fetch of one source partition, in offset order.
    Faust's consumer tracks it like one message until the agent acknowledges it
    (`acked`, `refcount`: what its `wait_empty` reads)."""

    tp: Any
    messages: list[SourceMessage]
    acked: bool = False
    refcount: int = 0


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
    feed: BatchFeed, limit: int, interval: float, previous: float
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


def _fresh(consumer: Any, tp: Any, batch: Sequence[Any]) -> Sequence[Any]:
    """The batch's records from the offset to read next on `tp` on (a fetch that
    overlaps what was read, after a seek, must not hand anything over twice)."""
    start = consumer._read_offset[tp]
    if start is None or not batch or batch[0].offset >= start:
        return batch
    return [r for r in batch if r.offset >= start]


async def _hand_over(consumer: Any, feed: BatchFeed, tp: Any, batch: Sequence[Any]) -> None:
    records = _fresh(consumer, tp, batch)
    if not records:
        return
    handed = HandOver(
        tp,
        [
            SourceMessage(
                r.topic,
                r.partition,
                r.offset,
                r.timestamp if r.timestamp is not None and r.timestamp >= 0 else None,
                r.key,
                r.value if r.value is not None else b"",
            )
            for r in records
        ],
    )
    consumer._unacked_messages.add(handed)  # `wait_empty` now waits for the agent's ack
    consumer._read_offset[tp] = records[-1].offset + 1  # the next offset, as after a seek
    await feed.put(handed)


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


def ack_all(consumer: Any, handed: Sequence[HandOver]) -> None:
    """Acknowledge hand-overs once they are durable: their offsets become
    committable (Faust commits the highest contiguous acknowledged offset above the
    committed one). Faust's `Consumer.ack` bookkeeping, per offset, in bulk."""
    # Faust's monitor logs "stream is not processing" errors for partitions with lag
    # whose streams got no event for a while: these events reached the agent here.
    inbound = getattr(consumer.app.monitor, "stream_inbound_time", None)
    now = time.monotonic()
    with ack_lock:
        acked_now = 0
        for h in handed:
            if inbound is not None:
                inbound[h.tp] = now
            committed = consumer._committed_offset[h.tp]
            index = consumer._acked_index[h.tp]
            acked = consumer._acked[h.tp]
            for m in h.messages:
                offset = m.offset
                if (committed is None or offset >= committed) and offset not in index:
                    index.add(offset)
                    acked.append(offset)
                    acked_now += 1
            h.acked = True
            consumer._unacked_messages.discard(h)
        consumer._n_acked += acked_now
        notify(consumer._waiting_for_ack)
