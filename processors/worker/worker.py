"""The real-time fold worker: a Faust app built by `create_app` (no module-level app).

One agent (concurrency 1) reads raw bytes from usage-events and account-events
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

Source messages bypass Faust's streams: the consumer's fetch loop hands whole
fetches to the agent through a `BatchFeed` (`processors.worker.feed`), and the agent
acknowledges them in bulk once durable. Faust's per-message path (a task, a
decode and an ack per message) capped the worker near 10,000 events/s on its own;
Faust still runs the group, the assignment, table recovery and the commits.

Table writes bypass Faust's `table[key] = value` on purpose: that path picks the
changelog partition from "the current event" (wrong inside a multi-partition batch)
and sends without giving us the delivery future, so we could not wait for
durability before acknowledging. We produce to the changelog topic ourselves, on
the customer's partition, with a librdkafka producer of our own
(`processors.worker.batch_send`), await the acks, then update the local store.

The customer record holds the ledger state WITHOUT the core's memory of event ids
(`ledger.forget_ids` after each batch, `state_to_dict(remember_ids=False)`): the
offsets and the `seen` table above already decide every redelivery and re-send,
so the record's size stays bounded by the retained periods (`ledger.prune` at
watermark - max_lateness) instead of growing with every event applied.

Records are kept deserialized between batches (`RecordCache`): a customer's record
is read from the table (JSON -> `CustomerRecord`) on its first touch only, and
replaced in the cache as soon as a batch changed it, so the next batch folds on top
of it while it is being made durable (a failed write ends the process, cache and
all). Entries of revoked partitions are dropped on rebalance (another worker may
change them); batches in flight are made durable before the next fold then, and
the table's store is updated once a record is durable, so a dropped entry reloads
exactly what the cache held.

Liveness (`processors.worker.watchdog`, started by `streambill worker` through
`create_app(..., starters=...)`): a thread with its own event loop (Faust starts
app tasks only after table recovery, so a worker stuck there would escape a task)
checks every few seconds, with its own plain consumer, the end offsets and the
group's committed offsets of the worker's source partitions. If some have data
beyond the committed offset and the folded-message count did not move for
`worker_stall_timeout` (STREAMBILL_WORKER_STALL_TIMEOUT,
default 30 s; 0 disables), the worker exits with code 70 without acknowledging
anything, like a failed batch, so its supervisor restarts it (seen: a consumer
that never fetched again after a broker restart and UnknownMemberIdError).
Start-up (until the first batch) and table recovery pause the judgement for at
most 10 x the timeout in one stretch, a rebalance for at most 2 x (a longer one,
seen after a broker restart, is a hang); an unreachable broker pauses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import faust
from aiokafka import TopicPartition

from billing.catalog import Catalog
from processors.fold.admission import policy_from
from processors.fold.batch import BatchFolder, Topics
from processors.worker.feed import BatchFeed, HandOver, ack_all, install_batch_drain, paced_take
from processors.worker.metrics import WorkerMetrics
from processors.worker.pipeline import FoldPipeline
from processors.worker.watchdog import GroupLag, RebalanceLimit, StallWatchdog, start_thread, watch
from streambill.config import settings as names
from streambill.config.kafka_security import faust_credentials
from streambill.config.settings import Settings
from streambill.wire.codec import Codec

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


class FoldApp(faust.App):
    """A Faust app whose consumer hands the source topics' messages to a `BatchFeed`
    in whole fetches (`processors.worker.feed`) instead of one by one to the agent's stream."""

    feed_sources: tuple[BatchFeed, frozenset[str]] | None = None

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        if self.feed_sources is not None:
            install_batch_drain(consumer, *self.feed_sources)
        return consumer


def create_app(
    settings: Settings,
    catalog: Catalog,
    *,
    codec: Codec,
    metrics: WorkerMetrics,
    clock: Clock = utc_now,
    on_fatal: Fatal = exit_process,
    starters: list[Callable[[], object]] | None = None,
) -> faust.App:
    """Build the worker app; nothing connects until the app is started. With
    `starters`, a function that starts the liveness watchdog thread is appended
    (call it when starting the worker; see `processors.worker.watchdog`)."""
    topics = topics_from(settings)
    feed = BatchFeed(capacity=2 * settings.worker_batch_size)
    app = FoldApp(
        settings.worker_group(),
        broker=[f"kafka://{host}" for host in settings.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),  # SASL / TLS from the settings
        store=settings.worker_store,
        datadir=str(settings.worker_data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,  # changelog topics; broker auto-create is off
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
        stream_wait_empty=True,
        stream_buffer_maxsize=max(4096, 2 * settings.worker_batch_size),
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=max(settings.worker_session_timeout / 5, 0.5),
        web_enabled=False,
    )
    app.feed_sources = (feed, frozenset({topics.usage, topics.account}))
    source = app.topic(
        topics.usage,
        topics.account,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    table_args: dict[str, Any] = {
        "partitions": settings.partitions,
        "key_type": str,  # keys and values travel as JSON
    }
    customers = app.Table("customers", **table_args)
    seen = app.Table("seen", **table_args)
    folder = BatchFolder(
        catalog, codec, policy_from(settings), topics, clock, partitions=settings.partitions
    )
    pipeline = FoldPipeline(
        app, folder, customers, seen, metrics, policy_from(settings), settings, on_fatal
    )

    # Faust calls receivers as receiver(app, set_of_tps, signal=...).
    @app.on_partitions_revoked.connect
    def _drop_revoked(_app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        pipeline.cache.drop({tp.partition for tp in args[0]})

    @app.on_partitions_assigned.connect
    def _drop_assigned(_app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        # Newly assigned partitions are recovered from the changelog: reload them.
        pipeline.cache.drop({tp.partition for tp in args[0]}, keep_unchanged=True)

    batch_size = settings.worker_batch_size
    interval = settings.worker_batch_interval

    @app.agent(source, name="fold", concurrency=1)
    async def fold(stream: faust.StreamT[bytes]) -> None:
        """Fold usage and account events into per-customer state.

        Batches come from `feed` (`processors.worker.feed`): whatever the consumer has
        fetched, up to `worker_batch_size` messages, so they grow with the backlog;
        a small batch starts at most every `worker_batch_interval` (it waits that
        long after the previous one started, for more to arrive; `paced_take`).
        A rebalance waits (`wait_empty`) until every handed-over message is acked.

        Commit order, per batch (the first batch of a partition after a rebalance
        is preceded by that partition's account-events backlog, folded and made
        durable the same way before anything else, see `processors.worker.catch_up`):
          0. messages Faust skipped before this batch's (a range per partition, see
             `processors.worker.catch_up.OffsetOrder`) are read from the log and go first;
          1. the admission doors: decode, key and partition (bad ones become dead
             letters);
          2. skip what is already applied (offset <= the customer's recorded offset
             for that topic-partition); then the customer rules of
             `billing.admission.decide` (future, lateness, dedupe by customer and id);
          3. `billing.ledger.apply` (pure), on the fold thread while the loop goes on
             fetching, on top of the batches still in flight (their customer
             records are cached and their seen entries overlaid once folded; a fold
             that a rebalance overlapped is discarded and done again);
          4a. queue the effects (alerts, purchase invoices, dead letters, one full
              snapshot per changed customer) and, at the same time,
          4b. queue the `seen` entries for their changelog. librdkafka's threads put
              them on the wire at once (`processors.worker.batch_send`); the loop goes on
              to fold the next batch, while at most `FoldPipeline.max_in_flight`
              batches are not durable. The rest runs per batch, in batch order:
          4c. WAIT until the broker acked 4a and 4b (their relative order does not
              matter, see below) and the previous batch's records are queued;
              queue the customer records to their changelog (the same idempotent
              producer: per partition, after the previous batch's records), wait
              for their acks and for the previous batch to be done, then update
              the local stores;
          4d. tell Faust the skipped ranges of step 0 are done (`_add_gap`), so its
              commits may pass them;
          5. acknowledge the batch's messages; Faust commits acknowledged offsets
             only (on its timer, every `broker_commit_every` acks, on rebalance).
        Before folding across a rebalance, every batch in flight is made durable
        first (the dropped cache must not hide their records from the store).

        A crash (SIGKILL) between any two steps loses the cache with the process;
        for every batch not yet acknowledged, it is one of:
          - before 4c's record write: nothing of its state durable, but maybe some
            effects and seen entries; the batch is redelivered and folded again
            from the same state, producing the same outputs with the same
            deterministic ids (harmless resends); a seen entry of an event whose
            state was lost names the very same message and is ignored on
            redelivery, so the event is applied once; a later copy at another
            position is still caught as a duplicate. A later batch's records are
            queued only after this one's effects and seen entries are acked and
            its records queued; if they survive while this one's records do not
            (a failed write, which ends the process), each of them holds this
            batch's events of its customer, whose effects are durable, and this
            batch's other customers are redelivered and folded again as above;
          - between 4c and 4d: the skipped ranges are not committable; the
            restart re-reads them from the committed offset, a redelivery;
          - between 4c and 5 (or before Faust's commit): state durable, offsets not
            committed; redelivered messages are skipped by the offset check and
            their effects are already durable (4a precedes 4c).
        Any failure to make a batch durable calls `on_fatal` (exits the process)
        instead of continuing, because continuing would acknowledge the batch.
        """
        aiter(stream.channel)  # subscribes to the sources; their messages come by `feed`
        consumer = app.consumer

        def durable(done: Sequence[HandOver]) -> None:
            ack_all(consumer, done)

        started = -interval
        while True:
            handed, started = await paced_take(feed, batch_size, interval, started)
            try:
                await pipeline.process(handed, durable)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                on_fatal(exc)

    del fold  # registered on the app; kept only there
    if settings.worker_stall_timeout > 0 and starters is not None:
        starters.append(_watchdog_starter(app, settings, pipeline, topics, on_fatal))
    return app


def _watchdog_starter(
    app: faust.App, settings: Settings, pipeline: FoldPipeline, topics: Topics, on_fatal: Fatal
) -> Callable[[], object]:
    """Exit (`on_fatal`, code 70) when lag stands still for `worker_stall_timeout`
    (see `processors.worker.watchdog`): a consumer that stopped fetching after a broker
    restart otherwise stays alive forever and no supervisor restarts it."""
    sources = (topics.usage, topics.account)
    everything = [TopicPartition(t, p) for t in sources for p in range(settings.partitions)]

    # Called from the watchdog's thread: read-only looks at the app; `app.consumer`
    # itself would create the consumer (in the wrong thread) if it did not exist yet.
    def watched() -> list[TopicPartition]:
        consumer = getattr(app, "_consumer", None)
        assigned = consumer.assignment() if consumer is not None else set()
        mine = [TopicPartition(tp.topic, tp.partition) for tp in assigned]
        return [tp for tp in mine if tp.topic in sources] or everything

    timeout = settings.worker_stall_timeout
    limit = RebalanceLimit(2 * timeout)

    def busy() -> bool:
        # Until its first batch, a worker is starting (group join, changelog recovery):
        # judged like recovery, only beyond the watchdog's own busy limit (10 x).
        starting = pipeline.folded == 0
        recovering = starting or bool(getattr(app, "in_recovery", False))
        return limit.busy(bool(app.rebalancing), recovering)

    async def _watchdog() -> None:
        await watch(
            StallWatchdog(timeout),
            GroupLag(settings.bootstrap_servers, settings.worker_group(), **pipeline.client),
            busy=busy,
            watched=watched,
            folded=lambda: pipeline.folded,
            interval_s=min(5.0, timeout / 3),
            on_stalled=on_fatal,
        )

    return lambda: start_thread(_watchdog)
