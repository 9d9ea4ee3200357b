"""Source messages from Faust's fetch loop to the pipeline, a whole fetch at a time.

Faust hands every fetched message to its streams one by one: per message it starts a
task (`wait_first`), decodes through the conductor, queues an `Event` and acks it
from the stream, a per-message cost that would bound the worker's throughput before
any billing work is done (docs/decisions/0001-faust-runtime.md has the figures).
`install_batch_drain` replaces the consumer's fetch loop (`Consumer._drain_messages`,
run by Faust's `Fetcher` service) with one that passes the messages of the source
topics (usage-events, account-events) into a `BatchFeed` as whole lists, and every
other topic (the tables' changelogs during recovery) through Faust's own per-message
path, unchanged.

What stays Faust's: group membership, partition assignment (tables co-partitioned
with the sources), pausing partitions while tables recover, changelog recovery,
flow control on rebalance, and commits of acknowledged offsets. The agent still
subscribes to the source topics; their messages simply never reach its stream.

Invariants the fetch loop keeps, as Faust's does:
- messages are handed over only while the consumer's flow is active, only for
  active (recovered, unpaused) partitions, and not once the consumer generation
  changed during the hand-over (exactly Faust's rules: whatever they drop is
  fetched again after the seeks that follow every rebalance; dropping more than
  Faust does stalls table recovery); a stale source message that still gets
  through is harmless: the fold skips offsets already applied, and messages of
  partitions no longer assigned are dropped by the pipeline unacknowledged;
- every hand-over (the fresh messages of one fetch of one partition, converted
  straight to `SourceMessage`s) is tracked among the consumer's unacknowledged
  messages before it enters the feed, so a rebalance (`wait_empty`) waits until
  the pipeline has made it durable and acknowledged it: nothing is ever taken back
  from the feed. Acknowledging marks its offsets as Faust's `ack` does, in bulk.
- `release` stops tracking a hand-over the pipeline drops unacknowledged (its
  partition was revoked), so `wait_empty` does not wait on it.
Faust commits on its own timer, after `broker_commit_every` acknowledgements
(`_commit_if_due`, here in the fetch loop) and on rebalance, always the highest
contiguous acknowledged offset: only offsets the pipeline acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from types import MethodType
from typing import Any

from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from processors.fold.batch import SourceMessage
from processors.worker.batches import BatchFeed
from processors.worker.ports import HandOver


def install_batch_drain(
    consumer: Any, feed: BatchFeed, sources: Collection[str], fetch_wait_ms: int = 20
) -> None:
    """Make `consumer` (a Faust consumer, before its Fetcher starts) hand the messages
    of `sources` to `feed` (see the module docstring), and its fetch requests wait at
    most `fetch_wait_ms` at the broker.

    Why the fetch wait: Faust fixes it at 1.5 s, and aiokafka keeps one fetch in
    flight per broker; a fetch for partitions with nothing new (account-events, the
    changelogs) then holds back the next fetch of usage-events for up to 1.5 s, so
    events would arrive in bursts of 1.5 s."""

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


def release(consumer: Any, handed: Sequence[HandOver]) -> None:
    """Stop tracking hand-overs dropped unacknowledged (their partition was revoked:
    not ours to ack, and `wait_empty` must not wait on them)."""
    for h in handed:
        consumer._unacked_messages.discard(h)
