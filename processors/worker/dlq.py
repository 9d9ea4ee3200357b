"""`streambill dlq replay`: republish dead letters that can now succeed.

Reads usage-rejected from the beginning up to its high watermarks (a snapshot, so a
replay never chases its own new dead letters), keeps the dead letters that match
`--reason` and pass `can_succeed`, and republishes each ORIGINAL payload to its
source topic as the topic contract (README) requires of every producer: keyed by the
event's customer id, on the partition that owns that key under
`streambill.wire.partitioner.owner` (murmur2, given explicitly, never left to librdkafka's
default CRC32 partitioner), with the Kafka message timestamp set to the event time.
Anything else would be dead-lettered again (`wrong_partition`), or land where the
customer's other events are not, and a wrong timestamp misleads every reader that
seeks by time. So a dead letter whose original bytes do not decode to an input event
is skipped (`still_invalid`): there is no key, partition or event time to give it.
Replaying `missing_key` and `wrong_partition` dead letters is what repairs them.

Each `(customer_id, event_id)` (the dedupe scope of `billing.admission`) is
republished at most once per run; a record of usage-rejected that is not a dead
letter is counted (`not_a_dead_letter`) and skipped. The worker then applies it
exactly once: dead letters never enter its `seen` table, and a second copy of an
applied event is deduplicated by event id. A republished message the broker does not
acknowledge fails the run (RuntimeError), after the others were flushed; running the
replay again is safe for the same reason.

Reasons that can never succeed with the same bytes (negative_quantity,
token_breakdown, duplicate_conflict, too_late) are never replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from billing.admission import AdmissionPolicy, decide, dedupe_key, to_ms
from billing.events import (
    CustomerStateChanged,
    Event,
    EventRejected,
    RejectReason,
    UsageRecorded,
)
from streambill.config import settings as names
from streambill.config.settings import Settings
from streambill.wire import convert
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.fields import to_millis
from streambill.wire.partitioner import owner

NEVER_REPLAYED = frozenset(
    {
        RejectReason.NEGATIVE_QUANTITY,
        RejectReason.TOKEN_BREAKDOWN,
        RejectReason.DUPLICATE_CONFLICT,
        RejectReason.TOO_LATE,
        RejectReason.SPEND_CAP_EXCEEDED,  # the period's spend only grows: refused again
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
                if p is not None and off is not None and p in ends and off < ends[p]:
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
        snap = _decoded(codec, value)
        if isinstance(snap, CustomerStateChanged):
            states[snap.customer_id] = snap
    return states


def original_event(codec: Codec, original: bytes) -> Event | None:
    """The input event a dead letter's original bytes encode, or None when they do
    not decode, do not convert, or encode something other than an input event."""
    event = _decoded(codec, original)
    return event if isinstance(event, Event) else None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and how one original payload is republished: `key` is the event's customer
    id (UTF-8), `partition` the one that owns it, `timestamp_ms` the event time."""

    topic: str
    partition: int
    key: bytes
    timestamp_ms: int


def placement(event: Event, source_topic: str, partitions: int | None) -> Placement | str:
    """The placement of `event` on `source_topic` of `partitions` partitions, or why it
    cannot be placed (`source_topic_missing`: the topic is gone or has no partitions).

    Pure: the decision `replay` sends by. The partition is `owner(key, partitions)`,
    whatever partition the original record was on: the one the fold worker owns the
    customer through, so the record is neither dead-lettered `wrong_partition` again
    nor folded on another partition than the customer's other events."""
    if partitions is None or partitions < 1:
        return "source_topic_missing"
    key = event.customer_id.encode()
    return Placement(source_topic, owner(key, partitions), key, to_millis(event.timestamp))


class ReplayFilter:
    """Decides whether a dead letter can succeed now."""

    def __init__(
        self,
        states: dict[str, CustomerStateChanged],
        now: Callable[[], datetime],
        policy: AdmissionPolicy,
    ) -> None:
        self._states = states
        self._now = now
        self._policy = policy

    def can_succeed(self, letter: EventRejected, event: Event | None) -> str | None:
        """None if it may succeed now, else why not. `event` is `original_event` of
        the letter's original bytes (None: they do not decode to an input event)."""
        if letter.reason in NEVER_REPLAYED:
            return "never_replayable"
        if event is None:
            return "still_invalid"
        state = self._states.get(event.customer_id)
        if letter.reason is RejectReason.NO_SUBSCRIPTION and (
            state is None or state.status != "active"
        ):
            return "still_no_subscription"
        if letter.reason is RejectReason.TIMESTAMP_IN_FUTURE:
            # the future rule of `billing.admission.decide` alone (no watermark, no
            # dedupe memory), on this process's clock as the worker applies it on its own
            usage = isinstance(event, UsageRecorded)
            _, refusal = decide(
                self._policy, usage, to_ms(event.timestamp), None, None, to_ms(self._now())
            )
            if refusal is not None:
                return "still_in_future"
        return None


def replay(
    settings: Settings,
    codec: Codec,
    reasons: set[RejectReason] | None,
    now: Callable[[], datetime],
) -> ReplayReport:
    states = latest_states(codec, read_all(settings, names.CUSTOMER_STATE, "dlq-states"))
    gate = ReplayFilter(states, now, settings.admission_policy())
    failures: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}/{msg.partition()}: {err}")

    producer = Producer(
        settings.kafka_config(**{"enable.idempotence": True, "on_delivery": delivered})
    )
    counts = partition_counts(producer)
    scanned = replayed = 0
    skipped: dict[str, int] = {}
    done: set[str] = set()
    for value in read_all(settings, names.USAGE_REJECTED, "dlq-replay"):
        scanned += 1
        letter = _letter(codec, value)
        if letter is None:
            skipped["not_a_dead_letter"] = skipped.get("not_a_dead_letter", 0) + 1
            continue
        target = _target(letter, codec, gate, counts, reasons, done)
        if isinstance(target, str):
            skipped[target] = skipped.get(target, 0) + 1
            continue
        if letter.event_id is not None:
            done.add(dedupe_key(letter.customer_id or "", letter.event_id))
        producer.produce(
            target.topic,
            value=letter.original,
            key=target.key,
            partition=target.partition,
            timestamp=target.timestamp_ms,
        )
        producer.poll(0)
        replayed += 1
    remaining = producer.flush(30)
    if remaining or failures:
        raise RuntimeError(
            f"{remaining} replayed messages not acknowledged within 30 s, "
            f"{len(failures)} refused by the broker (first: {failures[:3]})"
        )
    return ReplayReport(scanned, replayed, skipped)


def _letter(codec: Codec, value: bytes | None) -> EventRejected | None:
    """The dead letter in one usage-rejected record, or None for a record that is not
    one (a tombstone, other bytes): counted and skipped, never fatal to the run."""
    letter = _decoded(codec, value)
    return letter if isinstance(letter, EventRejected) else None


def _decoded(codec: Codec, value: bytes | None) -> object | None:
    """The value of one record, or None for a tombstone or bytes that do not decode."""
    if value is None:
        return None
    try:
        name, record = codec.decode(value)
        return convert.from_avro(name, record)
    except (DecodeError, convert.InvalidField):
        return None


def partition_counts(producer: Producer) -> dict[str, int]:
    """Partition count of every topic of the cluster, read once per run. All topics
    rather than the source topics one by one: metadata asked for a missing topic may
    auto-create it with the broker's default partition count."""
    topics = producer.list_topics(timeout=10).topics
    return {name: len(t.partitions) for name, t in topics.items() if t.error is None}


def _target(
    letter: EventRejected,
    codec: Codec,
    gate: ReplayFilter,
    counts: dict[str, int],
    reasons: set[RejectReason] | None,
    done: set[str],
) -> Placement | str:
    """Where to republish `letter`'s original bytes, or why it is skipped."""
    why = _skip_reason(letter, reasons, done)
    if why is not None or letter.source_topic is None:
        return why or "no_source_topic"
    event = original_event(codec, letter.original)
    why = gate.can_succeed(letter, event)
    if why is not None or event is None:
        return why or "still_invalid"
    return placement(event, letter.source_topic, counts.get(letter.source_topic))


def _skip_reason(
    letter: EventRejected, reasons: set[RejectReason] | None, done: set[str]
) -> str | None:
    if reasons is not None and letter.reason not in reasons:
        return "other_reason"
    if letter.source_topic is None:
        return "no_source_topic"
    if (
        letter.event_id is not None
        and dedupe_key(letter.customer_id or "", letter.event_id) in done
    ):
        return "already_replayed_this_run"
    return None
