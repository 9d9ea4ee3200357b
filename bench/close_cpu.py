"""CPU cost of a close's fold without a broker: decode + dedupe + fold + price.

    python bench/close_cpu.py [--events 200000] [--customers 10000] [--partitions 4]
                              [--repeat 1] [--profile out.prof] [--no-setup]

Encodes the same data as `bench/close.py` (metered subscriptions from 2026-10-01,
usage in October 2026) into an `InMemoryLog` (encoding is not measured), then
runs `fold_group` over every partition in this process, the way one close worker
does, and prints events per CPU second of this process. Isolates the Python work
of a close from Kafka and from the other processes sharing the machine (still,
CPU time inflates when the cores are busy: compare best-of-`--repeat` figures); with
`--profile` it writes a cProfile file (inspect with `python -m pstats`).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import time
from datetime import UTC, datetime
from typing import Any

from bench.close import workload, workload_args
from billing.events import UsageRecorded
from processors.close.fold import GroupResult, TopicNames, fold_group
from processors.close.plan import CloseHistory, Month, ReadPlan, build_plan
from processors.close.setup import paused_gc, prepare_process
from processors.fold.admission import Doors, policy_from
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.log import InMemoryLog

START = datetime(2026, 10, 1, tzinfo=UTC)
USAGE, ACCOUNT = "usage", "account"


def fill(log: InMemoryLog, codec: Codec, events: int, customers: int) -> None:
    """The data of `bench/close.py` (its generator), from START."""
    for ev in workload(events, customers, START):
        topic = USAGE if isinstance(ev, UsageRecorded) else ACCOUNT
        log.produce(topic, ev.customer_id.encode(), encode_value(codec, ev), 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    workload_args(ap, events=200_000)
    ap.add_argument("--profile", help="write a cProfile file here")
    ap.add_argument("--repeat", type=int, default=1, help="fold R times, print the best")
    ap.add_argument("--no-setup", action="store_true", help="Python's default gc settings")
    args = ap.parse_args()
    codec = Codec()
    catalog = load_catalog(Settings().catalog_path)
    log = InMemoryLog(partition_count=args.partitions, batch_size=5000)
    fill(log, codec, args.events, args.customers)
    month = Month(2026, 11)
    plan = build_plan(
        month=month,
        history=CloseHistory(),
        ends={
            "usage-events": log.watermarks(USAGE)[1],
            "account-events": log.watermarks(ACCOUNT)[1],
        },
        low={
            "usage-events": log.watermarks(USAGE)[0],
            "account-events": log.watermarks(ACCOUNT)[0],
        },
        by_time={p: 0 for p in log.partitions(USAGE)},
        lookback=1,
    )
    if not args.no_setup:
        prepare_process()
    best = float("inf")
    for _ in range(args.repeat):
        best = min(best, run(log, plan, codec, catalog, args))
    print(f"best of {args.repeat}: {best:.2f} µs/event ({1e6 / best:,.0f} events per CPU second)")


def run(log: InMemoryLog, plan: ReadPlan, codec: Codec, catalog: Any, args: Any) -> float:
    """One fold of the whole log; prints and returns its CPU µs per event."""
    profiler = cProfile.Profile() if args.profile else None
    c0, w0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    with contextlib.nullcontext() if args.no_setup else paused_gc():
        result: GroupResult = fold_group(
            log,
            TopicNames(USAGE, ACCOUNT),
            plan,
            log.partitions(USAGE),
            doors=Doors(codec, USAGE, ACCOUNT, len(log.partitions(USAGE))),
            policy=policy_from(Settings()),
            catalog=catalog,
            now_ms=plan.planned_ms,
        )
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    n = result.events_read
    print(
        f"fold of {n:,} records ({result.customers:,} customers, {len(result.invoices):,}"
        f" invoices): {cpu:.2f} CPU s -> {n / cpu:,.0f} events per CPU second,"
        f" {cpu / n * 1e6:.2f} µs/event ({n / wall:,.0f}/s by wall clock)"
    )
    return cpu / n * 1e6


if __name__ == "__main__":
    main()
