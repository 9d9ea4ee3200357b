"""One batch of the fold worker made durable, in the order of the agent's docstring
(`processors.worker.worker`): `FoldPipeline` moves hand-overs (`processors.worker.feed`) through
`processors.fold.batch.BatchFolder` and writes the effects, the `seen` entries and the
customer records, keeping the worker's caches and its view of Faust's tables.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from billing.admission import expired
from processors.fold.batch import (
    BatchFolder,
    BatchResult,
    FoldPolicy,
    SourceMessage,
    merge_by_time,
)
from processors.fold.record_json import RecordJson
from processors.fold.records import CustomerRecord, RecordCache, SeenEntry
from processors.worker.batch_send import Placed, Row, Sent, Writer, group_rows
from processors.worker.catch_up import OffsetOrder, account_backlog, read_range, with_skipped
from processors.worker.feed import HandOver
from processors.worker.metrics import WorkerMetrics
from processors.worker.table_io import Queued, Stores, json_key, plain_json
from streambill.config import settings as names
from streambill.config.kafka_security import aiokafka_security
from streambill.config.settings import Settings

log = logging.getLogger("processors.worker.worker")

Done = Callable[[Sequence[HandOver]], None]  # acknowledges durable hand-overs


class FoldPipeline:
    """Moves one batch through `BatchFolder` and makes its result durable in order."""

    prune_interval_s = 300.0  # O(seen entries) per run: keep it rare
    max_in_flight = 4  # batches folded but not yet durable

    def __init__(
        self,
        app: faust.App,
        folder: BatchFolder,
        customers: Any,
        seen: Any,
        metrics: WorkerMetrics,
        policy: FoldPolicy,
        settings: Settings,
        on_fatal: Callable[[BaseException], object],
    ) -> None:
        self._app = app
        self._folder = folder
        self._metrics = metrics
        self._policy = policy
        self._stores = Stores(
            customers, seen, by_event=not settings.worker_store.startswith("memory:")
        )
        self.cache = RecordCache()
        self._record_json = RecordJson()  # customer records as JSON, parts reused
        self._settings = settings
        self._caught_up: set[int] = set()  # partitions whose account backlog is folded
        self._caught_up_generation = -1
        self._order = OffsetOrder()
        self._next_prune = time.monotonic() + self.prune_interval_s
        self.folded = 0  # messages of completed batches (the watchdog's progress)
        self.client = aiokafka_security(settings)  # the worker's own readers and watchdog
        self._on_fatal = on_fatal
        self._writer: Writer | None = None  # created on the app's loop, at first use
        self._placed: Placed = {}  # partitions of keyed effects (see `group_rows`)
        self._fold_thread = ThreadPoolExecutor(1, thread_name_prefix="fold")
        self._pending_seen: dict[str, SeenEntry] = {}  # of batches in flight
        self._flights: set[asyncio.Task[None]] = set()
        self._last: _Flight | None = None  # the newest flight
        self._fold_generation = self.cache.generation

    async def process(self, handed: Sequence[HandOver], durable: Done) -> None:
        """Fold one batch of hand-overs now and make it durable in the background
        (`_complete`); `durable` gets the hand-overs to acknowledge once they are (all
        but those of partitions no longer assigned, which are dropped unacknowledged
        and come again to whoever owns them). Returns as soon as the batch's effects
        are queued, so the next batch folds while this one's writes are in flight."""
        await self._room()
        handed = self._still_assigned(handed)
        messages = [m for h in handed for m in h.messages]
        for h in handed:  # any message of the partition will do (see `Stores.at`)
            self._stores.mark(h.tp.partition, h.messages[0])
        await self._account_events_first(handed)
        folded, gaps = await with_skipped(self._order, messages, self._read_skipped)
        flight = await self._start(merge_by_time(folded))
        flight.gaps, flight.handed, flight.durable = gaps, list(handed), durable
        self._launch(flight)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_interval_s
            await self.drain()
            await self._prune_seen()

    async def drain(self) -> None:
        """Wait until every batch in flight is durable and acknowledged."""
        while self._flights:
            await asyncio.wait(self._flights)

    async def _room(self) -> None:
        while len(self._flights) >= self.max_in_flight:
            await asyncio.wait(self._flights, return_when=asyncio.FIRST_COMPLETED)

    async def _same_generation(self) -> None:
        """A batch folds on top of batches still in flight (their records are cached
        at fold time), but never across a rebalance: the cache of a revoked or newly
        assigned partition was dropped and its store may lag the flights, so drain
        them first (their writes then reached the stores)."""
        while self._fold_generation != self.cache.generation:
            self._fold_generation = self.cache.generation
            await self.drain()

    def _launch(self, flight: _Flight) -> None:
        task = asyncio.get_running_loop().create_task(self._complete(flight))
        self._flights.add(task)
        task.add_done_callback(self._flights.discard)
        flight.task, self._last = task, flight

    def _still_assigned(self, handed: Sequence[HandOver]) -> Sequence[HandOver]:
        consumer: Any = self._app.consumer
        assigned = consumer.assignment()
        mine = [h for h in handed if h.tp in assigned]
        if len(mine) == len(handed):
            return handed
        for h in handed:
            if h.tp not in assigned:  # not ours to ack; `wait_empty` must not wait on it
                consumer._unacked_messages.discard(h)
        log.info("dropped %d hand-overs of partitions no longer assigned", len(handed) - len(mine))
        return mine

    async def _account_events_first(self, handed: Sequence[HandOver]) -> None:
        """Before the first batch of a partition since the last rebalance, fold its
        account-events backlog (see `processors.worker.catch_up` for why)."""
        if self._caught_up_generation != self.cache.generation:
            self._caught_up, self._caught_up_generation = set(), self.cache.generation
            self._order.new_assignment()
        fresh = {h.tp.partition for h in handed} - self._caught_up
        if not fresh:
            return
        backlog, committed = await account_backlog(
            self._settings.bootstrap_servers,
            self._settings.worker_group(),
            self._settings.topic(names.ACCOUNT_EVENTS),
            fresh,
            also_committed=self._settings.topic(names.USAGE_EVENTS),
            client=self.client,
        )
        self._order.expect(committed)
        self._caught_up |= fresh
        if backlog:
            log.info("folding %d backlogged account events first", len(backlog))
            await self._fold_durably(backlog)

    async def _read_skipped(
        self, topic: str, partition: int, start: int, stop: int
    ) -> list[SourceMessage]:
        """Messages Faust skipped (see `OffsetOrder`), read from the log."""
        servers = self._settings.bootstrap_servers
        skipped = await read_range(servers, topic, partition, start, stop, client=self.client)
        self._metrics.record_gap_filled(len(skipped))
        return skipped

    async def _gaps_done(self, gaps: list[tuple[TP, range]]) -> None:
        """Once the skipped messages are durable: let Faust's commits pass them (its
        own mechanism for offsets it never hands over, as in transactional topics)."""
        consumer: Any = self._app.consumer
        for tp, offsets in gaps:
            await consumer._add_gap(tp, offsets.start, offsets.stop - 1)

    async def _fold_durably(self, messages: Sequence[SourceMessage]) -> None:
        """Fold and make durable before returning (account backlogs, see above)."""
        await self.drain()
        await self._complete(await self._start(messages))

    async def _start(self, messages: Sequence[SourceMessage]) -> _Flight:
        """Fold; queue the effects and the `seen` entries (steps 3, 4a, 4b).

        The batch's records are cached and its `seen` entries overlaid at once, so
        the next batch folds on top of them before they are durable. Nothing of it
        can be acknowledged before it is (a failed write exits the process), and a
        rebalance drains the flights before the next fold (`_same_generation`)."""
        result = await self._fold(messages)
        for cid, (partition, record) in result.customers.items():
            self.cache.put(cid, partition, record)
        for eid, (_, entry) in result.seen.items():
            self._pending_seen[eid] = entry
        effects = await self._send((o.topic, None, o.key, o.value) for o in result.outputs)
        seen_rows = [(p, eid, entry.to_row()) for eid, (p, entry) in result.seen.items()]
        # One per applied event: SeenEntry's own JSON (5x cheaper than the encoder's).
        seen_json = [entry.to_json() for _, entry in result.seen.values()]
        seen = await self._queue_table(self._stores.seen, seen_rows, seen_json)
        queued = asyncio.get_running_loop().create_future()
        return _Flight(messages, result, effects, seen, self._last, queued)

    async def _fold(self, messages: Sequence[SourceMessage]) -> BatchResult:
        """`BatchFolder.fold` on the fold thread, so the loop goes on fetching (the
        next batch is then what arrived meanwhile, not what a fetch started after
        this fold brings) and serving the flights. Folded again if a rebalance
        dropped cache entries meanwhile (the result may mix them with stale store
        reads): nothing of a fold is used before it returns."""
        loop = asyncio.get_running_loop()
        while True:
            await self._same_generation()
            generation = self.cache.generation
            result = await loop.run_in_executor(
                self._fold_thread, self._folder.fold, messages, _TableView(self)
            )
            if generation == self.cache.generation:
                return result

    async def _complete(self, flight: _Flight) -> None:
        """Steps 4b to 5 of the agent's docstring, in that order, for one flight.

        The customer records are encoded while the effects and seen entries are in
        flight, and queued once those are acked AND the previous flight's records
        are queued: queued after them on the same idempotent producer, so per
        changelog partition they follow them in the log; no round trip waits
        between two flights' records. The stores are updated and the batch is
        acknowledged once its records are acked AND the previous flight is done
        (stores in log order, acks in offset order)."""
        try:
            result = flight.result
            # Changelog values from `RecordJson` (the bytes of `plain_json(rec.to_dict())`).
            # The memory store keeps the record itself, as the cache does (`customer()`
            # takes it as is, and decodes the dicts that recovery from the changelog
            # puts there); RocksDB serializes what it stores, so it gets the dict.
            changed = result.customers.items()
            by_event = self._stores.by_event
            rows = [(p, cid, rec.to_dict() if by_event else rec) for cid, (p, rec) in changed]
            values = [self._record_json.encode(rec) for _, (_, rec) in changed]
            await asyncio.gather(flight.effects.wait(), self._finish_table(flight.seen))
            for eid, (_, entry) in result.seen.items():
                if self._pending_seen.get(eid) is entry:
                    del self._pending_seen[eid]
            previous = flight.previous
            if previous is not None:
                await previous.queued  # raises if it failed before queuing its records
            records = await self._queue_table(self._stores.customers, rows, values)
            flight.queued.set_result(None)
            acked = await records.sent.wait()
            done = previous.task if previous is not None else None
            if done is not None:
                await asyncio.wait([done])
                if done.cancelled() or done.exception() is not None:
                    raise RuntimeError("an earlier batch did not become durable")
            self._stores.update(records, acked)
            await self._gaps_done(flight.gaps)
            self.folded += len(flight.messages)
            self._record_metrics(flight.messages, result)
            if flight.durable is not None:
                flight.durable(flight.handed)
        except BaseException as exc:
            if not flight.queued.done():  # later flights must not wait for it forever
                flight.queued.set_exception(RuntimeError("an earlier batch failed"))
                flight.queued.exception()  # retrieved: no "never retrieved" warning
            if not isinstance(exc, asyncio.CancelledError):
                self._on_fatal(exc)
            raise
        finally:
            flight.previous = None  # no chain of every flight ever made

    # ---- durable writes, in the order of the agent's docstring

    async def _send(self, rows: Iterable[Row]) -> Sent:
        """Queue `rows` on the worker's own producer (see `processors.worker.batch_send`),
        placed as Faust's producer would place them."""
        aiokafka = self._app.producer._ensure_producer()  # type: ignore[attr-defined]
        groups = await group_rows(aiokafka, rows, self._placed)
        if self._writer is None:
            self._writer = Writer(self._settings.kafka_config(), asyncio.get_running_loop())
        return self._writer.queue(groups)

    async def _write_table(
        self,
        table: Any,
        rows: list[tuple[int, str, Any]],
        values: Sequence[bytes | None] | None = None,
    ) -> None:
        """Changelog first (awaited), then the local store, then (RocksDB) the
        persisted changelog offset, the order Faust itself uses: a crash can make
        recovery re-read a record, never skip one. `value None` deletes the key.
        `values`, if given, are the rows' values already as JSON."""
        await self._finish_table(await self._queue_table(table, rows, values))

    async def _queue_table(
        self,
        table: Any,
        rows: list[tuple[int, str, Any]],
        values: Sequence[bytes | None] | None = None,
    ) -> Queued:
        """Queue `rows` for the table's changelog; nothing is durable yet.

        Produced straight to the changelog topic: Faust's `send_soon` buffer hands
        messages to the client one at a time and throttles the stream (~2k/s); we
        hand them all to the worker's own producer (`processors.worker.batch_send`)."""
        topic = table.changelog_topic.get_topic_name()
        if values is None:
            values = [None if value is None else plain_json(value) for _, _, value in rows]
        encoded = [
            (topic, p, json_key(key), data) for (p, key, _), data in zip(rows, values, strict=True)
        ]
        return Queued(table, rows, await self._send(encoded))

    async def _finish_table(self, queued: Queued) -> None:
        """Wait for the changelog's acks, then update the local store and (RocksDB)
        the persisted changelog offsets (see `_write_table` for why in this order)."""
        self._stores.update(queued, await queued.sent.wait())

    async def _prune_seen(self) -> None:
        """Forget event ids older than the window behind their customer's watermark."""
        gone: list[tuple[str, int]] = []
        for event_id, raw in list(self._stores.seen.data.items()):
            entry = SeenEntry.from_row(raw)
            record = self.customer(entry.customer_id, entry.partition)
            wm = record.watermark_ms if record is not None else None
            if expired(self._policy, entry.event_ms, wm):  # what admission ignores already
                gone.append((event_id, entry.partition))
        await self._write_table(self._stores.seen, [(p, eid, None) for eid, p in gone])
        if gone:
            log.info("pruned %d seen event ids", len(gone))

    # ---- reads (the view the folder uses)

    def customer(
        self, customer_id: str, partition: int, *, fill: bool = True
    ) -> CustomerRecord | None:
        """The cached record, else the stored one (then cached, unless `fill` is
        false). Callers must not change it (`processors.fold.batch` copies)."""
        record = self.cache.get(customer_id, partition)
        if record is not None:
            return record
        raw = self._stores.read(self._stores.customers, customer_id, partition)
        if raw is None:
            return None
        record = raw if isinstance(raw, CustomerRecord) else CustomerRecord.from_dict(raw)
        if fill:
            self.cache.put(customer_id, partition, record)
        return record

    def seen_entry(self, event_id: str, partition: int) -> SeenEntry | None:
        pending = self._pending_seen.get(event_id)
        if pending is not None:  # of a batch in flight
            return pending
        raw = self._stores.read(self._stores.seen, event_id, partition)
        return None if raw is None else SeenEntry.from_row(raw)

    def _record_metrics(self, messages: Sequence[SourceMessage], result: BatchResult) -> None:
        self._metrics.record_batch(result.counts, result.rejected)
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic, m.partition)] = m.offset
        consumer = self._app.consumer
        for (topic, partition), offset in last.items():
            highwater = consumer.highwater(TP(topic, partition)) or 0
            self._metrics.record_position(topic, partition, offset, highwater)


@dataclass(slots=True)
class _Flight:
    """A folded batch whose writes are in flight (see `FoldPipeline._complete`)."""

    messages: Sequence[SourceMessage]
    result: BatchResult
    effects: Sent
    seen: Queued
    previous: _Flight | None  # launched just before this one (its records go first)
    queued: asyncio.Future[None]  # done once its records are queued (step 4c)
    task: asyncio.Task[None] | None = None  # running `_complete`, once launched
    gaps: list[tuple[TP, range]] = field(default_factory=list)
    handed: list[HandOver] = field(default_factory=list)
    durable: Done | None = None


class _TableView:
    """`RecordView` over the pipeline's tables, partition-aware, for the fold
    thread: it never fills the cache (a rebalance may drop it meanwhile, and a
    record read from a store that lags the flights must not outlive that fold;
    `_start` caches what the fold changed once it is known to be valid)."""

    def __init__(self, pipeline: FoldPipeline) -> None:
        self._pipeline = pipeline

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None:
        return self._pipeline.customer(customer_id, partition, fill=False)

    def seen(self, event_id: str, partition: int) -> SeenEntry | None:
        return self._pipeline.seen_entry(event_id, partition)
