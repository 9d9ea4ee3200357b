"""The fold worker's pipeline, above the runtime port (`processors.worker.ports`):
`FoldPipeline` takes hand-overs, folds them with `processors.fold.batch.BatchFolder`
and hands each folded batch to the commit order (`processors.worker.commit`),
keeping the worker's record cache and its view of the tables. Framework-free: it
runs on Faust's runtime in production and on the in-memory one in tests.

Per batch: drop hand-overs of partitions no longer assigned; before the first batch
of a partition since the last rebalance, make its customer records in the store
those of the changelog (`_records_from_changelog`: the runtime's recovery is not
trusted with them) and fold its account-events backlog
(`processors.worker.catch_up`); put first what the runtime skipped
(`catch_up.with_skipped`); fold (on the fold thread, on top of the batches still
in flight); cache the changed records, overlay the new seen entries, and start
the commit order, which makes the batch durable in the background (at most
`max_in_flight` batches at once) and then acknowledges it.

Rebalances are handled here only, in `on_rebalance` and what it marks: the
assignment epoch grows, the cache of revoked partitions (and of newly assigned
ones, which the runtime recovers from the changelog) is dropped; the next batch
then drains the flights before it folds (a dropped entry must reload what the
flights made durable), re-reads the account backlog of its partitions and starts
offset expectations again; a fold the rebalance overlapped is done again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from billing.admission import AdmissionPolicy, expired
from billing.catalog import Catalog
from processors.fold.batch import BatchFolder, BatchResult, SourceMessage, merge_by_time
from processors.fold.records import CustomerRecord, RecordCache, SeenEntry
from processors.worker.catch_up import OffsetOrder, with_skipped
from processors.worker.commit import CommitOrder, Flight, ProducerFactory, plain_json
from processors.worker.metrics import WorkerMetrics
from processors.worker.ports import Gap, HandOver, Rebalance, Runtime

log = logging.getLogger("processors.worker.worker")


class FoldPipeline:
    """Moves batches through `BatchFolder` into the commit order."""

    prune_interval_s = 300.0  # O(seen entries) per run: keep it rare
    max_in_flight = 4  # batches folded but not yet durable

    def __init__(
        self,
        runtime: Runtime,
        folder: BatchFolder,
        metrics: WorkerMetrics,
        policy: AdmissionPolicy,
        sources: tuple[str, str],
        producer: ProducerFactory,
        on_fatal: Callable[[BaseException], object],
    ) -> None:
        self._runtime = runtime
        self._folder = folder
        self._metrics = metrics
        self._policy = policy
        self._usage, self._account = sources
        self.cache = RecordCache()
        self._pending_seen: dict[str, SeenEntry] = {}  # of batches in flight
        self._commits = CommitOrder(runtime, producer, metrics, self._pending_seen, on_fatal)
        self._caught_up: set[int] = set()  # partitions whose account backlog is folded
        self._caught_up_epoch = -1
        self._order = OffsetOrder()
        self._next_prune = time.monotonic() + self.prune_interval_s
        self._fold_thread = ThreadPoolExecutor(1, thread_name_prefix="fold")
        self._flights: set[asyncio.Task[None]] = set()
        self._last: Flight | None = None  # the newest flight
        self._fold_epoch = self.cache.epoch
        runtime.on_rebalance(self.on_rebalance)

    @property
    def folded(self) -> int:
        """Messages of batches made durable (the watchdog's progress)."""
        return self._commits.folded

    async def process(self, handed: Sequence[HandOver]) -> None:
        """Fold one batch of hand-overs now and make it durable in the background;
        its hand-overs are acknowledged once it is (all but those of partitions no
        longer assigned, which are released unacknowledged and come again to whoever
        owns them). Returns as soon as the batch's effects are queued, so the next
        batch folds while this one's writes are in flight."""
        await self._room()
        handed = self._still_assigned(handed)
        messages = [m for h in handed for m in h.messages]
        await self._account_events_first(handed)
        folded, gaps = await with_skipped(self._order, messages, self._read_skipped)
        await self._commit(merge_by_time(folded), handed, gaps)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_interval_s
            await self.drain()
            await self._prune_seen()

    async def drain(self) -> None:
        """Wait until every batch in flight is durable and acknowledged."""
        while self._flights:
            await asyncio.wait(self._flights)

    # ---- rebalances

    def on_rebalance(self, change: Rebalance) -> None:
        """THE rebalance listener (see the module docstring). Revoked partitions'
        records are dropped (another worker may change them); newly assigned ones
        are dropped too unless this worker already owned them (the runtime recovers
        them from the changelog)."""
        if change.revoked:
            self.cache.drop(set(change.revoked))
        if change.assigned:
            self.cache.drop(set(change.assigned), keep_unchanged=True)

    async def _same_epoch(self) -> None:
        """A batch folds on top of batches still in flight (their records are cached
        at fold time), but never across a rebalance: the cache of a revoked or newly
        assigned partition was dropped and its store may lag the flights, so drain
        them first (their writes then reached the stores)."""
        while self._fold_epoch != self.cache.epoch:
            self._fold_epoch = self.cache.epoch
            await self.drain()

    def _still_assigned(self, handed: Sequence[HandOver]) -> Sequence[HandOver]:
        assigned = self._runtime.assigned()
        mine = [h for h in handed if h.tp in assigned]
        if len(mine) == len(handed):
            return handed
        self._runtime.release([h for h in handed if h.tp not in assigned])
        log.info("dropped %d hand-overs of partitions no longer assigned", len(handed) - len(mine))
        return mine

    async def _account_events_first(self, handed: Sequence[HandOver]) -> None:
        """Before the first batch of a partition since the last rebalance, fold its
        account-events backlog (see `processors.worker.catch_up` for why)."""
        if self._caught_up_epoch != self.cache.epoch:
            self._caught_up, self._caught_up_epoch = set(), self.cache.epoch
            self._order.new_assignment()
        fresh = {h.tp.partition for h in handed} - self._caught_up
        if not fresh:
            return
        await self._records_from_changelog(fresh)
        backlog, committed = await self._runtime.log.account_backlog(
            self._account, fresh, also_committed=self._usage
        )
        self._order.expect(committed)
        self._caught_up |= fresh
        if backlog:
            log.info("folding %d backlogged account events first", len(backlog))
            await self._fold_durably(backlog)

    async def _records_from_changelog(self, partitions: set[int]) -> None:
        """Make the store's customer records of `partitions` those of the customers
        changelog, read here from its start to its end, before anything of them is
        folded in this assignment.

        Why not trust the runtime's changelog recovery: Faust 0.15.3's can leave
        the store behind the changelog. Its `Recovery._slurp_changelogs` treats a
        changelog record of a partition that is neither active nor standby at that
        moment (a rebalance moved it: "recovery unknown topic" in the log) with the
        previous record's table and offsets map, so it sets that partition's offset
        in `active_offsets` after `Recovery.revoke` dropped it; when the partition
        comes back, `on_rebalance` keeps that offset and `_build_offsets` starts
        reading past it, never reading what came before. With the memory store
        (nothing persisted) the records this worker wrote itself while it last
        owned the partition are still in its dict, so they stand for what another
        worker applied and committed since: folding on them loses those events for
        good. A record read here that the store lacks or holds otherwise is put in
        the store (and logged); one read of the partition's compacted customers
        changelog per rebalance. The `seen` table stays the runtime's to recover (a
        missing entry there lets a re-sent duplicate through; it never loses an
        event)."""
        await self.drain()  # our own flights' records are then in the changelog and the store
        table = self._runtime.customers
        keeps_objects = table.keeps_objects
        for partition in sorted(partitions):
            latest: dict[str, bytes] = {}
            for m in await self._runtime.log.read_all(table.changelog, partition):
                if m.key is not None:
                    latest[json.loads(m.key)] = m.value
            rows: list[tuple[int, str, object]] = []
            for key, value in latest.items():
                want = json.loads(value) if value else None
                have = table.get(key, partition)
                if isinstance(have, CustomerRecord):
                    have = have.to_dict()
                if want is None:
                    if have is not None:
                        rows.append((partition, key, None))
                    continue
                if have is not None and (plain_json(have) == value or _same_json(have, want)):
                    continue
                rows.append(
                    (partition, key, CustomerRecord.from_dict(want) if keeps_objects else want)
                )
            self.cache.forget(partition)  # filled meanwhile from the store, maybe stale
            if rows:
                table.apply(rows, {})
                log.warning(
                    "partition %d: %d of %d customer records in the store differed from the "
                    "customers changelog after the rebalance (the runtime's recovery missed "
                    "them); the changelog's are in the store now",
                    partition,
                    len(rows),
                    len(latest),
                )
                self._metrics.record_records_repaired(len(rows))

    async def _fold_durably(self, messages: Sequence[SourceMessage]) -> None:
        """Fold and make durable before returning (account backlogs: nothing to
        acknowledge, the stream delivers them again and the offsets skip them)."""
        await self.drain()
        flight = await self._commit(messages, (), [])
        if flight.task is not None:
            await flight.task

    async def _read_skipped(
        self, topic: str, partition: int, start: int, stop: int
    ) -> list[SourceMessage]:
        """Messages the runtime skipped (see `OffsetOrder`), read from the log."""
        skipped = await self._runtime.log.read_range(topic, partition, start, stop)
        self._metrics.record_gap_filled(len(skipped))
        return skipped

    # ---- folding and launching the commit order

    async def _commit(
        self,
        messages: Sequence[SourceMessage],
        handed: Sequence[HandOver],
        gaps: list[Gap],
    ) -> Flight:
        """Fold `messages`, cache the result and start its commit order; return once
        its effects are queued (raises if that failed)."""
        begun = time.monotonic()
        result = await self._fold(messages)
        for cid, (partition, record) in result.customers.items():
            self.cache.put(cid, partition, record)
        for eid, (_, entry) in result.seen.items():
            self._pending_seen[eid] = entry
        loop = asyncio.get_running_loop()
        flight = Flight(
            messages,
            result,
            list(handed),
            gaps,
            self._last,
            loop.create_future(),
            loop.create_future(),
            begun=begun,
        )
        task = loop.create_task(self._commits.carry_out(flight))
        self._flights.add(task)
        task.add_done_callback(self._flights.discard)
        flight.task, self._last = task, flight
        await flight.started
        return flight

    async def _room(self) -> None:
        while len(self._flights) >= self.max_in_flight:
            await asyncio.wait(self._flights, return_when=asyncio.FIRST_COMPLETED)

    async def _fold(self, messages: Sequence[SourceMessage]) -> BatchResult:
        """`BatchFolder.fold` on the fold thread, so the loop goes on fetching (the
        next batch is then what arrived meanwhile, not what a fetch started after
        this fold brings) and serving the flights. Folded again if a rebalance
        dropped cache entries meanwhile (the result may mix them with stale store
        reads): nothing of a fold is used before it returns."""
        loop = asyncio.get_running_loop()
        while True:
            await self._same_epoch()
            epoch = self.cache.epoch
            result = await loop.run_in_executor(
                self._fold_thread, self._folder.fold, messages, _TableView(self)
            )
            if epoch == self.cache.epoch:
                return result

    async def _prune_seen(self) -> None:
        """Forget event ids older than the window behind their customer's watermark."""
        gone: list[tuple[str, int]] = []
        for event_id, raw in self._runtime.seen.items():
            entry = SeenEntry.from_row(raw)
            record = self.customer(entry.customer_id, entry.partition)
            wm = record.watermark_ms if record is not None else None
            if expired(self._policy, entry.event_ms, wm):  # what admission ignores already
                gone.append((event_id, entry.partition))
        rows = [(p, eid, None) for eid, p in gone]
        await self._commits.write_table(self._runtime.seen, rows)
        if gone:
            log.info("pruned %d seen event ids", len(gone))

    def use_catalog(self, catalog: Catalog) -> None:
        """The fold's catalog from its next batch on (`BatchFolder.use_catalog`)."""
        self._folder.use_catalog(catalog)

    # ---- reads (the view the folder uses)

    def customer(
        self, customer_id: str, partition: int, *, fill: bool = True
    ) -> CustomerRecord | None:
        """The cached record, else the stored one (then cached, unless `fill` is
        false). Callers must not change it (`processors.fold.batch` copies)."""
        record = self.cache.get(customer_id, partition)
        if record is not None:
            return record
        raw = self._runtime.customers.get(customer_id, partition)
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
        raw = self._runtime.seen.get(event_id, partition)
        return None if raw is None else SeenEntry.from_row(raw)


def _same_json(have: object, want: object) -> bool:
    """`have` (a stored record's dict) written as JSON and read back equals `want`."""
    return bool(json.loads(plain_json(have)) == want)


class _TableView:
    """`RecordView` over the pipeline's tables, partition-aware, for the fold
    thread: it never fills the cache (a rebalance may drop it meanwhile, and a
    record read from a store that lags the flights must not outlive that fold;
    the pipeline caches what the fold changed once it is known to be valid)."""

    def __init__(self, pipeline: FoldPipeline) -> None:
        self._pipeline = pipeline

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None:
        return self._pipeline.customer(customer_id, partition, fill=False)

    def seen(self, event_id: str, partition: int) -> SeenEntry | None:
        return self._pipeline.seen_entry(event_id, partition)
