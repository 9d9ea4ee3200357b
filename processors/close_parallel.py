"""Run the fold of a close in several processes, one per group of partitions.

Decoding is the bottleneck of a close and Python decodes on one core per process.
Customers live in one partition of both (co-partitioned) input topics, so each
process reads, decodes, folds and prices its own partitions with its own Kafka
consumer, and sends back its invoices; the parent merges them (the job sorts them,
so the result does not depend on the number of processes). Progress flows back
through shared counters. A worker that fails fails the close (nothing is written:
the fold comes before every write of the commit order).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable
from typing import Any

from processors.close_fold import GroupResult, TopicNames, fold_group
from processors.close_plan import ReadPlan
from streambill.settings import Settings


def partition_groups(partitions: list[int], workers: int) -> list[list[int]]:
    """Round-robin split into at most `workers` non-empty groups."""
    n = max(1, min(workers, len(partitions)))
    return [partitions[i::n] for i in range(n)]


def _worker(
    index: int,
    settings: Settings,
    names: TopicNames,
    plan: ReadPlan,
    group: list[int],
    keys: frozenset[bytes] | None,
    counters: Any,
    results: Any,
) -> None:
    from processors.close import make_decoder
    from processors.close_kafka import KafkaLog
    from processors.close_setup import prepare_process
    from streambill.catalog_file import load_catalog
    from streambill.codec import Codec

    def tick(events: int, customers: int) -> None:
        counters[2 * index] += events
        counters[2 * index + 1] = customers

    log = KafkaLog(settings.kafka_config())
    try:
        decode = make_decoder(Codec())
        catalog = load_catalog(settings.catalog_path)
        prepare_process()
        result = fold_group(
            log, names, plan, group, decode=decode, catalog=catalog, keys=keys, tick=tick
        )
        results.put((index, result, None))
    except Exception as exc:  # reported to the parent, which fails the close
        results.put((index, None, f"{type(exc).__name__}: {exc}"))
    finally:
        log.close()


class ParallelRunner:
    """`GroupRunner` that folds partition groups in `workers` spawned processes."""

    def __init__(self, settings: Settings, names: TopicNames, workers: int) -> None:
        self.settings = settings
        self.names = names
        self.workers = workers

    def __call__(
        self, plan: ReadPlan, keys: frozenset[bytes] | None, tick: Callable[[int, int], None]
    ) -> GroupResult:
        ctx = mp.get_context("spawn")
        groups = partition_groups(sorted(plan.ends["usage-events"]), self.workers)
        counters = ctx.Array("q", 2 * len(groups), lock=False)
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=_worker,
                daemon=True,
                args=(i, self.settings, self.names, plan, g, keys, counters, results),
            )
            for i, g in enumerate(groups)
        ]
        for p in procs:
            p.start()
        merged = GroupResult()
        done: set[int] = set()
        seen = 0
        try:
            while len(done) < len(groups):
                try:
                    index, result, error = results.get(timeout=0.5)
                except queue.Empty:
                    dead = [i for i, p in enumerate(procs) if i not in done and p.exitcode]
                    if dead:
                        raise RuntimeError(f"close worker(s) {dead} died") from None
                else:
                    if error is not None:
                        raise RuntimeError(f"close worker {index} failed: {error}")
                    merged.merge(result)
                    done.add(index)
                total = sum(counters[0::2])
                tick(total - seen, sum(counters[1::2]))
                seen = total
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
        return merged
