"""Helpers for the fold-worker integration tests: worker subprocesses, raw publishing,
reading output topics, and the pure fold the worker's output must equal."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from billing import ledger
from billing.catalog import Catalog
from billing.events import CustomerStateChanged, Event
from streambill import convert
from streambill.codec import Codec
from streambill.settings import Settings
from streambill.topics import create_topics

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def isolated(base: Settings, **overrides: Any) -> Settings:
    """Settings with a topic prefix (hence app id) of their own, topics created."""
    prefix = f"{base.topic_prefix}w{uuid.uuid4().hex[:8]}."
    fields = {
        "topic_prefix": prefix,
        "worker_session_timeout": 6.0,
        "worker_batch_within": 0.005,
        **overrides,
    }
    settings = base.model_copy(update=fields)
    create_topics(settings)
    return settings


def env_for(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "total_seconds"):
            value = f"PT{value.total_seconds()}S"
        env[f"STREAMBILL_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """`streambill worker` as a child process; logs under test-artifacts/."""

    def __init__(self, settings: Settings, name: str = "worker") -> None:
        self.settings = settings
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.starts += 1
        log = ARTIFACTS / f"{self.settings.topic_prefix}{self.name}.{self.starts}.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streambill.cli", "worker", "--loglevel", "warning"],
                env=env_for(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def publish(settings: Settings, items: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Publish (physical topic, key, value) in order; waits for every ack."""
    producer = Producer(settings.kafka_config(**{"enable.idempotence": True, "linger.ms": 5}))
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


def pure_fold(
    events: Sequence[Event], catalog: Catalog
) -> dict[str, CustomerStateChanged]:
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
