"""Period-close throughput: events per second over usage already in the topic.

    python bench/close.py [--events 1000000] [--customers 10000] [--partitions 4]
                          [--workers 2] [--bootstrap 127.0.0.1:29092] [--repeat 1]

Creates topics under a unique prefix, publishes `--customers` subscriptions (metered
plans) and `--events` usage events spread over the last calendar month whose end plus
the close's grace has passed (inside the usage retention), closes that month (every
period anchored on its first day ends on the next month's first), prints
the figures, and deletes the topics. The figures are also printed as one `RESULT {json}`
line, read by `bench/run`. Decoding dominates; `--workers` processes fold
partition groups in parallel. `--repeat N` closes again N-1 times: a re-run reads,
folds and verifies the same events (and sends nothing), so it costs the same.

Besides wall-clock events/s it prints the CPU seconds of the close (this process's
own, plus what each worker reports of itself, imports and set-up included; user +
system, librdkafka threads included) per event, and the load average: on a shared
machine wall-clock follows the other processes, CPU per event much less.
`--timings` prints where the wall clock went: each step of the close, and per
worker its start-up, reading (consume) versus decoding and folding, pricing, the
transfer of its result, and its CPU share of its fold (1.0 = a whole core).
bench/close_cpu.py measures the fold alone, without a broker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from billing.events import Event, SubscriptionStarted, UsageRecorded
from processors.close.parallel import close_deps
from processors.close.plan import Month
from processors.close.run import CloseOptions, CloseReport, close_period
from processors.close.setup import prepare_process
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import ACCOUNT_EVENTS, ALL_TOPICS, USAGE_EVENTS, Settings
from streambill.config.topics import create_topics
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.kafka_log import KafkaLog


def closable_month(now: datetime) -> Month:
    """The last month a close at `now` accepts (its end + the default grace + an hour
    passed). Dates relative to now, not fixed ones: the broker refuses records stamped
    more than an hour ahead (log.message.timestamp.after.max.ms), which invoices of a
    frozen future clock would be, and usage older than the retention is deleted."""
    month = Month.of(now).shift(-1)
    if month.end + CloseOptions(month).grace + timedelta(hours=1) > now:
        month = month.shift(-1)
    return month


PLANS = ("writer", "starter", "scale", "team")


def workload(events: int, customers: int, start: datetime) -> Iterator[Event]:
    """The benchmark's data: `customers` subscriptions at `start` (metered plans, 1-3
    seats), then `events` usage events at random times in the 28 days from `start`
    (inside every month); seeded, so every run gets the same events."""
    for i in range(customers):
        c = f"cus_{i:06d}"
        yield SubscriptionStarted(f"sub_{i}", c, start, PLANS[i % len(PLANS)], 1 + i % 3)
    rng = random.Random(1)
    span = 28 * 24 * 3600 - 1
    for n in range(events):
        c = f"cus_{rng.randrange(customers):06d}"
        at = start + timedelta(seconds=rng.randrange(span))
        yield UsageRecorded(f"evt_{n:09d}", c, "tokens", Decimal(rng.randrange(1, 5000)), at)


def workload_args(ap: argparse.ArgumentParser, events: int) -> None:
    """The options of `workload` (`--events` defaulting to `events`), and the number of
    partitions it is spread over."""
    ap.add_argument("--events", type=int, default=events)
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=4)


def publish(settings: Settings, events: int, customers: int, start: datetime) -> float:
    codec = Codec()
    producer = Producer(
        settings.kafka_config(
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
                "partitioner": "murmur2_random",
            }
        )
    )
    usage_topic, account_topic = settings.topic(USAGE_EVENTS), settings.topic(ACCOUNT_EVENTS)

    def send(topic: str, key: bytes, value: bytes, ts: datetime) -> None:
        while True:
            try:
                producer.produce(topic, value, key, timestamp=int(ts.timestamp() * 1000))
                return
            except BufferError:
                producer.poll(0.05)

    t0 = time.perf_counter()
    for n, ev in enumerate(workload(events, customers, start)):
        topic = usage_topic if isinstance(ev, UsageRecorded) else account_topic
        send(topic, ev.customer_id.encode(), encode_value(codec, ev), ev.timestamp)
        if n % 10000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left:
        raise SystemExit(f"{left} events not delivered")
    return time.perf_counter() - t0


def _cpu_seconds() -> float:
    """User + system CPU of this process (every thread). Not RUSAGE_CHILDREN: it
    counts only reaped children, and the workers report their own CPU instead."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def print_timings(report: CloseReport) -> None:
    steps = ", ".join(f"{k} {v:.2f}" for k, v in report.timings.items())
    print(f"  steps (s): {steps}  [history includes starting the workers]")
    for i, t in enumerate(report.fold.timings):
        busy = t.get("fold", 0.0)
        share = f", CPU {t['cpu_s']:.1f}s" if "cpu_s" in t else ""
        if busy:
            share += f", fold/core share {(t['cpu_s'] - t.get('setup_cpu_s', 0.0)) / busy:.2f}"
        parts = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "cpu_s")
        print(f"  fold {i} (s): {parts}{share}")


def close_once(
    settings: Settings, args: argparse.Namespace, what: str, month: Month, now: datetime
) -> None:
    """Close `month` once and print wall-clock and CPU figures. A re-run reads and folds
    exactly the same events (it recomputes and verifies the recorded close)."""
    log = KafkaLog(settings.kafka_config())
    catalog = load_catalog(settings.catalog_path)
    deps = close_deps(settings, log, catalog, lambda: now, workers=args.workers)
    load_before = os.getloadavg()[0]
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    report = close_period(deps, CloseOptions(month))
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0 + sum(t.get("cpu_s", 0.0) for t in report.fold.timings)
    log.close()
    read = report.fold.events_read
    print(
        f"close {month} ({what}, {report.status}): {read:,} events read,"
        f" {report.fold.customers:,} customers, {len(report.invoices):,} invoices"
        f" ({report.sent:,} sent), {seconds:.1f}s -> {read / seconds:,.0f} events/s"
        f" (workers={args.workers}, partitions={args.partitions}; whole close incl."
        " planning, process start and writes)"
    )
    print(
        f"  CPU: {cpu:.1f} s in this process and its workers (user + system,"
        f" librdkafka threads and worker start-up included) -> {cpu / read * 1e6:.2f} µs/event,"
        f" {read / cpu:,.0f} events per CPU second; load average"
        f" {load_before:.2f} before, {os.getloadavg()[0]:.2f} after ({os.cpu_count()} CPUs)"
    )
    if args.timings:
        print_timings(report)
    params = {
        "events": args.events,
        "customers": args.customers,
        "partitions": args.partitions,
        "workers": args.workers,
        "run": what,
    }
    metrics = {
        "events_per_s": read / seconds,
        "seconds": seconds,
        "events_read": read,
        "invoices": len(report.invoices),
        "cpu_us_per_event": cpu / read * 1e6,
        "load_before": load_before,
    }
    result = {"bench": "close", "figure": "close", "params": params, "metrics": metrics}
    print("RESULT " + json.dumps(result), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    workload_args(ap, events=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bootstrap", default="127.0.0.1:29092")
    ap.add_argument("--repeat", type=int, default=1, help="close again N-1 times (same work)")
    ap.add_argument("--timings", action="store_true", help="print where the wall clock went")
    args = ap.parse_args()
    settings = Settings(
        bootstrap_servers=args.bootstrap,
        topic_prefix=f"bench-close-{uuid.uuid4().hex[:8]}.",
        partitions=args.partitions,
    )
    create_topics(settings)
    try:
        now = datetime.now(UTC)
        month = closable_month(now)
        took = publish(settings, args.events, args.customers, month.start)
        print(
            f"published {args.events:,} usage events of {args.customers:,} customers in {took:.1f}s"
        )
        prepare_process()  # as `streambill close` does
        for run in range(args.repeat):
            what = "first close" if run == 0 else "re-run (verify, no-op)"
            close_once(settings, args, what, month, now)
    finally:
        admin = AdminClient(settings.kafka_config())
        for f in admin.delete_topics([settings.topic(t) for t in ALL_TOPICS]).values():
            with contextlib.suppress(Exception):
                f.result(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
