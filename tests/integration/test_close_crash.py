"""SIGKILL during `streambill close` at random points, then re-run: the invoices on
the topic are exactly those of an uninterrupted close, each record once (no
downstream dedupe needed to count them)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from billing.events import Event
from processors.close.plan import Month
from streambill.config.settings import Settings
from tests.close_support import subscribe, usage, utc
from tests.integration.test_close_kafka import Kafka, dedupe_by_id

pytestmark = pytest.mark.integration

NOW = "2030-01-01T00:00:00+00:00"


def many_customers(n: int = 400) -> list[Event]:
    rng = random.Random(7)
    events: list[Event] = []
    for i in range(n):
        c = f"cus_{i:04d}"
        plan = ("writer", "starter", "team", "voice")[i % 4]
        events.append(subscribe(c, plan, utc(2025, 1, 1 + i % 28, i % 24)))
        feature = "transcription" if plan == "voice" else "tokens"
        for _ in range(6):
            day = 1 + rng.randrange(27)
            events.append(usage(c, feature, rng.randrange(1, 90000), utc(2025, 1, day, 12)))
    return events


def _cli(settings: Settings) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env.update(
        {
            "STREAMBILL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "STREAMBILL_TOPIC_PREFIX": settings.topic_prefix,
            "STREAMBILL_PARTITIONS": str(settings.partitions),
        }
    )
    argv = [
        sys.executable,
        "-m",
        "streambill.cli",
        "close",
        "--period",
        "2025-02",
        "--grace",
        "1d",
        "--now",
        NOW,
    ]
    return argv, env


def test_sigkill_at_random_points_then_rerun(env: Settings) -> None:
    kafka = Kafka(env)
    kafka.publish(many_customers())
    argv, environ = _cli(env)
    rng = random.Random(11)
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(
            argv, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    final = subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert kills >= 3  # enough of the attempts really died mid-way

    # reference: the same events closed once, without interruption, in-process
    values = kafka.invoice_records()
    reference = kafka.close("2025-02")  # a re-run: recomputes and verifies every byte
    assert reference.status == "no_op" and reference.sent == 0
    expected = sorted(d for _, d in reference.invoices)
    assert sorted(values) == expected  # the wire holds each invoice exactly once
    ids = Counter(dedupe_by_id(values, kafka.codec))
    assert len(ids) == len(values) == len(expected) > 300
    closes = [
        r
        for b in kafka.log.read(kafka.topics.closes, *kafka.log.watermarks(kafka.topics.closes))
        for r in b
    ]
    assert sum(1 for r in closes if r.key == str(Month(2025, 2)).encode()) == 1
    kafka.log.close()
