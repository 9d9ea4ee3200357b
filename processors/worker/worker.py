"""The real-time fold worker, built by `create_worker` (no module-level app).

It reads raw bytes from usage-events and account-events
(co-partitioned, key = customer id), folds them with `processors.fold.batch.BatchFolder`
and keeps two changelog-backed tables:

- `customers`: customer id -> `CustomerRecord` (ledger state + last applied offset
  per source topic-partition + the customer's usage watermark), one per customer;
- `seen`: `billing.admission.dedupe_key(customer_id, event_id)` -> `SeenEntry`
  (canonical fingerprint, source position, customer, event time); an entry more
  than `dedupe_window` behind its customer's watermark no longer counts
  (docs/ARCHITECTURE.md, "Admission") and is pruned from time to time.

Why `seen` lives outside the customer record: a customer record holding every id of
35 days would be rewritten (megabytes) on every batch. A per-event key costs one
small changelog message per applied event instead. It is written BEFORE the
customer records, and an entry that names the very message being processed is
ignored, so a crash between the two writes can never hide an unapplied event.

The worker runs on a runtime behind the port `processors.worker.ports.Runtime`:
Faust's (`processors.worker.runtime`, the only code that touches Faust, mode or
aiokafka; docs/decisions/0001-faust-runtime.md says what it owns and why the
worker bypasses its per-message paths) or, in tests, the in-memory one. Faust runs
the group, the assignment, table recovery and the commits of acknowledged
offsets; the pipeline (`processors.worker.pipeline`) batches, folds and writes the
effects and both tables' changelogs itself, with a librdkafka producer of its own
(`processors.worker.batch_send`), in the commit order of
`processors.worker.commit.CommitOrder.carry_out`, and acknowledges a batch only
once all of it is durable.

Records are kept deserialized between batches (`RecordCache`): a customer's record
is read from the table (JSON -> `CustomerRecord`) on its first touch only, and
replaced in the cache as soon as a batch changed it, so the next batch folds on top
of it while it is being made durable (a failed write ends the process, cache and
all). Entries of revoked partitions are dropped on rebalance (another worker may
change them); batches in flight are made durable before the next fold then, and
the table's store is updated once a record is durable, so a dropped entry reloads
exactly what the cache held.

Liveness (`processors.worker.watchdog`, started by `streambill worker` through
`create_worker(..., starters=...)`): a thread with its own event loop checks every
few seconds the end offsets and the group's committed offsets of the worker's
source partitions; with lag and no folded message for `worker_stall_timeout`
(STREAMBILL_WORKER_STALL_TIMEOUT, default 30 s; 0 disables) the worker exits with
code 70 without acknowledging anything, like a failed batch, so its supervisor
restarts it. Start-up (until the first batch) and table recovery pause the
judgement for at most 10 x the timeout in one stretch, a rebalance for at most
2 x; an unreachable broker pauses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn

from billing.catalog import Catalog
from processors.fold.admission import policy_from
from processors.fold.batch import BatchFolder, Topics
from processors.worker.batch_send import Writer
from processors.worker.batches import paced_take
from processors.worker.catalog_refresh import refresher_starter
from processors.worker.commit import ProducerFactory
from processors.worker.metrics import WorkerMetrics
from processors.worker.pipeline import FoldPipeline
from processors.worker.ports import Runtime
from processors.worker.watchdog import watchdog_starter
from streambill.config import settings as names
from streambill.config.settings import Settings
from streambill.wire.catalog_source import CatalogWatch
from streambill.wire.codec import Codec

if TYPE_CHECKING:
    from processors.worker.runtime.app import FaustRuntime

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Fatal = Callable[[BaseException], NoReturn]


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def exit_process(exc: BaseException) -> NoReturn:
    """Crash-only: die without acknowledging anything, so nothing gets committed."""
    log.critical(
        "fold worker failed a batch; exiting without acknowledging it: %r", exc, exc_info=exc
    )
    logging.shutdown()
    os._exit(70)


def topics_from(settings: Settings) -> Topics:
    return Topics(
        usage=settings.topic(names.USAGE_EVENTS),
        account=settings.topic(names.ACCOUNT_EVENTS),
        state=settings.topic(names.CUSTOMER_STATE),
        alerts=settings.topic(names.BILLING_ALERTS),
        invoices=settings.topic(names.INVOICES),
        rejected=settings.topic(names.USAGE_REJECTED),
    )


def build_pipeline(
    runtime: Runtime,
    settings: Settings,
    catalog: Catalog,
    *,
    codec: Codec,
    metrics: WorkerMetrics,
    clock: Clock = utc_now,
    on_fatal: Callable[[BaseException], object] = exit_process,
    producer: ProducerFactory | None = None,
) -> FoldPipeline:
    """The pipeline on `runtime` (framework-free); `producer` defaults to the
    worker's librdkafka producer for the settings."""
    topics = topics_from(settings)
    policy = policy_from(settings)
    folder = BatchFolder(catalog, codec, policy, topics, clock, partitions=settings.partitions)
    if producer is None:
        config = settings.kafka_config()

        def producer(loop: asyncio.AbstractEventLoop) -> Writer:
            return Writer(config, loop)

    return FoldPipeline(
        runtime, folder, metrics, policy, (topics.usage, topics.account), producer, on_fatal
    )


async def fold_loop(runtime: Runtime, pipeline: FoldPipeline, settings: Settings) -> None:
    """The worker's main loop: take batches from the runtime and process them.

    A batch is whatever the runtime has fetched, up to `worker_batch_size` messages,
    so batches grow with the backlog; a small batch starts at most every
    `worker_batch_interval` (it waits that long after the previous one started, for
    more to arrive; `paced_take`). A failure propagates (the runtime exits)."""
    batch_size = settings.worker_batch_size
    interval = settings.worker_batch_interval
    started = -interval
    while True:
        handed, started = await paced_take(runtime.source, batch_size, interval, started)
        await pipeline.process(handed)


def create_worker(
    settings: Settings,
    catalog: Catalog,
    *,
    codec: Codec,
    metrics: WorkerMetrics,
    clock: Clock = utc_now,
    on_fatal: Fatal = exit_process,
    starters: list[Callable[[], object]] | None = None,
) -> tuple[FaustRuntime, FoldPipeline]:
    """The worker on Faust's runtime; nothing connects until `runtime.run()`. With
    `starters`, a function that starts the liveness watchdog thread is appended
    (call it when starting the worker; see `processors.worker.watchdog`)."""
    from processors.worker.runtime.app import FaustRuntime

    topics = topics_from(settings)
    runtime = FaustRuntime(settings, (topics.usage, topics.account), on_fatal)
    pipeline = build_pipeline(
        runtime, settings, catalog, codec=codec, metrics=metrics, clock=clock, on_fatal=on_fatal
    )
    runtime.serve(lambda: fold_loop(runtime, pipeline, settings))
    if starters is not None:
        watch = CatalogWatch(settings, codec)
        starters.append(
            refresher_starter(watch, pipeline.use_catalog, settings.worker_catalog_refresh)
        )
    if settings.worker_stall_timeout > 0 and starters is not None:
        starters.append(
            watchdog_starter(
                runtime,
                (topics.usage, topics.account),
                settings.partitions,
                settings.worker_stall_timeout,
                lambda: pipeline.folded,
                on_fatal,
            )
        )
    return runtime, pipeline
