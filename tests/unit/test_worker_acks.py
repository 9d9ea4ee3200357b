"""`processors.worker.guard_acks`: Faust may acknowledge only the source messages the
worker's batches handed over."""

from __future__ import annotations

from typing import Any


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
