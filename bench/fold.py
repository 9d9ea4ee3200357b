"""Fold-worker benchmark: sustained throughput and publish->snapshot latency.

    python bench/fold.py [--events 500000] [--customers 1000] [--rates 1000,5000]
                         [--latency-seconds 20] [--partitions 3]

1. Throughput: `--events` usage events are published first; then one
   `streambill worker` starts and the clock runs until every customer's latest
   snapshot on customer-state shows, per feature, exactly (Decimal) the usage the
   bench published for that customer: then and only then every event was APPLIED
   (quantities are positive and nothing is sent twice, so no smaller set of events
   adds up to the same sums); startup is included and printed separately. The figure
   counts applied events, not consumed offsets: a dead-lettered event is consumed
   but never applied. If the snapshots stop changing before they all match, the run
   fails loudly, listing the mismatches and the dead letters by reason. (The check
   is the sum of quantities: the catalog prices none of the bench's features per
   request, whose usage would be the event count.)
2. Latency: at each rate, events are published at that pace for `--latency-seconds`;
   for each event, the time from publish (librdkafka's CreateTime) to the broker's
   append of the first snapshot of its customer whose source offset covers it.
   The first `WARMUP_SECONDS` of publishing at the rate are not measured. Both times
   are read back from the log afterwards, so while it publishes this process does
   nothing else (no snapshot reader, no callback per event): it shares the two cores
   with the worker and the broker.
Both input topics are published as the topic contract requires (README): keyed by
customer and placed by murmur2 (the SDK for usage, `fold_support.publish` for account
events), so a customer's usage is on the partition of its subscription; any other
placement is dead-lettered (wrong_partition / no_subscription) and fails the check.
Uses STREAMBILL_BOOTSTRAP_SERVERS (default 127.0.0.1:29092) and a fresh topic prefix.
Each figure is also printed as one `RESULT {json}` line, read by `bench/run`.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import random
import statistics
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from billing.events import CustomerStateChanged, EventRejected, UsageRecorded
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from tests.integration import scenarios
from tests.integration.fold_support import (
    StateWatcher,
    TopicReader,
    WorkerProcess,
    delete_topics_with_prefix,
    encode,
    isolated,
    publish,
    send_with_sdk,
)
from tests.kafka_helpers import consume_all

RUN_PREFIX = f"bench-{uuid.uuid4().hex[:8]}."  # every topic of this run; deleted at the end
# Published at the rate first and left out of the figures: a freshly started broker
# JIT-compiles its produce and fetch paths, and its first seconds (seen: p99 up to
# 0.5 s at 1,000 events/s right after `services up`) say nothing about steady state.
WARMUP_SECONDS = 5.0
# Throughput: the worker's first snapshot must come within FIRST_SNAPSHOT_SECONDS of
# its start, and after it the snapshots may not stand still for STALL_SECONDS while
# some customer's usage still differs from what was published (then the run fails).
FIRST_SNAPSHOT_SECONDS = 120.0
STALL_SECONDS = 30.0


def _base(partitions: int | None = None) -> Settings:
    return Settings(
        bootstrap_servers=os.environ.get("STREAMBILL_BOOTSTRAP_SERVERS", "127.0.0.1:29092"),
        topic_prefix=RUN_PREFIX,
        partitions=partitions or int(os.environ.get("STREAMBILL_PARTITIONS", "3")),
    )


def _settings(partitions: int) -> Settings:
    return isolated(_base(partitions))


def _open(settings: Settings, codec: Codec, people: list[tuple[str, str]]) -> datetime:
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(days=1)
    topic = settings.topic("account-events")
    publish(
        settings,
        [
            (topic, e.customer_id.encode(), encode(codec, e))
            for cid, plan in people
            for e in scenarios.account_opening(cid, plan, start)
        ],
    )
    return start


def _emit(figure: str, params: dict[str, float], metrics: dict[str, float]) -> None:
    result = {"bench": "fold", "figure": figure, "params": params, "metrics": metrics}
    print("RESULT " + json.dumps(result), flush=True)


def throughput(events: int, customers: int, partitions: int, profile: Path | None = None) -> None:
    settings, codec = _settings(partitions), Codec()
    people = scenarios.customers(customers)
    start = _open(settings, codec, people)
    rng = random.Random(1)
    stream = [e for e, _ in scenarios.usage_stream(people, events, start + timedelta(hours=1), rng)]
    t0 = time.monotonic()
    send_with_sdk(settings, stream)  # as applications publish: lz4 batches
    published = time.monotonic() - t0
    print(f"published {events} usage events in {published:.1f}s")
    want = _published_usage(stream)
    watcher = StateWatcher(settings, codec)
    worker = WorkerProcess(settings, "bench", profile)
    t0 = time.monotonic()
    worker.start()
    first = None
    applied, versions, moved = 0, -1, t0
    try:
        while applied < events:
            watcher.poll(0.5)
            now = time.monotonic()
            if first is None and watcher.latest:
                first = now
            seen = sum(s.version for s in watcher.latest.values())
            if seen != versions:
                versions, moved = seen, now
            applied = _applied(watcher.latest, want)
            if now - moved > (STALL_SECONDS if first else FIRST_SNAPSHOT_SECONDS):
                _fail(settings, codec, watcher.latest, want, applied, events)
        end = time.monotonic()
    finally:
        worker.stop()
        watcher.close()
    assert first is not None
    print(
        f"throughput: {applied} events applied (every customer's usage equals what was "
        f"published) in {end - t0:.1f}s incl. startup ({applied / (end - t0):,.0f}/s); "
        f"{end - first:.1f}s from first snapshot ({applied / (end - first):,.0f}/s sustained)"
    )
    _emit(
        "throughput",
        {"events": events, "customers": customers, "partitions": partitions},
        {
            "events_per_s": applied / (end - first),
            "events_per_s_incl_startup": applied / (end - t0),
            "seconds": end - first,
            "startup_seconds": first - t0,
            "publish_seconds": published,
        },
    )


class Published:
    """What the bench published for one customer: usage per feature, event count."""

    __slots__ = ("events", "usage")

    def __init__(self) -> None:
        self.usage: dict[str, Decimal] = {}
        self.events = 0


def _published_usage(stream: list[UsageRecorded]) -> dict[str, Published]:
    out: dict[str, Published] = {}
    for e in stream:
        mine = out.setdefault(e.customer_id, Published())
        mine.usage[e.feature_id] = mine.usage.get(e.feature_id, Decimal(0)) + e.quantity
        mine.events += 1
    return out


def _applied(latest: dict[str, CustomerStateChanged], want: dict[str, Published]) -> int:
    """Events applied, counted by customer: all of a customer's events once its latest
    snapshot's usage equals, per feature, what was published for it; none before.
    Exact, never an estimate: with positive quantities sent once, only the full set
    of a customer's events adds up to its published sums. Dead-lettered events are
    never counted (their customer never matches)."""
    n = 0
    for cid, mine in want.items():
        snap = latest.get(cid)
        if snap is not None and dict(snap.usage) == mine.usage:
            n += mine.events
    return n


def _fail(
    settings: Settings,
    codec: Codec,
    latest: dict[str, CustomerStateChanged],
    want: dict[str, Published],
    applied: int,
    events: int,
) -> None:
    """Stop the run: the snapshots stand still but not every event was applied."""
    wrong = [
        f"{cid}: folded {dict(latest[cid].usage) if cid in latest else 'no snapshot'}, "
        f"published {mine.usage}"
        for cid, mine in sorted(want.items())
        if cid not in latest or dict(latest[cid].usage) != mine.usage
    ]
    reader = TopicReader(settings, "usage-rejected", codec)
    reasons: dict[str, int] = {}
    try:
        while batch := reader.poll(5.0):  # until 5 s bring nothing new
            for _, letter in batch:
                if isinstance(letter, EventRejected):
                    reasons[letter.reason.value] = reasons.get(letter.reason.value, 0) + 1
    finally:
        reader.close()
    raise SystemExit(
        f"FAILED: {applied} of {events} events applied; {len(wrong)} of {len(want)} "
        f"customers' folded usage differs from what was published (first: {wrong[:3]}); "
        f"dead letters on usage-rejected by reason: {reasons or 'none'}"
    )


def _stamp_on_append(settings: Settings, topic: str) -> None:
    """Let the broker stamp customer-state records with their append time: the
    worker's producer would stamp them when it queues them, before the broker has
    them (let alone acked them), which would flatter the latency."""
    admin = AdminClient(settings.kafka_config())
    entry = ConfigEntry(
        "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def latency(
    rate: int,
    seconds: float,
    customers: int,
    partitions: int,
    profile: Path | None = None,
    warmup: float = WARMUP_SECONDS,
) -> None:
    settings, codec = _settings(partitions), Codec()
    _stamp_on_append(settings, settings.topic("customer-state"))
    people = scenarios.customers(customers)
    start = _open(settings, codec, people)
    worker = WorkerProcess(settings, f"lat{rate}", profile)
    worker.start()
    watcher = StateWatcher(settings, codec)
    watcher.wait_until(lambda s: len(s) >= customers, 120)
    # Nothing else runs in this process while it publishes: the snapshot reader is
    # closed (librdkafka would otherwise keep fetching and the broker serving it) and
    # no delivery callback runs per event. Both times are read back from the log
    # afterwards: each event's CreateTime and each snapshot's LogAppendTime.
    watcher.close()
    # murmur2 like the SDK (README, topic contract): a customer's usage on the partition
    # of its subscription, or the worker dead-letters it (wrong_partition, no_subscription).
    producer = Producer(settings.kafka_config(**{"linger.ms": 1, "partitioner": "murmur2_random"}))
    topic = settings.topic("usage-events")
    rng = random.Random(rate)
    total = int(rate * (warmup + seconds))
    stream = scenarios.usage_stream(people, total, start + timedelta(hours=1), rng)
    # Encoded before the clock starts: the load generator shares the two cores with
    # the worker and the broker, and should spend them on publishing only.
    messages = [(event.customer_id.encode(), encode(codec, event)) for event, _ in stream]
    t0 = time.monotonic()
    measured_from = time.time() + warmup  # CreateTime (wall clock) of the first measured
    i = 0
    while i < total:
        # Every event due by now, then sleep until the next one is due (at least a
        # millisecond: a sleep per event cost the shared cores more than publishing).
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        for key, value in messages[i:due]:
            producer.produce(topic, key=key, value=value)
        i = max(i, due)
        producer.poll(0)
        if i < total:
            time.sleep(max(t0 + i / rate - time.monotonic(), 0.001))
    if producer.flush(30):
        raise RuntimeError("usage events not delivered within 30 s")
    published = consume_all(settings, "usage-events", total, timeout=60)
    sent = {  # CreateTime per measured event (not the warm-up)
        (m.partition(), m.offset()): m.timestamp()[1] / 1000
        for m in published
        if m.timestamp()[1] / 1000 >= measured_from
    }
    seen_at = _first_covering_snapshots(settings, codec, topic, published, sent)
    worker.stop()
    lat = sorted((seen_at[k] - sent[k]) * 1000 for k in seen_at)
    q = statistics.quantiles(lat, n=100)
    print(
        f"latency at {rate}/s: {len(lat)}/{len(sent)} events, "
        f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {lat[-1]:.1f} ms"
    )
    _emit(
        "latency",
        {"rate": rate, "seconds": seconds, "customers": customers, "partitions": partitions},
        {
            "p50_ms": q[49],
            "p99_ms": q[98],
            "max_ms": lat[-1],
            "observed": len(lat),
            "published": len(sent),
        },
    )


def _first_covering_snapshots(
    settings: Settings,
    codec: Codec,
    topic: str,
    published: list[Message],
    sent: dict[tuple[int, int], float],
) -> dict[tuple[int, int], float]:
    """For each event of `sent`, the append time of the first snapshot of its own
    customer whose source offset for the event's partition covers it. A customer's
    snapshots share one customer-state partition, so they are read in append order
    (other customers' snapshots are not: the reader interleaves partitions)."""
    pending: dict[str, deque[tuple[int, int]]] = {}
    for m in published:  # per partition in offset order; a customer keeps to one partition
        pending.setdefault(m.key().decode(), deque()).append((m.partition(), m.offset()))
    seen_at: dict[tuple[int, int], float] = {}
    reader = TopicReader(settings, "customer-state", codec)
    deadline = time.monotonic() + 60
    try:
        while len(seen_at) < len(sent) and time.monotonic() < deadline:
            for msg, snap in reader.poll(0.2):
                now = msg.timestamp()[1] / 1000  # the broker's append time (_stamp_on_append)
                events = pending.get(snap.customer_id)
                for key, offset in snap.source_offsets.items():
                    if events and key.startswith(topic):
                        p = int(key.rsplit("/", 1)[1])
                        while events and events[0][0] == p and events[0][1] <= offset:
                            event = events.popleft()
                            if event in sent:
                                seen_at[event] = now
    finally:
        reader.close()
    return seen_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--rates", default="1000,5000")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--partitions", type=int, default=int(os.environ.get("STREAMBILL_PARTITIONS", "3"))
    )
    parser.add_argument(
        "--profile", type=Path, help="write cProfiles of the workers here (latency: suffix .latR)"
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    try:
        if not args.skip_throughput:
            throughput(args.events, args.customers, args.partitions, args.profile)
            if args.profile:
                pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(30)
        for rate in (int(r) for r in args.rates.split(",") if r):
            lat_profile = args.profile.with_suffix(f".lat{rate}") if args.profile else None
            latency(rate, args.latency_seconds, args.customers, args.partitions, lat_profile)
    finally:
        print(f"load average after: {os.getloadavg()}")
        print(f"deleted {delete_topics_with_prefix(_base(), RUN_PREFIX)} topics of {RUN_PREFIX}")


if __name__ == "__main__":
    main()
