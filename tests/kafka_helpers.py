"""Kafka in tests and benches, with clients of our own (not the SDK's): reading a topic
back from the beginning, producing the projector's inputs, the topics' ends, and
waiting until the projector's positions in the read-model store reach them.

Used by tests/integration, tests/projections, tests/chaos and bench/fold.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from projections.read.model import SOURCE_TOPICS
from projections.read.store import ReadModelStore
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import WireValue, encode_value

Ends = dict[tuple[str, int], int]  # (logical topic, partition) -> high watermark


def consume_all(
    settings: Settings,
    logical: str,
    expected: int,
    timeout: float = 30,
    keep: Callable[[Message], bool] | None = None,
) -> list[Message]:
    """Every message of a topic from the beginning (those `keep` accepts, if given),
    once `expected` of them arrived (or timeout)."""
    topic = settings.topic(logical)
    consumer = Consumer(
        settings.kafka_config(
            **{"group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                if keep is None or keep(msg):
                    messages.append(msg)
        return messages
    finally:
        consumer.close()


def produce(
    settings: Settings, items: Iterable[tuple[str, WireValue | bytes]], codec: Codec
) -> None:
    """(logical topic, value or raw bytes) -> Kafka, keyed by customer id, flushed.
    Placed by murmur2 of the key, as every producer of the input topics must (README,
    topic contract; librdkafka's default CRC32 would put a customer elsewhere)."""
    producer = Producer(settings.kafka_config(partitioner="murmur2_random"))
    for logical, value in items:
        if isinstance(value, bytes):
            data, key = value, b"garbage"
        else:
            data, key = encode_value(codec, value), value.customer_id.encode()  # type: ignore[union-attr]
        producer.produce(settings.topic(logical), value=data, key=key)
    assert producer.flush(30) == 0


def high_watermarks(settings: Settings, logical: Sequence[str] = SOURCE_TOPICS) -> Ends:
    """(logical topic, partition) -> high watermark, for the non-empty partitions."""
    consumer = Consumer(settings.kafka_config(**{"group.id": f"ends-{uuid.uuid4().hex}"}))
    try:
        out: Ends = {}
        for name in logical:
            topic = settings.topic(name)
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            for p in parts:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False
                )
                if high > 0:
                    out[(name, p)] = high
        return out
    finally:
        consumer.close()


def projector_behind(store: ReadModelStore, ends: Ends) -> list[tuple[str, int]]:
    """The partitions of `ends` the projector's positions in `store` have not reached
    (all of them while the store has no generation)."""
    gen = store.generation()
    if gen is None:
        return sorted(ends)
    behind = []
    for name in sorted({t for t, _ in ends}):
        parts = [p for (t, p) in ends if t == name]
        positions = store.positions(gen, name, parts)
        behind += [(name, p) for p in parts if positions.get(p, 0) < ends[(name, p)]]
    return behind


def caught_up(settings: Settings, store: ReadModelStore) -> Callable[[], bool]:
    """A check: has the projector reached the ends its sources have now?"""
    ends = high_watermarks(settings)
    return lambda: not projector_behind(store, ends)


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
