"""Read a topic and show each value decoded, as one JSON object per line.

Used by `streambill tail` and `streambill demo`, and by tests. Reading never commits
offsets (a random consumer group that only `assign`s partitions), so tailing leaves no
trace on the cluster and cannot disturb the processors' consumer groups.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from streambill.config.settings import Settings
from streambill.wire.codec import Codec, DecodeError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TailError(Exception):
    """The topic cannot be read (missing topic, unreachable cluster); one sentence."""


def json_safe(value: Any) -> Any:
    """A decoded Avro value made JSON-safe: times as RFC 3339 UTC with milliseconds,
    bytes as base64; decimal strings stay strings (never turned into numbers)."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def rfc3339(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def render(logical_topic: str, msg: Message, codec: Codec) -> dict[str, Any]:
    """One message as a JSON-safe dict: where it is, its key, and its decoded value."""
    key = msg.key()
    _, ts_ms = msg.timestamp()
    line: dict[str, Any] = {
        "topic": logical_topic,
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
        "timestamp": rfc3339(_EPOCH + timedelta(milliseconds=ts_ms)) if ts_ms > 0 else None,
    }
    value = msg.value()
    try:
        name, record = codec.decode(value)
    except DecodeError as err:
        line["error"] = {"reason": err.reason, "detail": err.detail}
        line["value_base64"] = base64.b64encode(value or b"").decode("ascii")
        return line
    line["schema"] = name
    line["value"] = json_safe(record)
    return line


def dumps(line: Mapping[str, Any]) -> str:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise TailError(f"the Kafka cluster did not answer: {exc}") from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise TailError(f"topic {topic} does not exist (create it: streambill topics create)")
    return sorted(info.partitions)


def read(
    settings: Settings,
    logical_topic: str,
    *,
    from_beginning: bool = False,
    start_offsets: Mapping[int, int] | None = None,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
) -> Generator[Message, None, None]:
    """Messages of `logical_topic`, per partition in offset order.

    Starts at the end (new messages only), at the beginning, or at `start_offsets`
    ({partition: offset}); stops after `max_messages`, or after `idle_timeout` seconds
    without a new message (None: follow for ever). Closing the generator early
    closes the consumer.
    """
    topic = settings.topic(logical_topic)
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"streambill-tail-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
    )
    try:
        default = OFFSET_BEGINNING if from_beginning else OFFSET_END
        offsets = start_offsets or {}
        consumer.assign(
            [
                TopicPartition(topic, p, offsets.get(p, default))
                for p in _partitions(consumer, topic)
            ]
        )
        seen, last = 0, time.monotonic()
        while max_messages is None or seen < max_messages:
            want = 500 if max_messages is None else min(500, max_messages - seen)
            batch = consumer.consume(num_messages=want, timeout=0.2)
            if not batch:
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    return
                continue
            last = time.monotonic()
            for msg in batch:
                if msg.error() is not None:
                    raise TailError(f"reading {topic} failed: {msg.error()}")
                seen += 1
                yield msg
    finally:
        consumer.close()
