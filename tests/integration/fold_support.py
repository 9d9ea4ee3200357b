"""Helpers for the fold-worker integration tests: worker subprocesses, raw publishing,
reading output topics, and the pure fold the worker's output must equal."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from billing import ledger
from billing.catalog import Catalog
from billing.events import (
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    CustomerStateChanged,
    Event,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from streambill.config.settings import Settings
from streambill.config.topics import create_topics
from streambill.local.procs import settings_env
from streambill.sdk.client import UsageClient
from streambill.wire import convert
from streambill.wire.codec import Codec

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOGLEVEL = os.environ.get("STREAMBILL_TEST_WORKER_LOGLEVEL", "warning")  # of worker processes


def isolated(base: Settings, **overrides: Any) -> Settings:
    """Settings with a topic prefix (hence app id) of their own, topics created."""
    prefix = f"{base.topic_prefix}w{uuid.uuid4().hex[:8]}."
    fields = {
        "topic_prefix": prefix,
        "worker_session_timeout": 6.0,
        **overrides,
    }
    settings = base.model_copy(update=fields)
    create_topics(settings)
    return settings


def delete_topics_with_prefix(settings: Settings, prefix: str) -> int:
    """Delete every topic whose name starts with `prefix` (inputs, outputs and the
    worker's changelog topics); returns how many were deleted."""
    admin = AdminClient(settings.kafka_config())
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
    return len(names)


class WorkerProcess:
    """`streambill worker` as a child process; logs under test-artifacts/."""

    def __init__(
        self, settings: Settings, name: str = "worker", profile: Path | None = None
    ) -> None:
        self.settings = settings
        self.name = name
        self.profile = profile  # cProfile output of the process (bench/fold.py --profile)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.fatal_exits = 0
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self) -> None:
        """Like a process supervisor: restart after a fatal exit (code 70, the
        worker's crash-only answer to a batch it could not make durable or to an
        out-of-order partition). SIGKILLs by the test are its own business."""
        while not self._stopped:
            time.sleep(0.5)
            with self._lock:
                if not self._stopped and self.proc is not None and self.proc.poll() == 70:
                    self.fatal_exits += 1
                    self.start()

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.starts += 1
        log = ARTIFACTS / f"{self.settings.topic_prefix}{self.name}.{self.starts}.log"
        with open(log, "wb") as out:
            prof = ["-m", "cProfile", "-o", str(self.profile)] if self.profile else []
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    *prof,
                    "-m",
                    "streambill.cli",
                    "worker",
                    "--loglevel",
                    LOGLEVEL,
                ],
                env=settings_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self._stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def publish(settings: Settings, items: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Publish (physical topic, key, value) in order; waits for every ack.

    Placed as the topic contract requires (README): murmur2 of the key, the Java
    client's partitioner (`streambill.wire.partitioner.owner`), so a keyed record lands on
    the partition that owns its customer, like the SDK's; a record without a key goes
    to a random partition (the worker dead-letters it `missing_key` wherever it is).
    librdkafka's default (CRC32) would scatter a customer's records away from its
    other topic's partition: the worker would dead-letter them `wrong_partition`."""
    producer = Producer(
        settings.kafka_config(
            **{"enable.idempotence": True, "linger.ms": 5, "partitioner": "murmur2_random"}
        )
    )
    n = 0
    for topic, key, value in items:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    assert left == 0, f"{left} messages not acknowledged"
    return n


def send_with_sdk(settings: Settings, events: Sequence[Event]) -> None:
    """Publish domain events the way applications do: through `UsageClient`, each
    with its explicit event_id and timestamp; flushed (every ack waited for).
    Runs of usage go through `report_many`, account events through the command
    of their type. Order is kept per topic (the client is one producer)."""
    with UsageClient(settings) as client:
        run: list[UsageRecorded] = []
        for event in events:
            if isinstance(event, UsageRecorded):
                run.append(event)
                continue
            if run:
                client.report_many(run)
                run = []
            _account_command(client, event)
        if run:
            client.report_many(run)
        client.flush()


def _account_command(client: UsageClient, e: Event) -> None:
    head: dict[str, Any] = {"event_id": e.event_id, "timestamp": e.timestamp}
    cid = e.customer_id
    if isinstance(e, SubscriptionStarted):
        client.subscribe(cid, e.plan_id, seats=e.seats, plan_version=e.plan_version, **head)
    elif isinstance(e, SubscriptionChanged):
        client.change_plan(cid, e.plan_id, plan_version=e.plan_version, **head)
    elif isinstance(e, SubscriptionCancelled):
        client.cancel(cid, **head)
    elif isinstance(e, SeatsChanged):
        client.change_seats(cid, e.seats, **head)
    elif isinstance(e, CreditsPurchased):
        client.purchase_credits(cid, e.pack_id, e.quantity, **head)
    elif isinstance(e, CreditsGranted):
        client.grant_credits(cid, e.credits, e.expires_at, **head)
    elif isinstance(e, WalletDeposited):
        client.deposit(cid, e.amount, e.currency, **head)
    elif isinstance(e, BalanceAdjusted):
        client.adjust_balance(cid, e.amount, e.currency, e.reason, **head)
    else:
        raise TypeError(f"no SDK command for {type(e).__name__}")


def encode(codec: Codec, value: Any) -> bytes:
    name, record = convert.to_avro(value)
    return codec.encode(name, record)


class TopicReader:
    """Reads a topic from the beginning; `poll()` returns newly decoded values."""

    def __init__(self, settings: Settings, logical: str, codec: Codec) -> None:
        self.codec = codec
        self.topic = settings.topic(logical)
        self.consumer = Consumer(
            settings.kafka_config(
                **{"group.id": f"reader-{uuid.uuid4().hex}", "enable.auto.commit": False}
            )
        )
        meta = self.consumer.list_topics(self.topic, timeout=10)
        parts = meta.topics[self.topic].partitions
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in parts])

    def poll(self, timeout: float = 0.5) -> list[tuple[Any, Any]]:
        """[(message, decoded value)] read within `timeout`."""
        out = []
        for msg in self.consumer.consume(num_messages=10000, timeout=timeout):
            if msg.error() is None and msg.value() is not None:
                name, record = self.codec.decode(msg.value())
                out.append((msg, convert.from_avro(name, record)))
        return out

    def close(self) -> None:
        self.consumer.close()


class StateWatcher:
    """Latest CustomerStateChanged per customer, as read from customer-state."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.reader = TopicReader(settings, "customer-state", codec)
        self.latest: dict[str, CustomerStateChanged] = {}

    def poll(self, timeout: float = 0.5) -> None:
        for _, snap in self.reader.poll(timeout):
            current = self.latest.get(snap.customer_id)
            if current is None or snap.version >= current.version:
                self.latest[snap.customer_id] = snap

    def wait_until(
        self, predicate: Callable[[dict[str, CustomerStateChanged]], bool], timeout: float
    ) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate(self.latest):
                return True
        return False

    def close(self) -> None:
        self.reader.close()


def pure_fold(events: Sequence[Event], catalog: Catalog) -> dict[str, CustomerStateChanged]:
    """billing's fold of `events` (in this order), snapshotted as the worker does:
    as of the customer's latest applied event time, offsets left empty."""
    states: dict[str, ledger.CustomerState] = {}
    watermark: dict[str, datetime] = {}
    for event in events:
        cid = event.customer_id
        state = states.get(cid) or ledger.new_state(cid)
        new_state, effects = ledger.apply(state, event, catalog)
        if effects.rejection is not None or effects.duplicate:
            continue
        states[cid] = new_state
        watermark[cid] = max(watermark.get(cid, event.timestamp), event.timestamp)
    return {
        cid: ledger.snapshot(state, catalog, source_offsets={}, as_of=watermark[cid])
        for cid, state in states.items()
    }


def comparable(snap: CustomerStateChanged) -> CustomerStateChanged:
    return dataclasses.replace(snap, source_offsets={})


def mismatches(
    expected: Mapping[str, CustomerStateChanged], observed: Mapping[str, CustomerStateChanged]
) -> list[str]:
    problems = []
    for cid, want in expected.items():
        got = observed.get(cid)
        if got is None:
            problems.append(f"{cid}: no snapshot")
        elif comparable(got) != comparable(want):
            problems.append(f"{cid}: got {comparable(got)} want {comparable(want)}")
    extra = set(observed) - set(expected)
    if extra:
        problems.append(f"unexpected customers {sorted(extra)[:5]}")
    return problems
