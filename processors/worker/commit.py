"""The fold worker's commit order: one folded batch made durable, then acknowledged.

`CommitOrder.carry_out` is the only place that writes a batch's results and
acknowledges its messages; its docstring lists the steps and what a crash between
two of them does. The runtime commits acknowledged offsets only (Faust: on its
timer, after `broker_commit_every` acknowledgements and on rebalance), so its
commits can never pass a message whose effects, `seen` entry and customer record
are not durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from processors.fold.batch import BatchResult, SourceMessage
from processors.fold.record_json import RecordJson
from processors.fold.records import SeenEntry, json_string
from processors.worker.batch_send import Groups, Placed, Row, Sent, group_rows
from processors.worker.metrics import WorkerMetrics
from processors.worker.ports import Gap, HandOver, Runtime, Table

log = logging.getLogger("processors.worker.worker")


class Producer(Protocol):
    """Where the worker's writes go (`batch_send.Writer`: idempotent, acks=all)."""

    def queue(self, groups: Groups) -> Sent: ...


ProducerFactory = Callable[[asyncio.AbstractEventLoop], Producer]

_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_key(key: str) -> bytes:
    """A string key as JSON, exactly what `plain_json(key)` gives, without the encoder's
    dispatch (one key per event)."""
    return json_string(key).encode()


def plain_json(value: Any) -> bytes:
    """Plain JSON (str, numbers, lists, dicts only), what Faust's "json" codec
    decodes on table recovery; the stdlib encoder directly, because Faust's codec
    stack costs several times more per record and we write one per event."""
    return _encode_json(value).encode()


@dataclass(frozen=True, slots=True)
class Queued:
    """Rows of one table queued for its changelog, not yet acked."""

    table: Table
    rows: list[tuple[int, str, Any]]
    sent: Sent


@dataclass(slots=True)
class Flight:
    """A folded batch on its way to durable (see `CommitOrder.carry_out`)."""

    messages: Sequence[SourceMessage]
    result: BatchResult
    handed: Sequence[HandOver]  # to acknowledge once durable
    gaps: list[Gap]  # ranges read from the log before it (`catch_up.with_skipped`)
    previous: Flight | None  # launched just before this one (its records go first)
    started: asyncio.Future[None]  # done once its effects and seen entries are queued
    queued: asyncio.Future[None]  # done once its records are queued
    task: asyncio.Task[None] | None = field(default=None)
    begun: float = field(default_factory=time.monotonic)  # its fold started (monotonic)


class CommitOrder:
    """Writes folded batches in the commit order, on the worker's own producer."""

    def __init__(
        self,
        runtime: Runtime,
        producer: ProducerFactory,
        metrics: WorkerMetrics,
        pending_seen: dict[str, SeenEntry],
        on_fatal: Callable[[BaseException], object],
    ) -> None:
        self._runtime = runtime
        self._new_producer = producer
        self._producer: Producer | None = None  # created on the running loop, at first use
        self._placed: Placed = {}  # partitions of keyed effects (see `group_rows`)
        self._metrics = metrics
        self._pending_seen = pending_seen  # the pipeline's overlay of seen entries in flight
        self._record_json = RecordJson()  # customer records as JSON, parts reused
        self._on_fatal = on_fatal
        self.folded = 0  # messages of completed batches (the watchdog's progress)

    async def carry_out(self, flight: Flight) -> None:
        """Make one folded batch durable, then acknowledge it. The fold already cached
        its customer records and overlaid its seen entries (so the next batch folds on
        top of them); nothing of it is acknowledged before it is durable.

          1. queue the effects (alerts, purchase invoices, dead letters, one full
             snapshot per changed customer) and the `seen` entries for their
             changelog; `started` is set: the pipeline folds the next batch while
             these are in flight (librdkafka's threads put them on the wire);
          2. wait until the broker acked both (their relative order does not
             matter), then store the seen entries and drop their overlay;
          3. wait until the previous flight's customer records are queued, then
             queue this batch's (the same idempotent producer: per changelog
             partition they follow the previous batch's in the log);
          4. wait for their acks and for the previous flight to be done, then update
             the customers store (stores in log order);
          5. tell the runtime the skipped ranges read before this batch are done
             (`Runtime.passed`), so its commits may pass them;
          6. acknowledge the batch's messages (`Runtime.acknowledge`): only now do
             their offsets become committable.

        A crash (SIGKILL) loses the cache with the process; for a batch not yet
        acknowledged it is one of:
          - before 4's store update, its records maybe not durable: maybe some
            effects and seen entries are; the batch is redelivered and folded again
            from the same state, producing the same outputs with the same
            deterministic ids (harmless resends); a seen entry of an event whose
            state was lost names the very same message and is ignored on
            redelivery, so the event is applied once; a later copy at another
            position is still caught as a duplicate. A later batch's records are
            queued only after this one's effects and seen entries are acked and its
            records queued; if they survive while this one's do not (a failed
            write, which ends the process), each of them holds this batch's events
            of its customer, whose effects are durable, and this batch's other
            customers are redelivered and folded again as above;
          - between 4 and 5: the skipped ranges are not committable; the restart
            re-reads them from the committed offset, a redelivery;
          - between 4 and 6 (or before the runtime's commit): state durable,
            offsets not committed; redelivered messages are skipped by the offset
            check and their effects are already durable (1 precedes 4).
        A failure before `started` raises to the pipeline (whose caller exits);
        any later failure calls `on_fatal` (exits the process) instead of going on,
        because going on would acknowledge the batch.
        """
        try:
            result = flight.result
            # 1. effects and seen entries, queued
            effects = await self._send((o.topic, None, o.key, o.value) for o in result.outputs)
            seen_rows = [(p, eid, entry.to_row()) for eid, (p, entry) in result.seen.items()]
            # One per applied event: SeenEntry's own JSON (5x cheaper than the encoder's).
            seen_json = [entry.to_json() for _, entry in result.seen.values()]
            seen = await self._queue_table(self._runtime.seen, seen_rows, seen_json)
            flight.started.set_result(None)
            # The records' changelog values (`RecordJson`: the bytes of
            # `plain_json(rec.to_dict())`), encoded while 1 is in flight. A store that
            # keeps objects keeps the record itself, as the cache does; RocksDB
            # serializes what it stores, so it gets the dict.
            customers = self._runtime.customers
            changed = result.customers.items()
            objects = customers.keeps_objects
            rows = [(p, cid, rec if objects else rec.to_dict()) for cid, (p, rec) in changed]
            values = [self._record_json.encode(rec) for _, (_, rec) in changed]
            # 2. both acked; the seen store updated
            await asyncio.gather(effects.wait(), self._finish_table(seen))
            for eid, (_, entry) in result.seen.items():
                if self._pending_seen.get(eid) is entry:
                    del self._pending_seen[eid]
            # 3. the records queued after the previous flight's
            previous = flight.previous
            if previous is not None:
                await previous.queued  # raises if it failed before queuing its records
            records = await self._queue_table(customers, rows, values)
            flight.queued.set_result(None)
            # 4. the records acked and the previous flight done; the customers store
            acked = await records.sent.wait()
            done = previous.task if previous is not None else None
            if done is not None:
                await asyncio.wait([done])
                if done.cancelled() or done.exception() is not None:
                    raise RuntimeError("an earlier batch did not become durable")
            customers.apply(records.rows, acked)
            # 5. the skipped ranges passed
            await self._runtime.passed(flight.gaps)
            # 6. acknowledged
            self.folded += len(flight.messages)
            self._record_metrics(flight, result)
            if flight.handed:
                self._runtime.acknowledge(flight.handed)
        except BaseException as exc:
            early = not flight.started.done()
            for future in (flight.started, flight.queued):
                if not future.done():  # later flights must not wait for it forever
                    future.set_exception(RuntimeError("an earlier batch failed"))
                    future.exception()  # retrieved: no "never retrieved" warning
            if not early and not isinstance(exc, asyncio.CancelledError):
                self._on_fatal(exc)
            raise
        finally:
            flight.previous = None  # no chain of every flight ever made

    # ---- the writes carry_out is made of

    async def write_table(self, table: Table, rows: list[tuple[int, str, Any]]) -> None:
        """Changelog first (awaited), then the local store: a crash can make recovery
        re-read a record, never skip one. `value None` deletes the key."""
        await self._finish_table(await self._queue_table(table, rows))

    async def _send(self, rows: Iterable[Row]) -> Sent:
        """Queue `rows` on the worker's own producer (see `processors.worker.batch_send`)."""
        if self._producer is None:
            self._producer = self._new_producer(asyncio.get_running_loop())
        groups = await group_rows(self._runtime.partition_for, rows, self._placed)
        return self._producer.queue(groups)

    async def _queue_table(
        self,
        table: Table,
        rows: list[tuple[int, str, Any]],
        values: Sequence[bytes | None] | None = None,
    ) -> Queued:
        """Queue `rows` for the table's changelog, on its partition; nothing is durable
        yet. `values`, if given, are the rows' values already as JSON."""
        topic = table.changelog
        if values is None:
            values = [None if value is None else plain_json(value) for _, _, value in rows]
        encoded = [
            (topic, p, json_key(key), data) for (p, key, _), data in zip(rows, values, strict=True)
        ]
        return Queued(table, rows, await self._send(encoded))

    async def _finish_table(self, queued: Queued) -> None:
        """Wait for the changelog's acks, then update the local store."""
        queued.table.apply(queued.rows, await queued.sent.wait())

    def _record_metrics(self, flight: Flight, result: BatchResult) -> None:
        self._metrics.record_batch(result.counts, result.rejected)
        self._metrics.record_batch_duration(time.monotonic() - flight.begun)
        last: dict[tuple[str, int], int] = {}
        for m in flight.messages:
            last[(m.topic, m.partition)] = m.offset
        for (topic, partition), offset in last.items():
            highwater = self._runtime.highwater(topic, partition)
            self._metrics.record_position(topic, partition, offset, highwater)
