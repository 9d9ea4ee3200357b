"""Reading topics back in integration tests with a consumer of our own (not the SDK's)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streambill.config.settings import Settings


def consume_all(
    settings: Settings, logical: str, expected: int, timeout: float = 30
) -> list[Message]:
    """Every message of a topic from the beginning, once `expected` arrived (or timeout)."""
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
                messages.append(msg)
        return messages
    finally:
        consumer.close()
