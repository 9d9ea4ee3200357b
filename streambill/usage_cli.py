"""`streambill report | tail | demo`: publish usage, read topics decoded, run the demo.

    streambill report --customer cus_abc123 --feature tokens --quantity 1500 \\
        --property model=gpt-4o
    streambill tail usage-events --from-beginning --max 10 --timeout 5
    streambill demo
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from datetime import datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streambill.codec import Codec
from streambill.sdk import DeliveryError, UsageClient, ValidationError
from streambill.settings import ACCOUNT_EVENTS, ALL_TOPICS, USAGE_EVENTS, Settings
from streambill.tail import TailError, dumps, read, render
from streambill.topics import TopicError, create_topics


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="publish one usage event")
    report.add_argument("--customer", required=True, help="customer id (the message key)")
    report.add_argument("--feature", required=True, help="feature id, e.g. tokens")
    report.add_argument("--quantity", required=True, help="decimal quantity, e.g. 1500 or 0.5")
    report.add_argument("--property", action="append", default=[], metavar="K=V", help="repeatable")
    report.add_argument("--event-id", help="idempotency key (default: a new UUIDv7)")
    report.add_argument("--timestamp", help="event time, RFC 3339 with offset (default: now)")
    report.set_defaults(func=cmd_report)

    tail = sub.add_parser("tail", help="print a topic's values decoded, one JSON per line")
    tail.add_argument("topic", choices=ALL_TOPICS, help="logical topic name")
    tail.add_argument("--from-beginning", action="store_true", help="default: new messages")
    tail.add_argument("--max", type=int, default=None, help="stop after N messages")
    tail.add_argument(
        "--timeout", type=float, default=None, help="stop after S seconds without a message"
    )
    tail.set_defaults(func=cmd_tail)

    demo = sub.add_parser("demo", help="create topics, publish example events, read them back")
    demo.set_defaults(func=cmd_demo)


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")


def _error(message: str) -> None:
    sys.stderr.write(f"streambill: {message}\n")


def _properties(pairs: list[str]) -> dict[str, str]:
    props: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError("properties", f"expected K=V, got {pair!r}")
        props[key] = value
    return props


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError("timestamp", f"not an RFC 3339 time: {text!r}") from None
    if value.utcoffset() is None:
        raise ValidationError("timestamp", "needs an offset, e.g. 2025-03-14T09:26:53Z")
    return value


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with UsageClient(settings) as client:
            event_id = client.report(
                args.customer,
                args.feature,
                args.quantity,
                event_id=args.event_id,
                timestamp=_timestamp(args.timestamp),
                properties=_properties(args.property),
            )
    except ValidationError as err:
        _error(f"invalid {err}")
        return 2
    except DeliveryError as err:
        _error(str(err))
        return 1
    sys.stdout.write(event_id + "\n")
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    codec = Codec()
    try:
        for msg in read(
            settings,
            args.topic,
            from_beginning=args.from_beginning,
            max_messages=args.max,
            idle_timeout=args.timeout,
        ):
            sys.stdout.write(dumps(render(args.topic, msg, codec)) + "\n")
            sys.stdout.flush()
    except TailError as err:
        _error(str(err))
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


# ------------------------------------------------------------------------ demo


def _publish_examples(client: UsageClient) -> dict[str, set[str]]:
    """The seed's usage examples (DESIGN.md, README); returns event ids per topic.

    The subscription goes first: usage of a customer without one is rejected."""
    account = client.subscribe("cus_abc123", "starter")
    usage = client.report_many(
        [
            {"customer_id": "cus_abc123", "feature_id": "tokens", "quantity": 1500},
            {
                "customer_id": "cus_abc123",
                "feature_id": "tokens",
                "quantity": 2300,
                "properties": {"model": "gpt-4o", "input_tokens": "1800", "output_tokens": "500"},
            },
            {
                "customer_id": "cus_img42",
                "feature_id": "image_generations",
                "quantity": 1,
                "properties": {"complexity": "complex", "size": "1024x1024"},
            },
            {
                "customer_id": "cus_img42",
                "feature_id": "image_generations",
                "quantity": 1,
                "properties": {"complexity": "simple"},
            },
            {
                "customer_id": "cus_dev7",
                "feature_id": "transcription_seconds",
                "quantity": "93.5",
                "properties": {"model": "whisper-1"},
            },
        ]
    )
    client.flush()
    return {ACCOUNT_EVENTS: {account}, USAGE_EVENTS: set(usage)}


def _end_offsets(settings: Settings, logical: str, timeout: float = 30.0) -> dict[int, int]:
    """{partition: high watermark} of a topic: where messages published next will land.

    Retries while a just-created topic's partitions still have no leader."""
    topic = settings.topic(logical)
    consumer = Consumer(settings.kafka_config(**{"group.id": "streambill-demo-offsets"}))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in partitions
                }
            except KafkaException as exc:
                if time.monotonic() > deadline:  # e.g. no leader elected yet: retry
                    raise TailError(f"cannot read the end offsets of {topic}: {exc}") from exc
                time.sleep(0.5)
    finally:
        consumer.close()


def _read_back(settings: Settings, starts: Mapping[str, dict[int, int]], sent: dict[str, set[str]]
               ) -> int:  # fmt: skip
    codec, missing = Codec(), 0
    for logical in (ACCOUNT_EVENTS, USAGE_EVENTS):
        waiting = set(sent[logical])
        for msg in read(settings, logical, start_offsets=starts[logical], idle_timeout=10):
            line = render(logical, msg, codec)
            event_id = line.get("value", {}).get("event_id")
            if event_id in waiting:
                waiting.discard(event_id)
                sys.stdout.write(dumps(line) + "\n")
            if not waiting:
                break
        missing += len(waiting)
    return missing


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    try:
        created, existed = create_topics(settings)
        _say(f"topics: {len(created)} created, {len(existed)} already there")
        starts = {t: _end_offsets(settings, t) for t in (ACCOUNT_EVENTS, USAGE_EVENTS)}
        with UsageClient(settings) as client:
            sent = _publish_examples(client)
        count = sum(len(ids) for ids in sent.values())
        _say(f"published {count} events; read back from Kafka, decoded:")
        missing = _read_back(settings, starts, sent)
    except (TopicError, TailError, DeliveryError) as err:
        _error(str(err))
        return 1
    if missing:
        _error(f"{missing} published event(s) were not read back")
        return 1
    _say(f"all {count} events read back")
    return 0
