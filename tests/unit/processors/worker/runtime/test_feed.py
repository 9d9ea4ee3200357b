"""`processors.worker.runtime.feed` and `processors.worker.batches`: the fetch loop
that hands source messages to the pipeline in whole fetches, and the feed between
them. Fakes stand in for Faust's consumer only to drive the loop's decisions; the
real consumer is exercised by the integration and chaos suites."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from processors.fold.batch import SourceMessage
from processors.worker.batches import ENOUGH, BatchFeed, paced_take
from processors.worker.ports import HandOver
from processors.worker.runtime.feed import ack_all, drain_in_batches, release


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int | None = 1_700_000_000_000
    key: bytes | None = b"cus_1"
    value: bytes | None = b"payload"


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


class FakeMonitor:
    def __init__(self) -> None:
        self.stream_inbound_time: dict[TP, float] = {}


class FakeApp:
    consumer_generation_id = 1
    should_stop = False

    def __init__(self) -> None:
        self.monitor = FakeMonitor()


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
        self._unacked_messages: set[Any] = set()
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._acked_index: dict[TP, set[int]] = defaultdict(set)
        self._acked: dict[TP, list[int]] = defaultdict(list)
        self._waiting_for_ack: Any = None
        self._commit_every: int | None = None
        self._n_acked = 0
        self.called_back: list[Message] = []
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

    async def commit(self) -> None:
        self.committed = True


USAGE, ACCOUNT, CHANGELOG = TP("usage", 0), TP("account", 0), TP("changelog", 0)
SOURCES = frozenset({"usage", "account"})


def recs(tp: TP, offsets: range) -> list[Record]:
    return [Record(tp.topic, tp.partition, o) for o in offsets]


def run(consumer: FakeConsumer, feed: BatchFeed) -> None:
    fetcher = type("F", (), {"_stopped": Stopped()})()
    asyncio.run(drain_in_batches(consumer, fetcher, feed, SOURCES))


def drained(feed: BatchFeed) -> list[HandOver]:
    return asyncio.run(feed.take(10_000)) if len(feed) else []


def offsets(handed: list[HandOver]) -> list[int]:
    return [m.offset for h in handed for m in h.messages]


def test_source_fetches_go_to_the_feed_whole_and_tracked_others_one_by_one() -> None:
    consumer = FakeConsumer(
        [({USAGE: recs(USAGE, range(5)), CHANGELOG: recs(CHANGELOG, range(3))}, None)]
    )
    feed = BatchFeed(100)
    run(consumer, feed)
    handed = drained(feed)
    assert offsets(handed) == [0, 1, 2, 3, 4]
    assert handed[0].messages[0] == SourceMessage(
        "usage", 0, 0, 1_700_000_000_000, b"cus_1", b"payload"
    )
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
    assert {h.tp for h in drained(feed)} == {USAGE}

    consumer = FakeConsumer([({other: recs(other, range(2))}, {USAGE})])
    consumer._buffered_partitions.add(other)
    run(consumer, feed)
    assert {h.tp for h in drained(feed)} == {other}


def test_a_fetch_overlapping_what_was_read_hands_over_only_the_new_offsets() -> None:
    consumer = FakeConsumer(
        [({USAGE: recs(USAGE, range(0, 4))}, None), ({USAGE: recs(USAGE, range(2, 6))}, None)]
    )
    feed = BatchFeed(100)
    run(consumer, feed)
    assert offsets(drained(feed)) == [0, 1, 2, 3, 4, 5]


def test_acks_make_offsets_committable_and_release_the_hand_overs() -> None:
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(3, 6))}, None)])
    consumer._committed_offset[USAGE] = 4  # offset 3 was committed before: not again
    feed = BatchFeed(100)
    run(consumer, feed)
    handed = drained(feed)
    ack_all(consumer, handed)
    ack_all(consumer, handed)  # a second ack changes nothing
    assert consumer._acked[USAGE] == [4, 5] and consumer._acked_index[USAGE] == {4, 5}
    assert consumer._n_acked == 2
    assert all(h.acked for h in handed) and not consumer._unacked_messages
    assert set(consumer.app.monitor.stream_inbound_time) == {USAGE}  # no "idle stream" alarm


def test_commits_after_commit_every_acknowledgements() -> None:
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(1))}, None)])
    consumer._commit_every, consumer._n_acked = 3, 2
    run(consumer, BatchFeed(100))
    assert not hasattr(consumer, "committed")
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(1))}, None)])
    consumer._commit_every, consumer._n_acked = 3, 3
    run(consumer, BatchFeed(100))
    assert consumer.committed and consumer._n_acked == 0


def hand(*offs: int) -> HandOver:
    return HandOver(USAGE, [SourceMessage("usage", 0, o, None, None, b"") for o in offs])


def test_feed_takes_whole_hand_overs_up_to_the_limit_and_put_waits_for_room() -> None:
    async def scenario() -> list[list[int]]:
        feed = BatchFeed(capacity=4)
        await feed.put(hand(1, 2, 3))
        await feed.put(hand(4, 5))  # room was left: one hand-over may overshoot
        blocked = asyncio.ensure_future(feed.put(hand(6)))
        await asyncio.sleep(0.01)
        assert not blocked.done()  # 5 queued >= capacity 4
        first = await feed.take(4)  # [1, 2, 3] fits, [4, 5] would not
        await asyncio.wait_for(blocked, 1)
        rest = await feed.take(10)
        waiting = asyncio.ensure_future(feed.take(10))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # an empty feed makes the agent wait
        await feed.put(hand(7, 8, 9))
        big = await asyncio.wait_for(waiting, 1)  # at least one, even beyond the limit
        await feed.put(hand(10, 11))
        over = await feed.take(1)
        return [offsets(first), offsets(rest), offsets(big), offsets(over), [len(feed)]]

    assert asyncio.run(scenario()) == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11], [0]]


def test_a_batch_waits_for_more_until_the_interval_since_the_previous_one() -> None:
    async def scenario() -> tuple[list[int], float, list[int], float, list[int], float]:
        loop = asyncio.get_running_loop()
        feed = BatchFeed(capacity=100)
        await feed.put(hand(1))
        first, started = await paced_take(feed, 10, 0.2, -1.0)  # long since: at once
        waited_first = loop.time() - started
        await feed.put(hand(2))
        late = loop.call_later(0.05, lambda: asyncio.ensure_future(feed.put(hand(3))))
        second, second_start = await paced_take(feed, 10, 0.2, started)
        gap = second_start - started  # 2 came at once; 3 arrived while it waited
        late.cancel()
        await feed.put(hand(*range(4, 4 + ENOUGH)))
        full, full_start = await paced_take(feed, 100, 10.0, second_start)  # enough queued
        return (
            offsets(first), waited_first, offsets(second), gap, offsets(full),
            full_start - second_start,
        )  # fmt: skip

    first, waited, second, gap, full, full_gap = asyncio.run(scenario())
    assert first == [1] and waited < 0.1
    assert second == [2, 3] and gap >= 0.19
    assert full == list(range(4, 4 + ENOUGH)) and full_gap < 5.0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BatchFeed(0)


def test_released_hand_overs_are_no_longer_waited_for() -> None:
    consumer = FakeConsumer([({USAGE: recs(USAGE, range(3))}, None)])
    feed = BatchFeed(100)
    run(consumer, feed)
    handed = drained(feed)
    release(consumer, handed)
    assert not consumer._unacked_messages and consumer._acked[USAGE] == []
