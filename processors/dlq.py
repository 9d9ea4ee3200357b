"""`streambill dlq replay`: republish dead letters that can now succeed.

Reads usage-rejected from the beginning up to its high watermarks (a snapshot, so a
replay never chases its own new dead letters), keeps the dead letters that match
`--reason` and pass `can_succeed`, and republishes each ORIGINAL payload to its
source topic with the customer as key. Each event id is republished at most once
per run. The worker then applies it exactly once: dead letters never enter its
`seen` table, and a second copy of an applied event is deduplicated by event id.

Reasons that can never succeed with the same bytes (negative_quantity,
token_breakdown, duplicate_conflict, too_late) are never replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, Producer, TopicPartition

from billing.events import CustomerStateChanged, EventRejected, RejectReason
from streambill import convert
from streambill import settings as names
from streambill.codec import Codec, DecodeError
from streambill.settings import Settings

NEVER_REPLAYED = frozenset(
    {
        RejectReason.NEGATIVE_QUANTITY,
        RejectReason.TOKEN_BREAKDOWN,
        RejectReason.DUPLICATE_CONFLICT,
        RejectReason.TOO_LATE,
    }
)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    scanned: int
    replayed: int
    skipped: dict[str, int]


def read_all(settings: Settings, logical_topic: str, group_suffix: str) -> Iterator[bytes]:
    """Every value of a topic from offset 0 up to the high watermarks at call time."""
    topic = settings.topic(logical_topic)
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"{settings.worker_group()}-{group_suffix}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        partitions = sorted(meta.topics[topic].partitions)
        ends: dict[int, int] = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > 0:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        while ends:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                if msg.error() is not None:
                    continue
                p, off = msg.partition(), msg.offset()
                if p in ends and off < ends[p]:
                    value = msg.value()
                    if value is not None:
                        yield value
                    if off + 1 >= ends[p]:
                        del ends[p]
    finally:
        consumer.close()


def latest_states(codec: Codec, values: Iterable[bytes]) -> dict[str, CustomerStateChanged]:
    states: dict[str, CustomerStateChanged] = {}
    for value in values:
        name, record = codec.decode(value)
        snap = convert.from_avro(name, record)
        if isinstance(snap, CustomerStateChanged):
            states[snap.customer_id] = snap
    return states


class ReplayFilter:
    """Decides whether a dead letter can succeed now."""

    def __init__(
        self,
        codec: Codec,
        states: dict[str, CustomerStateChanged],
        now: Callable[[], datetime],
        future_tolerance_s: float,
    ) -> None:
        self._codec = codec
        self._states = states
        self._now = now
        self._tolerance = future_tolerance_s

    def can_succeed(self, letter: EventRejected) -> str | None:
        """None if it may succeed now, else why not."""
        if letter.reason in NEVER_REPLAYED:
            return "never_replayable"
        try:
            name, record = self._codec.decode(letter.original)
            event = convert.from_avro(name, record)
        except (DecodeError, convert.InvalidField):
            return "still_invalid"
        customer = getattr(event, "customer_id", None)
        state = self._states.get(customer) if customer is not None else None
        if letter.reason is RejectReason.NO_SUBSCRIPTION and (
            state is None or state.status != "active"
        ):
            return "still_no_subscription"
        timestamp = getattr(event, "timestamp", None)
        if (
            letter.reason is RejectReason.TIMESTAMP_IN_FUTURE
            and timestamp is not None
            and (timestamp - self._now()).total_seconds() > self._tolerance
        ):
            return "still_in_future"
        return None


def replay(
    settings: Settings,
    codec: Codec,
    reasons: set[RejectReason] | None,
    now: Callable[[], datetime],
) -> ReplayReport:
    states = latest_states(codec, read_all(settings, names.CUSTOMER_STATE, "dlq-states"))
    gate = ReplayFilter(codec, states, now, settings.future_tolerance.total_seconds())
    producer = Producer(settings.kafka_config(**{"enable.idempotence": True}))
    scanned = replayed = 0
    skipped: dict[str, int] = {}
    done: set[str] = set()
    for value in read_all(settings, names.USAGE_REJECTED, "dlq-replay"):
        scanned += 1
        name, record = codec.decode(value)
        letter = convert.from_avro(name, record)
        if not isinstance(letter, EventRejected):
            continue
        why = _skip_reason(letter, reasons, done) or gate.can_succeed(letter)
        if why is not None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        if letter.event_id is not None:
            done.add(letter.event_id)
        key = letter.customer_id.encode() if letter.customer_id else None
        producer.produce(letter.source_topic, value=letter.original, key=key)
        producer.poll(0)
        replayed += 1
    remaining = producer.flush(30)
    if remaining:
        raise RuntimeError(f"{remaining} replayed messages were not acknowledged by the broker")
    return ReplayReport(scanned, replayed, skipped)


def _skip_reason(
    letter: EventRejected, reasons: set[RejectReason] | None, done: set[str]
) -> str | None:
    if reasons is not None and letter.reason not in reasons:
        return "other_reason"
    if letter.source_topic is None:
        return "no_source_topic"
    if letter.event_id is not None and letter.event_id in done:
        return "already_replayed_this_run"
    return None
