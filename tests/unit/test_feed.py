"""`processors.feed`: the fetch loop that hands source messages to the fold agent in
whole fetches, and the feed between them. Fakes stand in for Faust's consumer only
to drive the loop's decisions; the real consumer is exercised by the integration
and chaos suites."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from processors.feed import BatchFeed, ack_all, drain_in_batches


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


@dataclass(eq=False)
class Message:
    tp: TP
    offset: int
    acked: bool = False


class Stopped:
    def __init__(self) -> None:
        self.flag = False

    def is_set(self) -> bool:
        return self.flag


class FakeApp:
    consumer_generation_id = 1
    should_stop = False


class FakeConsumer:
    """Serves `fetches` one per `_wait_next_records`, then stops the loop."""

    consumer_stopped_errors = (RuntimeError,)

    def __init__(self, fetches: list[tuple[dict[TP, list[Record]], set[TP] | None]]) -> None:
        self.fetches = fetches
        self.app = FakeApp()
        self.transport = type("T", (), {"app": self.app})()
        self._stopped = Stopped()
        self.should_stop = False
        self.flow_active = True
        self._buffered_partitions: set[TP] = set()
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._unacked_messages: set[Message] = set()
        self._commit_every: int | None = None
        self._n_acked = 0
        self.called_back: list[Message] = []
        self.acked: list[Message] = []
        self.suspend_flow = asyncio.Event()

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        if not self.fetches:
            self._stopped.flag = True
            return None, None
        return self.fetches.pop(0)

    def _to_message(self, tp: TP, record: Record) -> Message:
        return Message(tp, record.offset)

    async def callback(self, message: Message) -> None:
        self.called_back.append(message)

    async def wait_first(self, *coros: Any) -> None:
        await coros[0]
        coros[1].close()

    def ack(self, message: Message) -> bool:
        message.acked = True
        self.acked.append(message)
        self._unacked_messages.discard(message)
        return True

    async def commit(self) -> None:
        self.committed = True


USAGE, ACCOUNT, CHANGELOG = TP("usage", 0), TP("account", 0), TP("changelog", 0)
SOURCES = frozenset({"usage", "account"})


def recs(tp: TP, offsets: range) -> list[Record]:
    return [Record(tp.topic, tp.partition, o) for o in offsets]


def run(consumer: FakeConsumer, feed: BatchFeed) -> None:
    fetcher = type("F", (), {"_stopped": Stopped()})()
    asyncio.run(drain_in_batches(consumer, fetcher, feed, SOURCES))


def drained(feed: BatchFeed) -> list[Message]:
    return asyncio.run(feed.take(10_000)) if len(feed) else []


def test_source_fetches_go_to_the_feed_whole_and_tracked_others_one_by_one() -> None:
    consumer = FakeConsumer(
        [({USAGE: recs(USAGE, range(5)), CHANGELOG: recs(CHANGELOG, range(3))}, None)]
    )
    feed = BatchFeed(100)
    run(consumer, feed)
    handed = drained(feed)
    assert [m.offset for m in handed] == [0, 1, 2, 3, 4]
    assert set(handed) == consumer._unacked_messages  # rebalances wait for them
    assert consumer._read_offset[USAGE] == 5  # the next offset, as after a seek
    assert [m.offset for m in consumer.called_back] == [0, 1, 2]
    assert consumer._read_offset[CHANGELOG] == 2


def test_nothing_is_handed_over_while_flow_is_stopped_or_once_the_generation_changed() -> None:
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(3))}, None)])
    consumer.flow_active = False
    feed = BatchFeed(100)
    run(consumer, feed)
    assert len(feed) == 0 and consumer._read_offset[USAGE] is None

    consumer = FakeConsumer(
        [({CHANGELOG: recs(CHANGELOG, range(1)), USAGE: recs(USAGE, range(3))}, None)]
    )

    async def rebalanced_meanwhile(message: Message) -> None:
        consumer.app.consumer_generation_id += 1

    consumer.callback = rebalanced_meanwhile  # type: ignore[method-assign]
    run(consumer, feed)
    assert len(feed) == 0 and not consumer._unacked_messages


def test_paused_partitions_are_skipped_unless_buffered() -> None:
    other = TP("usage", 1)
    consumer = FakeConsumer(
        [({USAGE: recs(USAGE, range(2)), other: recs(other, range(2))}, {USAGE})]
    )
    feed = BatchFeed(100)
    run(consumer, feed)
    assert {m.tp for m in drained(feed)} == {USAGE}

    consumer = FakeConsumer([({other: recs(other, range(2))}, {USAGE})])
    consumer._buffered_partitions.add(other)
    run(consumer, feed)
    assert {m.tp for m in drained(feed)} == {other}


def test_a_fetch_overlapping_what_was_read_hands_over_only_the_new_offsets() -> None:
    consumer = FakeConsumer(
        [({USAGE: recs(USAGE, range(0, 4))}, None), ({USAGE: recs(USAGE, range(2, 6))}, None)]
    )
    feed = BatchFeed(100)
    run(consumer, feed)
    assert [m.offset for m in drained(feed)] == [0, 1, 2, 3, 4, 5]


def test_acks_release_handed_over_messages() -> None:
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(3))}, None)])
    feed = BatchFeed(100)
    run(consumer, feed)
    handed = drained(feed)
    ack_all(consumer, handed)
    assert consumer.acked == handed and not consumer._unacked_messages


def test_commits_after_commit_every_acknowledgements() -> None:
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(1))}, None)])
    consumer._commit_every, consumer._n_acked = 3, 2
    run(consumer, BatchFeed(100))
    assert not hasattr(consumer, "committed")
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(1))}, None)])
    consumer._commit_every, consumer._n_acked = 3, 3
    run(consumer, BatchFeed(100))
    assert consumer.committed and consumer._n_acked == 0


def test_feed_takes_up_to_the_limit_in_order_and_put_waits_for_room() -> None:
    async def scenario() -> list[list[int]]:
        feed = BatchFeed(capacity=4)
        await feed.put([1, 2, 3])
        await feed.put([4, 5])  # room was left: one fetch may overshoot
        blocked = asyncio.ensure_future(feed.put([6]))
        await asyncio.sleep(0.01)
        assert not blocked.done()  # 5 queued >= capacity 4
        first = await feed.take(3)
        await asyncio.wait_for(blocked, 1)
        rest = await feed.take(10)
        waiting = asyncio.ensure_future(feed.take(10))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # an empty feed makes the agent wait
        await feed.put([7])
        return [first, rest, await asyncio.wait_for(waiting, 1)]

    assert asyncio.run(scenario()) == [[1, 2, 3], [4, 5, 6], [7]]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BatchFeed(0)
