"""The load the faults hit: the demo's population and usage day, published with the
SDK at a steady pace from a thread, optionally mixed with garbage.

Garbage is every kind of bad input a producer can send, each of which the worker
must dead-letter (or, for exact re-sends, deduplicate) without stopping: bytes that
are no Avro at all, a well-formed header of an unknown schema, a known schema with an
invalid field, and valid records the ledger refuses (unknown customer, unknown
feature, negative quantity, a re-used event id with another payload). Exact re-sends
of an event already published are mixed in as well: a producer retry.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from confluent_kafka import Producer

from billing.events import UsageRecorded
from streambill.config.settings import ACCOUNT_EVENTS, USAGE_EVENTS, Settings
from streambill.sdk.client import UsageClient
from streambill.wire import convert
from streambill.wire.codec import Codec

GARBAGE_KINDS = (
    "undecodable",
    "unknown_schema",
    "invalid_field",
    "no_subscription",
    "unknown_feature",
    "negative_quantity",
    "duplicate_conflict",
    "exact_resend",
    "account_undecodable",
)


@dataclass
class Garbage:
    """Makes one bad record at a time; counts what it made by kind."""

    settings: Settings
    codec: Codec
    rng: random.Random
    made: Counter[str] = field(default_factory=Counter)

    def make(
        self, near: UsageRecorded, earlier: Sequence[UsageRecorded]
    ) -> tuple[str, bytes | None, bytes, int]:
        """(physical topic, key, value, timestamp ms) of one bad record next to `near`."""
        kind = self.rng.choice(GARBAGE_KINDS)
        if kind in ("duplicate_conflict", "exact_resend") and not earlier:
            kind = "undecodable"
        self.made[kind] += 1
        usage = self.settings.topic(USAGE_EVENTS)
        key = near.customer_id.encode()
        millis = int(near.timestamp.timestamp() * 1000)
        tag = f"{near.event_id}-g{self.made.total()}"
        if kind == "undecodable":
            return usage, key, self.rng.randbytes(self.rng.randint(1, 40)), millis
        if kind == "account_undecodable":
            junk = b"\xc3\x01" + self.rng.randbytes(3)  # a header cut short
            return self.settings.topic(ACCOUNT_EVENTS), key, junk, millis
        if kind == "unknown_schema":
            return usage, key, b"\xc3\x01" + self.rng.randbytes(8) + b"\x02x", millis
        if kind == "invalid_field":
            name, record = convert.to_avro(replace(near, event_id=tag))
            record["quantity"] = self.rng.choice(("1e3", "12,5", "NaN", "", "--1"))
            return usage, key, self.codec.encode(name, record), millis
        if kind in ("duplicate_conflict", "exact_resend"):
            original = self.rng.choice(earlier)
            value = original
            if kind == "duplicate_conflict":
                value = replace(original, quantity=original.quantity + 1)
            at = int(original.timestamp.timestamp() * 1000)
            return usage, original.customer_id.encode(), self._encode(value), at
        bad = {
            "no_subscription": replace(near, event_id=tag, customer_id=f"cus_ghost_{tag}"),
            "unknown_feature": replace(near, event_id=tag, feature_id="teleportation"),
            "negative_quantity": replace(near, event_id=tag, quantity=Decimal("-3")),
        }[kind]
        return usage, bad.customer_id.encode(), self._encode(bad), millis

    def _encode(self, event: UsageRecorded) -> bytes:
        name, record = convert.to_avro(event)
        return self.codec.encode(name, record)


class LoadRun(threading.Thread):
    """Publishes `events` in order over about `seconds`, in small SDK chunks; with
    `garbage`, a bad record follows a valid one with probability `garbage_share`.

    Re-sends and conflicting re-uses pick their original from `earlier`: events whose
    delivery was confirmed before this run, so the original is always first in the log
    (a conflict that overtook its original would be applied in its place).

    `sent` grows as chunks are queued; `error` holds whatever stopped the thread (the
    test raises it). A broker outage only delays delivery: the SDK's producer keeps
    the messages and the final flush waits for every acknowledgement."""

    def __init__(
        self,
        settings: Settings,
        events: Sequence[UsageRecorded],
        seconds: float,
        *,
        garbage: Garbage | None = None,
        garbage_share: float = 0.05,
        earlier: Sequence[UsageRecorded] = (),
        chunk: int = 50,
    ) -> None:
        super().__init__(name="chaos-load", daemon=True)
        self.settings = settings
        self.events = list(events)
        self.seconds = seconds
        self.garbage = garbage
        self.garbage_share = garbage_share
        self.earlier = list(earlier)
        self.chunk = chunk
        self.sent = 0
        self.garbage_sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # handed to the test thread by `finish`
            self.error = exc

    def _publish(self) -> None:
        chunks = [self.events[i : i + self.chunk] for i in range(0, len(self.events), self.chunk)]
        pause = self.seconds / max(len(chunks), 1)
        # The SDK's partitioner, so a bad record of a customer lands on that customer's
        # partition like the customer's good ones (librdkafka's default would not).
        raw = Producer(
            self.settings.kafka_config(
                **{"enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random"}
            )
        )
        started = time.monotonic()
        with UsageClient(self.settings) as client:
            for n, chunk in enumerate(chunks):
                client.report_many(chunk)
                self.sent += len(chunk)
                if self.garbage is not None:
                    self._mix(raw, chunk)
                # Hold the pace: chunk n is due at n * pause after the start.
                delay = started + (n + 1) * pause - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            client.flush(timeout=300)
        left = raw.flush(300)
        if left:
            raise RuntimeError(f"{left} garbage records were not acknowledged")

    def _mix(self, raw: Producer, chunk: Sequence[UsageRecorded]) -> None:
        garbage = self.garbage
        assert garbage is not None  # only called with garbage
        for event in chunk:
            if garbage.rng.random() >= self.garbage_share:
                continue
            topic, key, value, millis = garbage.make(event, self.earlier)
            raw.produce(topic, value=value, key=key, timestamp=millis)
            self.garbage_sent += 1
        raw.poll(0)

    def finish(self, timeout: float = 400.0) -> None:
        """Wait for the last acknowledgement; re-raise the thread's failure."""
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"the load did not finish within {timeout:.0f}s")
        if self.error is not None:
            raise self.error
