"""The fold worker against the real broker: end to end per plan, duplicates, every
dead-letter reason with the stream continuing, dlq replay, replay equals live, metrics."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.events import EventRejected, SubscriptionStarted, UsageRecorded
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.local.procs import free_port, settings_env
from streambill.wire import convert
from streambill.wire.codec import Codec
from tests.integration import scenarios
from tests.integration.fold_support import (
    StateWatcher,
    TopicReader,
    WorkerProcess,
    encode,
    isolated,
    mismatches,
    publish,
    pure_fold,
    send_with_sdk,
)

pytestmark = pytest.mark.integration
WAIT = 90.0


@pytest.fixture
def running(base: Settings) -> Iterator[tuple[Settings, WorkerProcess]]:
    settings = isolated(base, worker_metrics_port=free_port())
    worker = WorkerProcess(settings)
    worker.start()
    yield settings, worker
    worker.stop()


def _open_accounts(settings: Settings, codec: Codec, opening: list) -> StateWatcher:
    """Publish account events and wait until applied: Kafka orders nothing across
    the two input topics, so usage published at once could overtake them."""
    send_with_sdk(settings, opening)
    watcher = StateWatcher(settings, codec)
    wanted = {e.customer_id for e in opening}
    assert watcher.wait_until(
        lambda s: all(c in s and s[c].status == "active" for c in wanted), WAIT
    ), "subscriptions not applied"
    return watcher


def _now() -> datetime:
    return datetime.now(tz=UTC).replace(microsecond=0)


def test_end_to_end_every_plan_equals_pure_fold(
    running: tuple[Settings, WorkerProcess], codec: Codec
) -> None:
    settings, _ = running
    catalog = load_catalog(settings.catalog_path)
    rng = random.Random(7)
    people = scenarios.customers(2 * len(scenarios.PLANS))
    start = _now() - timedelta(hours=1)
    opening = [e for cid, plan in people for e in scenarios.account_opening(cid, plan, start)]
    send_with_sdk(settings, opening)
    watcher = StateWatcher(settings, codec)
    assert watcher.wait_until(
        lambda s: len(s) == len(people) and all(x.status == "active" for x in s.values()), WAIT
    ), "subscriptions not applied"
    stream = list(scenarios.usage_stream(people, 2000, start + timedelta(minutes=1), rng, 0.05))
    send_with_sdk(settings, [e for e, _ in stream])
    expected = pure_fold(opening + [e for e, _ in stream], catalog)
    assert watcher.wait_until(lambda s: not mismatches(expected, s), WAIT), mismatches(
        expected, watcher.latest
    )[:3]

    metrics = (
        urllib.request.urlopen(
            f"http://127.0.0.1:{settings.worker_metrics_port}/metrics", timeout=5
        )
        .read()
        .decode()
    )
    dups = sum(1 for _, dup in stream if dup)
    assert f"streambill_worker_events_deduplicated_total {float(dups)}" in metrics
    applied = len(opening) + len(stream) - dups
    assert f"streambill_worker_events_applied_total {float(applied)}" in metrics
    assert "streambill_worker_consumer_lag{" in metrics

    # Replay equals live: a fresh worker (new app id, hence new group and tables)
    # from the beginning of the topics reaches the same snapshots, offsets included.
    live = dict(watcher.latest)
    watcher.poll(1.0)
    replay_settings = settings.model_copy(
        update={"worker_app_id": "replay", "worker_metrics_port": 0}
    )
    replayed = StateWatcher(settings, codec)
    replayed.poll(2.0)
    replayed.latest.clear()  # only what the fresh worker writes from now on counts
    fresh = WorkerProcess(replay_settings, "replay")
    fresh.start()
    try:
        assert replayed.wait_until(
            lambda s: all(s.get(c) == snap for c, snap in live.items()), WAIT
        ), [d for c, snap in live.items() if (d := _diff(snap, replayed.latest.get(c)))][:3]
    finally:
        fresh.stop()


def _diff(want: object, got: object) -> dict[str, object]:
    """Fields that differ between two snapshots (readable assertion messages)."""
    if got is None:
        return {"missing": want}
    return {
        f.name: (getattr(want, f.name), getattr(got, f.name))
        for f in dataclasses.fields(want)  # type: ignore[arg-type]
        if getattr(want, f.name) != getattr(got, f.name)
    }


def test_duplicates_applied_once_and_conflicts_dead_lettered(
    running: tuple[Settings, WorkerProcess], codec: Codec
) -> None:
    settings, _ = running
    catalog = load_catalog(settings.catalog_path)
    start = _now() - timedelta(hours=1)
    opening = scenarios.account_opening("cus_dup", "starter", start)
    first = UsageRecorded("dup-1", "cus_dup", "tokens", Decimal(700), start + timedelta(minutes=1))
    conflict = dataclasses.replace(first, quantity=Decimal(9))
    after = UsageRecorded("dup-2", "cus_dup", "tokens", Decimal(5), start + timedelta(minutes=2))
    watcher = _open_accounts(settings, codec, opening)
    send_with_sdk(settings, [first, first, conflict, first, after])
    expected = pure_fold([*opening, first, after], catalog)
    assert watcher.wait_until(lambda s: not mismatches(expected, s), WAIT)
    letters = _dead_letters(settings, codec, 1)
    assert [(x.reason.value, x.event_id) for x in letters] == [("duplicate_conflict", "dup-1")]
    assert letters[0].original == encode(codec, conflict)


def _dead_letters(settings: Settings, codec: Codec, n: int) -> list[EventRejected]:
    reader = TopicReader(settings, "usage-rejected", codec)
    found: list[EventRejected] = []
    deadline = time.monotonic() + WAIT
    while len(found) < n and time.monotonic() < deadline:
        found += [v for _, v in reader.poll()]
    reader.poll(1.0)
    reader.close()
    return found


def _truncated(codec: Codec, event: UsageRecorded) -> bytes:
    return encode(codec, event)[:-7]


def _field(codec: Codec, event: UsageRecorded, **fields: object) -> bytes:
    name, record = convert.to_avro(event)
    return codec.encode(name, {**record, **fields})


def test_every_reason_code_and_the_stream_continues(
    running: tuple[Settings, WorkerProcess], codec: Codec
) -> None:
    settings, _ = running
    catalog = load_catalog(settings.catalog_path)
    usage_topic = settings.topic("usage-events")
    start = _now() - timedelta(days=60)
    opening = [
        *scenarios.account_opening("cus_ok", "starter", start),
        *scenarios.account_opening("cus_tok", "dev-api", start),
    ]
    watcher = _open_accounts(settings, codec, opening)
    t = start + timedelta(days=50)
    good = UsageRecorded("g-1", "cus_ok", "tokens", Decimal(10), t)
    base_event = UsageRecorded("b-0", "cus_ok", "tokens", Decimal(1), t)
    bad: list[tuple[str, bytes | None, bytes]] = [
        (usage_topic, b"cus_ok", random.Random(1).randbytes(40)),  # undecodable
        (usage_topic, b"cus_ok", _truncated(codec, base_event)),  # undecodable
        (usage_topic, b"cus_ok", b"\xc3\x01" + bytes(8) + b"\x02xx"),  # unknown_schema
        (usage_topic, b"cus_ok", _field(codec, base_event, quantity="lots")),  # invalid_field
    ]
    events = [
        good,
        UsageRecorded("b-nosub", "cus_nobody", "tokens", Decimal(1), t),
        UsageRecorded("b-feat", "cus_ok", "no_such_feature", Decimal(1), t),
        UsageRecorded("b-neg", "cus_ok", "tokens", Decimal(-5), t),
        UsageRecorded(
            "b-tok",
            "cus_tok",
            "tokens",
            Decimal(10),
            t,
            {"model": "small", "input_tokens": "3", "output_tokens": "3"},
        ),
        dataclasses.replace(good, quantity=Decimal(11)),  # duplicate_conflict
        UsageRecorded("b-fut", "cus_ok", "tokens", Decimal(1), _now() + timedelta(days=1)),
        UsageRecorded("b-late", "cus_ok", "tokens", Decimal(1), t - timedelta(days=40)),
    ]
    tail = UsageRecorded("g-2", "cus_ok", "tokens", Decimal(20), t + timedelta(seconds=1))
    send_with_sdk(settings, events[:1])
    publish(settings, bad)
    # Raw bytes where the SDK cannot send them: it refuses a negative quantity, and
    # it stamps messages with the event time, which the broker refuses a day ahead.
    raw = [e for e in events[1:] if e.quantity < 0 or e.event_id == "b-fut"]
    publish(settings, [(usage_topic, e.customer_id.encode(), encode(codec, e)) for e in raw])
    send_with_sdk(settings, [e for e in events[1:] if e not in raw] + [tail])
    letters = _dead_letters(settings, codec, len(bad) + len(events) - 1)
    reasons = sorted(x.reason.value for x in letters)
    assert reasons == sorted(
        [
            "undecodable",
            "undecodable",
            "unknown_schema",
            "invalid_field",
            "no_subscription",
            "unknown_feature",
            "negative_quantity",
            "token_breakdown",
            "duplicate_conflict",
            "timestamp_in_future",
            "too_late",
        ]
    )
    originals = {x.original for x in letters}
    assert all(value in originals for _, _, value in bad)
    assert all(x.source_topic == usage_topic and x.source_offset is not None for x in letters)
    expected = pure_fold([*opening, good, tail], catalog)
    assert watcher.wait_until(lambda s: not mismatches(expected, s), WAIT)

    # The no_subscription dead letter succeeds once the customer subscribes.
    late_sub = SubscriptionStarted("nobody-sub", "cus_nobody", t - timedelta(hours=1), "starter")
    send_with_sdk(settings, [late_sub])
    assert watcher.wait_until(lambda s: "cus_nobody" in s, WAIT)
    for _ in range(2):  # twice: the second replay must change nothing
        subprocess.run(
            [
                sys.executable,
                "-m",
                "streambill.cli",
                "dlq",
                "replay",
                "--reason",
                "no_subscription",
            ],
            env=settings_env(settings),
            check=True,
            timeout=120,
        )
    replayed = pure_fold([*opening, good, tail, late_sub, events[1]], catalog)
    assert watcher.wait_until(lambda s: not mismatches(replayed, s), WAIT), mismatches(
        replayed, watcher.latest
    )
    time.sleep(3)
    watcher.poll(1.0)
    assert not mismatches(replayed, watcher.latest)
