"""`processors.batching.backlog_batches` over a stand-in for a Faust stream: the
stream's side (processors run per event, passive draining, acks) is simulated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from processors.batching import backlog_batches, wait_for


class FakeChannel:
    def __aiter__(self) -> FakeChannel:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


class FakeStream:
    """Runs each fed event through the processors, like Faust's passive drainer."""

    def __init__(self) -> None:
        self.channel = FakeChannel()
        self.enable_acks = True
        self._processors: list[Any] = []
        self.current_event: Any = None
        self.should_stop = False
        self.acked: list[int] = []
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self._drainer: asyncio.Task[None] | None = None

    def add_processor(self, fn: Any) -> None:
        self._processors.append(fn)

    def _enable_passive(self, channel: Any) -> None:
        self._drainer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while True:
            event = await self.queue.get()
            self.current_event = event
            for fn in list(self._processors):
                await fn(event)
            if self.enable_acks:
                self.acked.append(event)  # a stream that acks by itself: must not happen

    async def ack(self, event: int) -> None:
        self.acked.append(event)


async def _next(batches: AsyncIterator[list[Any]]) -> list[Any]:
    return await asyncio.wait_for(batches.__anext__(), 5)


def test_backlog_gives_full_batches_and_acks_only_after_processing() -> None:
    async def scenario() -> None:
        stream = FakeStream()
        for i in range(25):
            stream.queue.put_nowait(i)
        batches = backlog_batches(stream, 10, wait=lambda: 0.05)
        first = await _next(batches)
        assert first == list(range(10))
        assert stream.acked == []  # being processed: nothing acknowledged yet
        second = await _next(batches)
        assert stream.acked == list(range(10))  # acknowledged once the caller came back
        assert second == list(range(10, 20))
        third = await _next(batches)
        assert third == list(range(20, 25))  # the rest, once the wait ran out
        await batches.aclose()
        assert stream.enable_acks is True and stream._processors == []

    asyncio.run(scenario())


def test_a_batch_waits_only_what_wait_says() -> None:
    async def scenario() -> None:
        stream = FakeStream()
        batches = backlog_batches(stream, 1000, wait=lambda: 0.01)
        stream.queue.put_nowait(7)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await _next(batches) == [7]
        assert loop.time() - t0 < 1.0
        await batches.aclose()

    asyncio.run(scenario())


def test_events_arriving_during_processing_join_the_next_batch() -> None:
    async def scenario() -> None:
        stream = FakeStream()
        batches = backlog_batches(stream, 100, wait=lambda: 0.01)
        stream.queue.put_nowait(1)
        assert await _next(batches) == [1]
        for i in (2, 3, 4):  # while the caller processes [1]
            stream.queue.put_nowait(i)
        await asyncio.sleep(0.02)
        assert stream.acked == []
        assert await _next(batches) == [2, 3, 4]
        assert stream.acked == [1]
        await batches.aclose()

    asyncio.run(scenario())


class FakeMessage:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.acked = False


class FakeConsumer:
    def __init__(self) -> None:
        self.acks: list[FakeMessage] = []
        self._unacked_messages: set[FakeMessage] = set()

    def ack(self, message: FakeMessage) -> bool:
        self.acks.append(message)
        return True


def test_only_admitted_source_messages_reach_faust_acks() -> None:
    import weakref

    from processors.worker import guard_acks

    consumer = FakeConsumer()
    admitted: weakref.WeakSet[Any] = weakref.WeakSet()
    guard_acks(consumer, {"usage"}, admitted)
    handed, skipped, other = FakeMessage("usage"), FakeMessage("usage"), FakeMessage("x")
    admitted.add(handed)
    consumer._unacked_messages.add(skipped)
    assert consumer.ack(handed) is True
    assert consumer.ack(skipped) is False  # skipped by Faust's stream: never committable
    assert skipped.acked and skipped not in consumer._unacked_messages
    assert consumer.ack(other) is True  # not a source topic: untouched
    assert consumer.acks == [handed, other]


def test_the_wait_grows_with_the_backlog_up_to_a_full_batch() -> None:
    def w(lag: int) -> float:
        return wait_for(lag, within=0.005, within_backlog=1.0, backlog=2000, batch_size=20000)

    assert w(0) == w(2000) == 0.005  # caught up: latency first
    assert w(5000) == 0.25
    assert w(20000) == w(500000) == 1.0
    assert w(2001) > 0.005
