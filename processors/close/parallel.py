"""Run the fold of a close in several processes, one per group of partitions.

Decoding is the bottleneck of a close and Python decodes on one core per process.
Customers live in one partition of both (co-partitioned) input topics, so each
process reads, decodes, folds and prices its own partitions with its own Kafka
consumer, and sends back its invoices; the parent merges them (the job sorts them,
so the result does not depend on the number of processes). Progress flows back
through shared counters. A worker that fails fails the close (nothing is written:
the fold comes before every write of the commit order).

Each worker adds to its fold's timings (`GroupResult.timings`) when it was ready,
got its task and finished (`time.perf_counter`, one monotonic clock for every
process of the machine) and its own CPU seconds: the parent cannot count them
through RUSAGE_CHILDREN reliably, and they say whether the workers overlapped.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from billing.catalog import Catalog
from billing.catalog_records import CatalogRecord, catalog_records, records_catalog
from processors.close.fold import GroupResult, TopicNames, fold_group
from processors.close.plan import ReadPlan
from processors.close.progress import CloseMetrics
from processors.close.run import CloseDeps
from processors.close.topics import CloseTopics
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.log import LogPort


def partition_groups(
    partitions: list[int], workers: int, sizes: Mapping[int, int] | None = None
) -> list[list[int]]:
    """Split into at most `workers` non-empty groups, each in ascending order. With
    `sizes` (events to read per partition), largest first into the lightest group,
    so the workers finish together (the close waits for the slowest); without,
    round-robin."""
    n = max(1, min(workers, len(partitions)))
    if sizes is None:
        return [partitions[i::n] for i in range(n)]
    groups: list[list[int]] = [[] for _ in range(n)]
    load = [0] * n
    for p in sorted(partitions, key=lambda q: (-sizes.get(q, 0), q)):
        lightest = min(range(n), key=lambda i: (load[i], len(groups[i]), i))
        groups[lightest].append(p)
        load[lightest] += sizes.get(p, 0)
    return [sorted(g) for g in groups]


def _worker(
    index: int,
    settings: Settings,
    names: TopicNames,
    records: tuple[CatalogRecord, ...],
    tasks: Any,
    counters: Any,
    results: Any,
    parent: int,
) -> None:
    """Set up (imports, schemas, catalog, Kafka consumer), then wait for this worker's
    task (plan, partitions, keys) and fold it; None means no partitions for it."""
    from processors.close.setup import paused_gc, prepare_process
    from processors.fold.admission import Doors, policy_from
    from streambill.wire.codec import Codec
    from streambill.wire.kafka_log import KafkaLog

    def tick(events: int, customers: int) -> None:
        counters[2 * index] += events
        counters[2 * index + 1] = customers

    _exit_with_parent(parent)
    log = KafkaLog(settings.kafka_config())
    try:
        codec = Codec()
        policy = policy_from(settings)
        catalog = records_catalog(records)
        prepare_process()
        ready_at = time.perf_counter()
        task = _next_task(tasks, parent)
        if task is None:
            return
        task_at, setup_cpu = time.perf_counter(), _cpu()
        plan, group, keys = task
        with paused_gc():
            doors = Doors(codec, names.usage, names.account, len(plan.ends["usage-events"]))
            result = fold_group(
                log, names, plan, group, doors=doors, policy=policy, catalog=catalog,
                keys=keys, tick=tick, now_ms=plan.planned_ms,
            )  # fmt: skip
        result.timings[0].update(
            ready_at=ready_at,
            task_at=task_at,
            done_at=time.perf_counter(),
            cpu_s=_cpu(),
            setup_cpu_s=setup_cpu,
        )
        results.put((index, result, None))
    except Exception as exc:  # reported to the parent, which fails the close
        results.put((index, None, f"{type(exc).__name__}: {exc}"))
    finally:
        log.close()


def _exit_with_parent(parent: int) -> None:
    """A thread that ends this process once the parent is gone. Without it, a worker
    whose parent was killed after the worker sent its invoices waits for ever at
    exit: the queue's feeder thread blocks on a full pipe nobody reads any more."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _cpu() -> float:
    """User + system CPU seconds of this whole process (every thread) so far."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _next_task(tasks: Any, parent: int) -> tuple[ReadPlan, list[int], Any] | None:
    """The task, or None; also None when the parent died meanwhile (a killed close
    must not leave workers waiting for ever)."""
    while True:
        try:
            task: tuple[ReadPlan, list[int], Any] | None = tasks.get(timeout=1.0)
            return task
        except queue.Empty:
            if os.getppid() != parent:
                return None


@dataclass
class _Pool:
    procs: list[Any]
    tasks: list[Any]
    counters: Any
    results: Any
    launched_at: float


class ParallelRunner:
    """`GroupRunner` that folds partition groups in `workers` spawned processes.

    `warm_up()` starts the processes ahead of the fold (a spawned Python process takes
    a few tenths of a second to import and set up), so that it overlaps the job's
    planning; `__call__` starts them itself if that was not done. Every call ends
    with the processes joined; `shutdown()` ends warmed-up processes that were never
    given a fold (the close stopped before it)."""

    def __init__(
        self, settings: Settings, names: TopicNames, workers: int, catalog: Catalog
    ) -> None:
        """`catalog` is the close's own: each process folds with exactly it (handed
        over as its records), never with a catalog read again."""
        self.settings = settings
        self.names = names
        self.workers = workers
        self.catalog = tuple(catalog_records(catalog))
        self._pool: _Pool | None = None

    def warm_up(self) -> None:
        if self._pool is None:
            self._pool = self._start()

    def shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            _stop(pool)

    def _start(self) -> _Pool:
        ctx = mp.get_context("spawn")
        n = max(1, self.workers)
        counters = ctx.Array("q", 2 * n, lock=False)
        results = ctx.Queue()
        tasks = [ctx.Queue() for _ in range(n)]

        def queues(i: int) -> tuple[Any, Any, Any]:
            return tasks[i], counters, results

        procs = [
            ctx.Process(
                target=_worker,
                daemon=True,
                args=(i, self.settings, self.names, self.catalog, *queues(i), os.getpid()),
            )
            for i in range(n)
        ]
        launched_at = time.perf_counter()
        for p in procs:
            p.start()
        return _Pool(procs, tasks, counters, results, launched_at)

    def __call__(
        self, plan: ReadPlan, keys: frozenset[bytes] | None, tick: Callable[[int, int], None]
    ) -> GroupResult:
        pool, self._pool = self._pool or self._start(), None
        called_at = time.perf_counter()
        ends = plan.ends["usage-events"]
        sizes = {p: end - plan.usage_starts.get(p, 0) for p, end in ends.items()}
        groups = partition_groups(sorted(ends), len(pool.procs), sizes)
        for i, tasks in enumerate(pool.tasks):
            tasks.put((plan, groups[i], keys) if i < len(groups) else None)
        try:
            merged = _collect(pool, len(groups), tick)
        finally:
            _stop(pool)
        for t in merged.timings:
            _relative(t, pool.launched_at, called_at)
        return merged


def _collect(pool: _Pool, groups: int, tick: Callable[[int, int], None]) -> GroupResult:
    merged = GroupResult()
    done: set[int] = set()
    seen = 0
    counters = pool.counters
    while len(done) < groups:
        try:
            index, result, error = pool.results.get(timeout=0.5)
        except queue.Empty:
            dead = [i for i, p in enumerate(pool.procs[:groups]) if i not in done and p.exitcode]
            if dead:
                raise RuntimeError(f"close worker(s) {dead} died") from None
        else:
            if error is not None:
                raise RuntimeError(f"close worker {index} failed: {error}")
            result.timings[0]["received_at"] = time.perf_counter()
            merged.merge(result)
            done.add(index)
        total = sum(counters[0::2])
        tick(total - seen, sum(counters[1::2]))
        seen = total
    return merged


def _relative(t: dict[str, float], launched_at: float, called_at: float) -> None:
    """A worker's instants -> durations: `start` (spawn, imports, setup), `late` (how
    long the fold waited for this worker's start-up), `idle` (ready before the task),
    `fold` (task to result), `result` (pickle, queue, unpickle of the result)."""
    ready, task = t.pop("ready_at"), t.pop("task_at")
    done, received = t.pop("done_at"), t.pop("received_at")
    t.update(
        start=ready - launched_at,
        late=max(0.0, ready - called_at),
        idle=max(0.0, called_at - ready),
        fold=done - task,
        result=received - done,
        end=received - called_at,
    )


def _stop(pool: _Pool) -> None:
    for p in pool.procs:
        if p.is_alive():
            p.terminate()
        p.join()


def close_deps(
    settings: Settings,
    log: LogPort,
    catalog: Catalog,
    clock: Callable[[], datetime],
    *,
    workers: int = 1,
    metrics: CloseMetrics | None = None,
    progress_out: TextIO | None = sys.stderr,
) -> CloseDeps:
    """The dependencies of a close of the topics of `settings`: its admission policy,
    and more than one worker process when `workers` > 1 (each folding with `catalog`)."""
    from processors.fold.admission import policy_from

    topics = CloseTopics.of(settings)
    runner = ParallelRunner(settings, topics.inputs, workers, catalog) if workers > 1 else None
    return CloseDeps(
        log=log,
        codec=Codec(),
        catalog=catalog,
        topics=topics,
        clock=clock,
        policy=policy_from(settings),
        metrics=metrics,
        progress_out=progress_out,
        runner=runner,
    )
