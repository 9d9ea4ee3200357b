"""The producer SDK: report usage and send account commands to Kafka.

    with UsageClient(settings) as client:
        client.report("cus_abc123", "tokens", 1500, properties={"model": "gpt-4o"})

Guarantees:
- Every argument is validated before anything is sent; `ValidationError` names the field.
- Each value is Avro single-object encoded (`streambill.wire.codec`), keyed by customer id
  (UTF-8), with the Kafka message timestamp set to the event time.
- The producer is idempotent with `acks=all`: a broker-side retry never duplicates, and a
  message counts as delivered only once every in-sync replica has it.
- Nothing is lost silently: `flush()` raises `DeliveryError` listing the event ids whose
  delivery failed (and how many are still pending at a timeout). Consumers dedupe by
  `event_id`, so re-sending the listed events is always safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaError, Message, Producer

from billing.bounds import MAX_ID_CHARS
from billing.events import (
    AccountEvent,
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from streambill.config.settings import ACCOUNT_EVENTS, USAGE_EVENTS, Settings
from streambill.sdk import validate as v
from streambill.sdk.validate import ValidationError
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import to_avro
from streambill.wire.usage_wire import EventIds, IdBlocks, UsageEncoder

__all__ = ["DeliveryError", "UsageClient", "ValidationError"]

# Throughput settings; callers may override any of them through `producer_config`.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "partitioner": "murmur2_random",  # same partitions as Java and Faust (aiokafka) clients
}
# Fixed: the delivery guarantees above depend on them.
PRODUCER_REQUIRED: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "delivery.report.only.error": True,  # successes cost nothing; failures are all kept
}
_RESERVED = {"on_delivery", "error_cb", *PRODUCER_REQUIRED}
_POLL_EVERY = 1000  # produce calls between two polls that serve failure reports
_MAX_PLAIN_INT = 10**18  # ints below need no length check
_NO_PROPERTIES: Mapping[str, str] = {}


class DeliveryError(Exception):
    """Events that did not reach Kafka. `failed` is [(event_id, error)]; `pending` counts
    messages still queued when `flush` timed out (they may yet be delivered)."""

    def __init__(self, failed: list[tuple[str, str]], pending: int = 0) -> None:
        ids = ", ".join(event_id for event_id, _ in failed[:20])
        more = f" (+{len(failed) - 20} more)" if len(failed) > 20 else ""
        super().__init__(
            f"{len(failed)} event(s) not delivered{': ' + ids if ids else ''}{more}; "
            f"{pending} still pending"
        )
        self.failed = failed
        self.pending = pending

    @property
    def event_ids(self) -> list[str]:
        return [event_id for event_id, _ in self.failed]


class UsageClient:
    """Reports usage to usage-events and account commands to account-events.

    Thread-safe. Use as a context manager, or call `flush()` before exiting: messages are
    batched in memory (`linger.ms`) and only `flush()` proves they were delivered.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        producer_config: Mapping[str, Any] | None = None,
        codec: Codec | None = None,
    ) -> None:
        extra = dict(producer_config or {})
        reserved = _RESERVED & set(extra)
        if reserved:
            raise ValueError(f"producer_config may not set {sorted(reserved)}")
        config = settings.kafka_config(**{**PRODUCER_DEFAULTS, **extra, **PRODUCER_REQUIRED})
        config["on_delivery"] = self._on_delivery
        config["error_cb"] = self._on_error
        self._codec = codec or Codec()
        self._usage = UsageEncoder(self._codec)
        self._ids = EventIds()
        self._usage_topic = settings.topic(USAGE_EVENTS)
        self._account_topic = settings.topic(ACCOUNT_EVENTS)
        self._failed: list[tuple[str, str]] = []
        self._fatal: str | None = None
        self._lock = threading.Lock()
        self._sent = 0
        self._producer = Producer(config)

    # ------------------------------------------------------------------ usage

    def report(
        self,
        customer_id: str,
        feature_id: str,
        quantity: int | Decimal | str,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> str:
        """Queue one usage event; returns its event id (generated, time-ordered, if None).

        `quantity` is an int, a Decimal or a decimal string (never a float), >= 0;
        `timestamp` (event time) must be timezone-aware and defaults to now.
        """
        key, value, millis, eid = self._usage_message(
            self._ids, customer_id, feature_id, quantity, event_id, timestamp, properties
        )
        self._produce(self._usage_topic, key, value, millis)
        return eid

    def report_many(self, events: Iterable[Mapping[str, Any] | UsageRecorded]) -> list[str]:
        """Queue many usage events; returns their event ids in order.

        Each event is a mapping with `report`'s argument names (customer_id, feature_id,
        quantity, and optionally event_id, timestamp, properties) or a UsageRecorded.
        All are validated before the first is sent: one bad event (its index is in the
        `ValidationError`) sends none.
        """
        fresh = IdBlocks(self._ids)
        build = self._usage_message
        messages = []
        for index, event in enumerate(events):
            try:
                messages.append(build(fresh, *v.usage_fields(event)))
            except ValidationError as err:
                raise ValidationError(err.field, err.detail, index) from None
        produce, poll, topic = self._producer.produce, self._producer.poll, self._usage_topic
        for n, (key, value, millis, _) in enumerate(messages, 1):
            try:
                produce(topic, value, key, timestamp=millis)
            except BufferError:
                self._produce(topic, key, value, millis)  # waits for room, then sends
            if n % _POLL_EVERY == 0:
                poll(0)
        return [m[3] for m in messages]

    def _usage_message(
        self,
        new_id: Callable[[], str],
        customer_id: object,
        feature_id: object,
        quantity: object,
        event_id: object,
        timestamp: object,
        properties: object,
    ) -> tuple[bytes, bytes, int, str]:
        """(key, value, event time ms, event id) of one usage event.

        Inline checks accept the common shapes cheaply (this runs once per event on
        the SDK's hot path); anything else goes through `sdk_validate`, which normalises the
        value or raises the `ValidationError` naming the field.
        """
        if (
            type(customer_id) is not str
            or not customer_id
            or len(customer_id) > MAX_ID_CHARS
            or customer_id.isspace()
        ):
            customer_id = v.identifier(customer_id, "customer_id")
        if (
            type(feature_id) is not str
            or not feature_id
            or len(feature_id) > MAX_ID_CHARS
            or feature_id.isspace()
        ):
            feature_id = v.identifier(feature_id, "feature_id")
        if type(quantity) is int and 0 <= quantity < _MAX_PLAIN_INT:
            amount = str(quantity)
        else:
            amount = v.decimal_text(quantity, "quantity")
        millis = time.time_ns() // 1_000_000 if timestamp is None else v.event_millis(timestamp)
        props = _NO_PROPERTIES if properties is None else v.properties(properties)
        eid = new_id() if event_id is None else v.identifier(event_id, "event_id")
        value = self._usage.encode(eid, customer_id, feature_id, amount, millis, props)
        return customer_id.encode("utf-8"), value, millis, eid

    # ------------------------------------------------------- account commands

    def subscribe(
        self,
        customer_id: str,
        plan_id: str,
        *,
        seats: int = 1,
        plan_version: int | None = None,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Start a subscription; its periods are anchored at `timestamp` (default now).
        `plan_version` pins the plan version it is billed on (None: the plan's lowest
        version; pin the version you offer, see the README's catalog runbook)."""
        head = self._head(customer_id, event_id, timestamp)
        return self._send_account(
            SubscriptionStarted(
                **head,
                plan_id=v.identifier(plan_id, "plan_id"),
                seats=v.count(seats, "seats"),
                plan_version=_version(plan_version),
            )
        )

    def change_plan(
        self,
        customer_id: str,
        plan_id: str,
        *,
        plan_version: int | None = None,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Move to `plan_id` (at `plan_version`) from the next period boundary; another
        version of the customer's own plan migrates them to it."""
        head = self._head(customer_id, event_id, timestamp)
        return self._send_account(
            SubscriptionChanged(
                **head,
                plan_id=v.identifier(plan_id, "plan_id"),
                plan_version=_version(plan_version),
            )
        )

    def cancel(
        self, customer_id: str, *, event_id: str | None = None, timestamp: datetime | None = None
    ) -> str:
        """End the subscription at the end of the current period."""
        return self._send_account(
            SubscriptionCancelled(**self._head(customer_id, event_id, timestamp))
        )

    def change_seats(
        self,
        customer_id: str,
        seats: int,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Set the seat count from `timestamp` on (prorated by billing)."""
        head = self._head(customer_id, event_id, timestamp)
        return self._send_account(SeatsChanged(**head, seats=v.count(seats, "seats")))

    def purchase_credits(
        self,
        customer_id: str,
        pack_id: str,
        quantity: int = 1,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Buy `quantity` credit packs (issues a purchase invoice)."""
        head = self._head(customer_id, event_id, timestamp)
        return self._send_account(
            CreditsPurchased(
                **head,
                pack_id=v.identifier(pack_id, "pack_id"),
                quantity=v.count(quantity, "quantity"),
            )
        )

    def grant_credits(
        self,
        customer_id: str,
        credits: int | Decimal | str,
        expires_at: datetime | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Grant free credits (> 0), optionally expiring at `expires_at` (timezone-aware)."""
        head = self._head(customer_id, event_id, timestamp)
        if expires_at is not None:
            v.event_millis(expires_at, "expires_at")
        amount = Decimal(v.decimal_text(credits, "credits", positive=True))
        return self._send_account(CreditsGranted(**head, credits=amount, expires_at=expires_at))

    def deposit(
        self,
        customer_id: str,
        amount: int | Decimal | str,
        currency: str,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Add money (> 0) to a balance plan's wallet (issues a purchase invoice)."""
        head = self._head(customer_id, event_id, timestamp)
        value = Decimal(v.decimal_text(amount, "amount", positive=True))
        return self._send_account(
            WalletDeposited(**head, amount=value, currency=v.currency(currency))
        )

    def adjust_balance(
        self,
        customer_id: str,
        amount: int | Decimal | str,
        currency: str,
        reason: str = "",
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Correct the wallet by a signed, non-zero `amount`, with a reason."""
        head = self._head(customer_id, event_id, timestamp)
        if not isinstance(reason, str):
            raise ValidationError("reason", f"expected a string, got {type(reason).__name__}")
        return self._send_account(
            BalanceAdjusted(
                **head,
                amount=Decimal(v.signed_decimal_text(amount, "amount")),
                currency=v.currency(currency),
                reason=reason,
            )
        )

    def _head(self, customer_id: object, event_id: object, timestamp: object) -> dict[str, Any]:
        if timestamp is None:
            timestamp = datetime.now(UTC)
        v.event_millis(timestamp)
        return {
            "event_id": self._ids() if event_id is None else v.identifier(event_id, "event_id"),
            "customer_id": v.identifier(customer_id, "customer_id"),
            "timestamp": timestamp,
        }

    def _send_account(self, event: AccountEvent) -> str:
        name, record = to_avro(event)
        value = self._codec.encode(name, record)
        millis = v.event_millis(event.timestamp)
        self._produce(self._account_topic, event.customer_id.encode("utf-8"), value, millis)
        return event.event_id

    # -------------------------------------------------------------- delivery

    def _produce(self, topic: str, key: bytes, value: bytes, millis: int) -> None:
        producer = self._producer
        while True:
            try:
                producer.produce(topic, value, key, timestamp=millis)
                break
            except BufferError:  # local queue full: let librdkafka drain it, then retry
                producer.poll(0.05)
        self._sent += 1
        if self._sent % _POLL_EVERY == 0:
            producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        """Called (from poll/flush) only for failures, given `delivery.report.only.error`."""
        if err is None:
            return
        try:
            event_id = str(self._codec.decode(msg.value())[1].get("event_id"))
        except DecodeError:
            event_id = "<unreadable>"
        with self._lock:
            self._failed.append((event_id, str(err)))

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():  # e.g. idempotence broken: this producer can deliver nothing more
            with self._lock:
                self._fatal = str(err)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued event is delivered or has failed.

        Raises `DeliveryError` listing failed event ids since the last flush, or when
        `timeout` (seconds) ran out with messages still pending.
        """
        pending = self._producer.flush(-1 if timeout is None else timeout)
        with self._lock:
            failed, self._failed = self._failed, []
            fatal = self._fatal
        if fatal is not None:
            failed.append(("<producer>", f"fatal producer error: {fatal}"))
        if failed or pending:
            raise DeliveryError(failed, pending)

    def close(self) -> None:
        """Flush (raising `DeliveryError` if anything was not delivered)."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.flush()
        except DeliveryError as err:
            if exc is None:
                raise
            exc.add_note(f"and on exit: {err}")  # keep the body's error, lose nothing


def _version(value: int | None) -> int | None:
    """A plan version: None, or a whole number from 1 to 2**31 - 1 (the wire's int)."""
    return None if value is None else v.count(value, "plan_version")
