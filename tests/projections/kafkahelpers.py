"""Producing the projector's input topics in tests (the worker is not needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, Producer, TopicPartition

from projections.read.model import SOURCE_TOPICS
from projections.read.projector import Projector
from projections.read.store import ReadModelStore
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import WireValue, encode_value


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


def high_watermarks(settings: Settings) -> dict[tuple[str, int], int]:
    consumer = Consumer(settings.kafka_config(**{"group.id": "watermarks"}))
    try:
        out: dict[tuple[str, int], int] = {}
        meta = consumer.list_topics(timeout=10)
        for logical in SOURCE_TOPICS:
            topic = settings.topic(logical)
            for p in meta.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                out[(logical, p)] = high
        return out
    finally:
        consumer.close()


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def caught_up(settings: Settings, store: ReadModelStore) -> Callable[[], bool]:
    marks = high_watermarks(settings)

    def check() -> bool:
        gen = store.generation()
        if gen is None:
            return False
        for (logical, partition), high in marks.items():
            if high == 0:
                continue
            if store.positions(gen, logical, [partition]).get(partition, 0) < high:
                return False
        return True

    return check


@contextmanager
def running(projector: Projector) -> Iterator[Projector]:
    stop = threading.Event()
    thread = threading.Thread(target=projector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield projector
    finally:
        stop.set()
        thread.join(30)
