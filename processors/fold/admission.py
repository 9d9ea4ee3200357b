"""The doors of admission: one input record alone, bytes to event, or a rejection.

Every path that reads the input topics (the fold worker's batch fold, the period
close, reconcile) turns a record into an event here, and only here, before the
customer-level rules of `billing.admission.decide`:

1. decode: the direct UsageRecorded decoder, else the codec and the conversion
   (`undecodable`, `unknown_schema`, `invalid_field`, `out_of_range`); the event
   type must belong on the topic it was read from (`unknown_schema`);
2. placement: the record has a key (`missing_key`), the key is the event's
   customer id (`invalid_field`), and the partition owns that key under the
   documented partitioner, `streambill.wire.partitioner.owner` (`wrong_partition`). A
   customer's state lives on one partition; a record elsewhere would be folded
   into a state that a restart or another worker never sees again.

Rejections carry the event when it could be read, so the dead letter names it.
"""

from __future__ import annotations

from typing import cast

from billing.admission import AdmissionPolicy
from billing.events import Event, RejectReason, UsageRecorded
from streambill.config.settings import Settings
from streambill.wire import convert
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.partitioner import owner
from streambill.wire.usage_decoder import UsageDecoder

EVENT_TYPES: tuple[type, ...] = tuple(Event.__args__)


class Rejection(Exception):
    """This record becomes a dead letter with `reason`."""

    def __init__(self, reason: RejectReason, detail: str, event: Event | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.event = event


class Doors:
    """Decode and place records of the two input topics (`partitions` each: the
    topics are co-partitioned). Holds configuration and a memo of placements."""

    def __init__(self, codec: Codec, usage_topic: str, account_topic: str, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self._codec = codec
        self._usage = usage_topic
        self._account = account_topic
        self.partitions = partitions
        self._fast = UsageDecoder(codec).decode
        # key -> (its customer id, its partition), for keys that passed the key check
        self._owners: dict[bytes, tuple[str, int]] = {}

    @property
    def codec(self) -> Codec:
        return self._codec

    def read(self, topic: str, partition: int, key: bytes | None, value: bytes) -> Event:
        """The event of one record, or `Rejection`. Runs once per record on every
        path: a valid usage record whose key was placed before costs the direct
        decode and one lookup; every other record takes `_place`'s checks."""
        fast = self._fast(value) if topic == self._usage and value is not None else None
        event: Event = self._general(topic, value) if fast is None else fast
        placed = self._owners.get(key) if key is not None else None
        if placed is not None and placed[0] == event.customer_id and placed[1] == partition:
            return event
        return self._place(partition, key, event)

    def _place(self, partition: int, key: bytes | None, event: Event) -> Event:
        if key is None:
            raise Rejection(RejectReason.MISSING_KEY, "the record has no key", event)
        if key != event.customer_id.encode():
            raise Rejection(
                RejectReason.INVALID_FIELD,
                f"customer_id {event.customer_id!r} differs from the message key {key!r}",
                event,
            )
        home = owner(key, self.partitions)
        if len(self._owners) >= 1_000_000:  # a bounded memo
            self._owners.clear()
        self._owners[key] = (event.customer_id, home)
        if home != partition:
            raise Rejection(
                RejectReason.WRONG_PARTITION,
                f"key {key!r} belongs on partition {home} of {self.partitions} (murmur2),"
                f" not on {partition}",
                event,
            )
        return event

    def decode(self, topic: str, value: bytes | None) -> Event:
        """Bytes to an input event of `topic`; a tombstone or any bad bytes raise
        `Rejection`. The direct decoder takes valid UsageRecorded (same result,
        several times faster); everything else goes the general way."""
        fast = self._fast(value) if topic == self._usage and value is not None else None
        return self._general(topic, value) if fast is None else fast

    def _general(self, topic: str, value: bytes | None) -> Event:
        if value is None:
            raise Rejection(RejectReason.UNDECODABLE, "a tombstone (null value)")
        try:
            name, record = self._codec.decode(value)
        except DecodeError as exc:
            raise Rejection(RejectReason(exc.reason), str(exc)) from exc
        try:
            decoded: object = convert.from_avro(name, record)
        except convert.InvalidField as exc:
            raise Rejection(RejectReason(exc.reason), str(exc)) from exc
        event = cast(Event, decoded)
        if not isinstance(decoded, EVENT_TYPES) or isinstance(event, UsageRecorded) != (
            topic == self._usage
        ):
            raise Rejection(RejectReason.UNKNOWN_SCHEMA, f"{name} is not accepted on {topic}")
        return event


def policy_from(settings: Settings) -> AdmissionPolicy:
    """The admission settings of a process (every path reads the same ones)."""
    return settings.admission_policy()


DEFAULT_POLICY = Settings.model_construct().admission_policy()
