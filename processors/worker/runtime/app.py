"""`FaustRuntime`: the port's `Runtime` (`processors.worker.ports`) on faust-streaming.

Faust owns group membership, partition assignment (the tables co-partitioned with
the sources), changelog recovery of the tables, flow control on rebalance and the
commits of acknowledged offsets. The worker bypasses its per-message paths: the
consumer's fetch loop hands whole fetches to a `BatchFeed` (`runtime.feed`), the
pipeline writes the changelogs itself and updates the stores (`runtime.tables`), and
the one agent only runs the fold loop it is given: its stream is never read (it
subscribes the sources, whose messages never reach it).

Every private attribute of Faust, mode and aiokafka the worker relies on is read in
this package; docs/decisions/0001-faust-runtime.md lists them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from processors.worker.batches import BatchFeed
from processors.worker.ports import (
    Gap,
    HandOver,
    LagReader,
    Partition,
    Rebalance,
)
from processors.worker.runtime.credentials import faust_credentials
from processors.worker.runtime.feed import ack_all, install_batch_drain, release
from processors.worker.runtime.readers import AiokafkaLog, GroupLag
from processors.worker.runtime.tables import FaustTable, Markers
from streambill.config.kafka_security import aiokafka_security
from streambill.config.settings import Settings

Loop = Callable[[], Awaitable[None]]


class FoldApp(faust.App):
    """A Faust app whose consumer hands the source topics' messages to a `BatchFeed`
    in whole fetches (`runtime.feed`) instead of one by one to the agent's stream."""

    feed_sources: tuple[BatchFeed, frozenset[str]] | None = None

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        if self.feed_sources is not None:
            install_batch_drain(consumer, *self.feed_sources)
        return consumer


class _MarkingSource:
    """The feed as the pipeline takes from it; remembers a message per partition to
    address RocksDB's per-partition stores (`tables.Markers`)."""

    def __init__(self, feed: BatchFeed, markers: Markers) -> None:
        self._feed, self._markers = feed, markers

    def __len__(self) -> int:
        return len(self._feed)

    async def wait(self) -> None:
        await self._feed.wait()

    async def take(self, limit: int) -> list[HandOver]:
        handed = await self._feed.take(limit)
        for h in handed:
            self._markers.mark(h.tp.partition, h.messages[0])
        return handed


class FaustRuntime:
    """The worker's Faust app, its two tables and its fold agent; nothing connects
    until `run`. `serve(loop)` gives the agent its body (the fold loop); the agent
    calls `on_fatal` if it raises."""

    def __init__(
        self,
        settings: Settings,
        sources: tuple[str, str],
        on_fatal: Callable[[BaseException], object],
    ) -> None:
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
        app.feed_sources = (feed, frozenset(sources))
        self.app = app
        self._sources = frozenset(sources)
        self._settings = settings
        markers = Markers()
        self.source = _MarkingSource(feed, markers)
        table_args: dict[str, Any] = {
            "partitions": settings.partitions,
            "key_type": str,  # keys and values travel as JSON
        }
        by_event = not settings.worker_store.startswith("memory:")
        self.customers = FaustTable(
            app.Table("customers", **table_args), markers, by_event=by_event
        )
        self.seen = FaustTable(app.Table("seen", **table_args), markers, by_event=by_event)
        self._table_manager: Any = app.tables  # made by the tables above, on this thread
        self._client = aiokafka_security(settings)
        self.log = AiokafkaLog(settings.bootstrap_servers, settings.worker_group(), self._client)
        self._listener: Callable[[Rebalance], None] | None = None
        self._loop_body: Loop | None = None
        self._on_fatal = on_fatal
        self._connect(sources)

    def _connect(self, sources: tuple[str, str]) -> None:
        app = self.app
        topic = app.topic(
            *sources,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

        # Faust calls receivers as receiver(app, set_of_tps, signal=...). The sets
        # hold every topic's partitions (changelogs, and the assignor's leader topic,
        # partition 0, on the group leader): only the sources' are announced.
        @app.on_partitions_revoked.connect
        def _revoked(_app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
            self._announce(Rebalance(revoked=self._source_partitions(args[0])))

        @app.on_partitions_assigned.connect
        def _assigned(_app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
            self._announce(Rebalance(assigned=self._source_partitions(args[0])))

        @app.agent(topic, name="fold", concurrency=1)
        async def fold(stream: faust.StreamT[bytes]) -> None:
            aiter(stream.channel)  # subscribes to the sources; their messages come by the feed
            if self._loop_body is None:
                raise RuntimeError("FaustRuntime.serve was not called")
            try:
                await self._loop_body()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._on_fatal(exc)

        del fold  # registered on the app; kept only there

    def _source_partitions(self, tps: Any) -> frozenset[int]:
        sources = self._sources
        return frozenset(tp.partition for tp in tps if tp.topic in sources)

    def _announce(self, change: Rebalance) -> None:
        if self._listener is not None:
            self._listener(change)

    # ---- the port

    def serve(self, loop: Loop) -> None:
        """The agent's body: the fold loop (runs until cancelled)."""
        self._loop_body = loop

    def on_rebalance(self, listener: Callable[[Rebalance], None]) -> None:
        self._listener = listener

    def assigned(self) -> frozenset[Partition]:
        # From any thread: `app.consumer` would create the consumer if it did not exist.
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return frozenset()
        return frozenset(
            Partition(tp.topic, tp.partition)
            for tp in consumer.assignment()
            if tp.topic in self._sources
        )

    def acknowledge(self, handed: Sequence[HandOver]) -> None:
        ack_all(self.app.consumer, handed)

    def release(self, handed: Sequence[HandOver]) -> None:
        release(self.app.consumer, handed)

    async def passed(self, gaps: Sequence[Gap]) -> None:
        """Faust's own mechanism for offsets it never hands over (as in transactional
        topics): its commits then pass them."""
        consumer: Any = self.app.consumer
        for tp, offsets in gaps:
            await consumer._add_gap(faust.types.TP(*tp), offsets.start, offsets.stop - 1)

    def highwater(self, topic: str, partition: int) -> int:
        return int(self.app.consumer.highwater(faust.types.TP(topic, partition)) or 0)

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        """As Faust's aiokafka producer would place the record (murmur2 of the key)."""
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        parts = sorted(await producer.partitions_for(topic))
        return int(producer._partitioner(key, parts, parts))

    @property
    def in_recovery(self) -> bool:
        """The recovery service's own flag (set while it reads the changelogs)."""
        # `_recovery`, not `recovery`: that property would create the service here.
        recovery = getattr(self._table_manager, "_recovery", None)
        return bool(recovery is not None and recovery.in_recovery)

    @property
    def rebalancing(self) -> bool:
        return bool(self.app.rebalancing)

    def lag_reader(self) -> LagReader:
        return GroupLag(
            self._settings.bootstrap_servers, self._settings.worker_group(), **self._client
        )

    def run(self, loglevel: str = "info", starters: Sequence[Callable[[], object]] = ()) -> None:
        """Run the app in a Faust worker until it stops (blocks). `starters` run first."""
        # mode's Worker answers SIGUSR1 by writing every thread's and task's stack to
        # stderr (the chaos suite asks a stuck worker for them).
        worker = faust.Worker(self.app, loglevel=loglevel)
        # No terminal spinner: at levels from WARNING up, Faust hangs it on the root
        # logger and sets that logger to DEBUG, so every debug call of aiokafka, mode
        # and Faust builds a log record (with a stack walk) only for the handlers to
        # drop it.
        worker.spinner = None
        for start in starters:
            start()
        worker.execute_from_commandline()
