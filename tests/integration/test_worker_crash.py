"""Crash safety of the fold worker: SIGKILL at random moments, restarts, rebalances.

Sizes come from the environment so CI stays bounded while the full run is one
command away:
  STREAMBILL_CRASH_EVENTS (default 40000; the acceptance run uses 200000)
  STREAMBILL_CRASH_KILLS  (default 8; the acceptance run uses 20)
  STREAMBILL_CRASH_SEED   (default random; printed so a failure can be re-run)
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from billing.events import UsageRecorded
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.sdk.client import UsageClient
from streambill.wire.codec import Codec
from tests.integration import scenarios
from tests.integration.fold_support import (
    StateWatcher,
    WorkerProcess,
    isolated,
    mismatches,
    pure_fold,
    send_with_sdk,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

EVENTS = int(os.environ.get("STREAMBILL_CRASH_EVENTS", "40000"))
KILLS = int(os.environ.get("STREAMBILL_CRASH_KILLS", "8"))
SEED = int(os.environ.get("STREAMBILL_CRASH_SEED", str(random.randrange(1 << 30))))
CUSTOMERS = 240


class Publisher(threading.Thread):
    """Publishes the usage stream with the SDK, in chunks spread over `duration` seconds."""

    def __init__(self, settings: Settings, items: list[UsageRecorded], duration: float):
        super().__init__(daemon=True)
        self.settings, self.items, self.duration = settings, items, duration
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            chunks = max(1, int(self.duration * 2))
            size = max(1, len(self.items) // chunks + 1)
            with UsageClient(self.settings) as client:
                for i in range(0, len(self.items), size):
                    client.report_many(self.items[i : i + size])
                    client.flush()
                    time.sleep(self.duration / chunks)
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def _prepare(base: Settings, codec: Codec) -> tuple[Settings, list, list[UsageRecorded], dict]:
    settings = isolated(base, worker_batch_size=2000)
    catalog = load_catalog(settings.catalog_path)
    rng = random.Random(SEED)
    people = scenarios.customers(CUSTOMERS)
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(days=2)
    opening = [e for cid, plan in people for e in scenarios.account_opening(cid, plan, start)]
    stream = [
        e for e, _ in scenarios.usage_stream(people, EVENTS, start + timedelta(hours=1), rng, 0.01)
    ]
    expected = pure_fold(opening + stream, catalog)
    send_with_sdk(settings, opening)
    return settings, opening, stream, expected


@pytest.fixture
def watch() -> Iterator[list[StateWatcher]]:
    holder: list[StateWatcher] = []
    yield holder
    for w in holder:
        w.close()


def _await_fold(settings: Settings, codec: Codec, expected: dict, holder: list) -> None:
    watcher = StateWatcher(settings, codec)
    holder.append(watcher)
    ok = watcher.wait_until(lambda s: not mismatches(expected, s), 120 + EVENTS / 1000)
    problems = mismatches(expected, watcher.latest)
    assert ok, f"seed {SEED}: {len(problems)} customers differ, e.g. {problems[:2]}"


def test_sigkill_restarts_lose_nothing_and_count_nothing_twice(
    base: Settings,
    codec: Codec,
    watch: list,
) -> None:
    settings, _, items, expected = _prepare(base, codec)
    rng = random.Random(SEED + 1)
    worker = WorkerProcess(settings)
    worker.start()
    publisher = Publisher(settings, items, duration=KILLS * 5.0)
    publisher.start()
    for _ in range(KILLS):
        time.sleep(rng.uniform(1.0, 7.0))
        worker.kill()
        worker.start()
    publisher.join()
    assert publisher.error is None, publisher.error
    try:
        _await_fold(settings, codec, expected, watch)
    finally:
        worker.stop()
    print(
        f"seed {SEED}: {len(items)} events, {KILLS} SIGKILLs, {worker.starts} starts, "
        f"{worker.fatal_exits} fatal exits"
    )


def test_rebalances_with_a_killed_and_a_new_worker(
    base: Settings,
    codec: Codec,
    watch: list,
) -> None:
    settings, _, items, expected = _prepare(base, codec)
    a, b, c = (WorkerProcess(settings, n) for n in "abc")
    a.start()
    b.start()
    publisher = Publisher(settings, items, duration=20.0)
    publisher.start()
    try:
        time.sleep(8.0)
        a.kill()
        time.sleep(2.0)
        c.start()
        publisher.join()
        assert publisher.error is None, publisher.error
        _await_fold(settings, codec, expected, watch)
    finally:
        for w in (a, b, c):
            w.stop()
    print(f"seed {SEED}: {len(items)} events; fatal exits {[w.fatal_exits for w in (a, b, c)]}")
