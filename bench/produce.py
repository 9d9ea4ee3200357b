"""Producer throughput: encoding alone, `report_many` and single `report` calls.

    STREAMBILL_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/produce.py [--events 200000]

Creates its topics under a fresh prefix (`bench-<random>.`), deletes them afterwards, and
prints events per second. Every timing of the broker runs includes the final `flush()`,
i.e. every event acknowledged by the broker (idempotent producer, acks=all).
Targets on a 2-core machine: report_many >= 100,000/s, report >= 30,000/s.
Each figure is also printed as one `RESULT {json}` line, read by `bench/run`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streambill.config.settings import ALL_TOPICS, Settings
from streambill.config.topics import create_topics
from streambill.sdk.client import UsageClient
from streambill.wire.codec import Codec
from streambill.wire.usage_wire import USAGE_RECORDED, EventIds, UsageEncoder

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b")


def events(n: int, customers: int) -> list[dict[str, Any]]:
    """Realistic usage: token events with model and token breakdown, some images."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        if i % 10 == 9:
            out.append(
                {
                    "customer_id": f"cus_{i % customers:05d}",
                    "feature_id": "image_generations",
                    "quantity": 1,
                    "properties": {"complexity": "simple" if i % 3 else "complex"},
                }
            )
        else:
            inp, outp = 200 + i % 1800, 50 + i % 700
            out.append(
                {
                    "customer_id": f"cus_{i % customers:05d}",
                    "feature_id": "tokens",
                    "quantity": inp + outp,
                    "properties": {
                        "model": MODELS[i % 4],
                        "input_tokens": str(inp),
                        "output_tokens": str(outp),
                    },
                }
            )
    return out


def rate(label: str, n: int, run: Callable[[], None], figure: str, params: dict[str, Any]) -> float:
    """Wall-clock rate, plus the CPU time of this thread (the machine may be shared).

    The benchmark's own inputs (hundreds of thousands of live objects) are frozen out of
    the garbage collector first, so a timing is not charged with re-scanning them, which
    a real producer or consumer loop, holding few objects, would not do."""
    gc.collect()
    gc.freeze()
    start, cpu = time.perf_counter(), time.thread_time()
    run()
    wall, cpu_used = time.perf_counter() - start, time.thread_time() - cpu
    per_s = n / wall
    cpu_us = cpu_used / n * 1e6
    print(f"{label:<36} {per_s:>10,.0f} events/s  ({wall:6.2f} s; {cpu_us:5.2f} µs CPU/event)")
    metrics = {"events_per_s": per_s, "cpu_us_per_event": cpu_us, "seconds": wall}
    result = {"bench": "produce", "figure": figure, "params": params, "metrics": metrics}
    print("RESULT " + json.dumps(result), flush=True)  # for bench/run
    return per_s


def bench_encoding(batch: list[dict[str, Any]], params: dict[str, Any]) -> None:
    codec, ids = Codec(), EventIds()
    direct = UsageEncoder(codec)
    millis = int(datetime.now(UTC).timestamp()) * 1000
    event_ids = ids.take(len(batch))
    rows = [
        (eid, e["customer_id"], e["feature_id"], str(e["quantity"]), millis + i, e["properties"])
        for i, (eid, e) in enumerate(zip(event_ids, batch, strict=True))
    ]
    encoded: list[bytes] = []
    rate(
        "encode (SDK direct UsageRecorded)",
        len(rows),
        lambda: encoded.extend(direct.encode(*row) for row in rows),
        "encode_direct",
        params,
    )
    stamp = datetime.now(UTC)
    records = [
        {"event_id": r[0], "customer_id": r[1], "feature_id": r[2], "quantity": r[3],
         "timestamp": stamp, "properties": r[5]}
        for r in rows
    ]  # fmt: skip

    def encode_all() -> None:
        for record in records:
            codec.encode(USAGE_RECORDED, record)

    def decode_all() -> None:  # results dropped, as a consumer loop would
        for data in encoded:
            codec.decode(data)

    rate("encode (Codec.encode, fastavro)", len(records), encode_all, "encode_codec", params)
    rate("decode (Codec.decode, fastavro)", len(encoded), decode_all, "decode_codec", params)


def bench_broker(
    settings: Settings, batch: list[dict[str, Any]], config: dict[str, str], params: dict[str, Any]
) -> None:
    with UsageClient(settings, producer_config=config) as client:
        client.report("cus_warmup", "tokens", 1)  # connections and metadata up front
        client.flush()

        def many() -> None:
            client.report_many(batch)
            client.flush()

        def single() -> None:
            report = client.report
            for e in batch:
                report(e["customer_id"], e["feature_id"], e["quantity"], properties=e["properties"])
            client.flush()

        rate("report_many + flush", len(batch), many, "report_many", params)
        rate("report (one call per event) + flush", len(batch), single, "report", params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--skip-broker", action="store_true", help="encoding only")
    parser.add_argument(
        "--producer-config", action="append", default=[], metavar="K=V",
        help="librdkafka setting overriding the SDK's defaults (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    batch = events(args.events, args.customers)
    params = {"events": args.events, "customers": args.customers, "partitions": args.partitions}
    bench_encoding(batch, params)
    if args.skip_broker:
        return
    settings = Settings(topic_prefix=f"bench-{uuid.uuid4().hex[:10]}.", partitions=args.partitions)
    print(f"broker {settings.bootstrap_servers}, topics {settings.topic_prefix}*, "
          f"{args.partitions} partitions")  # fmt: skip
    create_topics(settings)
    try:
        config = dict(kv.split("=", 1) for kv in args.producer_config)
        bench_broker(settings, batch, config, params)
    finally:
        admin = AdminClient(settings.kafka_config())
        for future in admin.delete_topics([settings.topic(t) for t in ALL_TOPICS]).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=30)


if __name__ == "__main__":
    main()
