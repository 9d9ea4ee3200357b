"""`streambill worker-rebuild`: the worker's state rebuilt from the latest close's
checkpoints plus the log after them, compared with what the running worker published.

The worker keeps its state in its own tables (Faust changelogs). This rebuilds the
same state without them and without the history retention deleted: each customer
starts from its checkpoint (`processors.close.checkpoints`: the state at the latest
close's watermarks W, the lateness watermark, the dedupe window), pruned as the
worker prunes between batches, with every record below W counted as applied; the
window's event ids become the worker's `seen` entries. Then every record of both
inputs from W to the end is folded by `processors.fold.batch.BatchFolder`, the
worker's own fold, per partition merged by time as the worker merges a batch.

Each customer's rebuilt snapshot is compared with its latest snapshot on
customer-state, every field but `source_offsets` (the worker records the last offset
of the customer's own records, the rebuild the watermark it started from). With no
close yet, or none that wrote checkpoints, it starts from empty state at the log
start (the topics must still hold it). Run it when the worker has caught up.

Switch-over (README, "Operator's runbook"): when it reports no difference the running
state is right and nothing is to be done. A difference names the customer and the
fields; then `processors.reconcile.switch_over.install` hands the rebuilt tables to
workers started under a new app id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from billing.admission import AdmissionPolicy, dedupe_key, fingerprint, to_ms
from billing.catalog import Catalog
from billing.events import CustomerStateChanged, UsageRecorded
from billing.replay import Replay
from processors.close.checkpoints import Tracking, read_checkpoints, rebuild_seen, resume
from processors.close.plan import (
    ACCOUNT,
    CHECKPOINTS,
    USAGE,
    ClosePlanError,
    Month,
    ReadPlan,
    as_watermarks,
)
from processors.close.run import read_history
from processors.close.topics import CloseTopics
from processors.fold.admission import Doors
from processors.fold.batch import BatchFolder, SourceMessage, Topics, merge_by_time
from processors.fold.records import CustomerRecord, SeenEntry, tp_key
from streambill.wire.codec import Codec
from streambill.wire.convert import decode_value
from streambill.wire.log import LogPort, partition_for


@dataclass
class RebuildReport:
    started_from: str  # "checkpoints of YYYY-MM" or "the log start"
    customers: int = 0
    equal: int = 0
    differences: list[str] = field(default_factory=list)
    records_folded: int = 0
    # the rebuilt tables and the input positions they reflect (for `switch_over`)
    records: dict[str, tuple[int, CustomerRecord]] = field(default_factory=dict)
    seen: dict[str, tuple[int, SeenEntry]] = field(default_factory=dict)
    positions: dict[str, dict[int, int]] = field(default_factory=dict)
    # customer -> rebuilt snapshot bytes, for the customers that differ
    corrected: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.differences


class _Seeded:
    """The worker's tables as the checkpoints give them."""

    def __init__(self) -> None:
        self.customers: dict[str, CustomerRecord] = {}
        self.seen_ids: dict[str, SeenEntry] = {}
        self.partition: dict[str, int] = {}  # customer id or seen key -> partition

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None:
        record = self.customers.get(customer_id)
        return None if record is None else record.copy()

    def seen(self, key: str, partition: int) -> SeenEntry | None:
        return self.seen_ids.get(key)


def rebuild_worker(
    log: LogPort,
    codec: Codec,
    catalog: Catalog,
    topics: Topics,
    close_topics: CloseTopics,
    policy: AdmissionPolicy,
    clock: Callable[[], datetime],
) -> RebuildReport:
    history = read_history(log, close_topics.closes, codec)
    last = history.last_closed
    parts = log.partitions(topics.usage)
    n = len(parts)
    doors = Doors(codec, topics.usage, topics.account, n)
    folder = BatchFolder(catalog, codec, policy, topics, clock, partitions=n)
    tables = _Seeded()
    marks = as_watermarks(history.closed[last].watermarks) if last is not None else {}
    if last is not None and CHECKPOINTS in marks:
        report = RebuildReport(f"checkpoints of {last}")
        _seed(log, codec, catalog, close_topics, policy, last, marks, parts, doors, tables, folder)
        starts = {USAGE: dict(marks[USAGE]), ACCOUNT: dict(marks[ACCOUNT])}
    else:
        report = RebuildReport("the log start")
        starts = {USAGE: {p: 0 for p in parts}, ACCOUNT: {p: 0 for p in parts}}
    for topic, logical in ((topics.usage, USAGE), (topics.account, ACCOUNT)):
        low, _ = log.watermarks(topic)
        for p in parts:
            if low.get(p, 0) > starts[logical].get(p, 0):
                raise ClosePlanError(
                    f"{topic} partition {p}: the rebuild reads from offset"
                    f" {starts[logical].get(p, 0)} but the topic starts at {low[p]}"
                    " (deleted by retention): close the next period first (its checkpoints"
                    " start later) or raise the retention"
                )
    rebuilt: dict[str, bytes] = {}
    for p in parts:
        messages: list[SourceMessage] = []
        for topic, logical in ((topics.usage, USAGE), (topics.account, ACCOUNT)):
            _, high = log.watermarks(topic)
            report.positions.setdefault(topic, {})[p] = high[p]
            for batch in log.read(topic, {p: starts[logical].get(p, 0)}, {p: high[p]}):
                messages.extend(
                    SourceMessage(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value)
                    for r in batch
                )
        report.records_folded += len(messages)
        result = folder.fold(merge_by_time(messages), tables)
        for cid, (_, record) in result.customers.items():
            tables.customers[cid] = record
        for key, (_, entry) in result.seen.items():
            tables.seen_ids[key] = entry
        for out in result.outputs:
            if out.topic == topics.state and out.key is not None:
                rebuilt[out.key.decode()] = out.value
    for cid, record in tables.customers.items():
        if cid not in rebuilt and record.state.anchor is not None:
            rebuilt[cid] = folder.snapshot_bytes(record)
    _compare(log, codec, topics.state, rebuilt, report)
    report.records = {
        cid: (partition_for(cid.encode(), n), record) for cid, record in tables.customers.items()
    }
    report.seen = {key: (entry.partition, entry) for key, entry in tables.seen_ids.items()}
    return report


def _seed(
    log: LogPort,
    codec: Codec,
    catalog: Catalog,
    close_topics: CloseTopics,
    policy: AdmissionPolicy,
    last: Month,
    marks: dict[str, dict[int, int]],
    parts: list[int],
    doors: Doors,
    tables: _Seeded,
    folder: BatchFolder,
) -> None:
    """The tables from the checkpoints of close `last` (written between its
    PeriodClosed's position of the checkpoints topic and the topic's end)."""
    _, high = log.watermarks(close_topics.checkpoints)
    plan = ReadPlan(
        month=last.shift(1),
        ends={CHECKPOINTS: high, USAGE: marks[USAGE], ACCOUNT: marks[ACCOUNT]},
        usage_starts={},
        usage_low={},
        account_starts={},
        prev=marks,
        adjust_from=None,
        horizon=last.start,
        prev_month=last,
    )
    found = read_checkpoints(log, close_topics.checkpoints, plan, parts, codec, None)
    replay = Replay(catalog, policy)
    resume(replay, found, codec, Tracking())
    rebuild_seen(log, close_topics.usage, plan, parts, doors, replay, found, policy)
    for cid, cp in found.items():
        c = replay.customers[cid]
        offsets = {}
        below = ((close_topics.usage, cp.usage_offset), (close_topics.account, cp.account_offset))
        for topic, offset in below:
            if offset > 0:
                offsets[tp_key(topic, cp.partition)] = offset - 1
        record = CustomerRecord(cid, c.state, offsets, cp.watermark_ms)
        record.state = folder.settle(record)  # bounded as the worker keeps it
        tables.customers[cid] = record
        for event in c.seen.values():
            ms = to_ms(event.timestamp)
            usage = type(event) is UsageRecorded
            topic = close_topics.usage if usage else close_topics.account
            tables.seen_ids[dedupe_key(cid, event.event_id)] = SeenEntry(
                fingerprint(event, ms), topic, cp.partition, -1, cid, ms
            )


def _compare(
    log: LogPort, codec: Codec, state_topic: str, rebuilt: dict[str, bytes], report: RebuildReport
) -> None:
    latest: dict[str, bytes] = {}
    low, high = log.watermarks(state_topic)
    for batch in log.read(state_topic, low, high):
        for r in batch:
            if r.key is not None:
                latest[r.key.decode()] = r.value
    report.customers = len(rebuilt)
    for cid in sorted(set(rebuilt) | set(latest)):
        want, have = rebuilt.get(cid), latest.get(cid)
        if want is None or have is None:
            where = "the rebuild" if want is None else "customer-state"
            report.differences.append(f"customer {cid}: no snapshot in {where}")
            if want is not None:
                report.corrected[cid] = want
            continue
        a, b = decode_value(codec, have), decode_value(codec, want)
        assert isinstance(a, CustomerStateChanged) and isinstance(b, CustomerStateChanged)
        a, b = (dataclasses.replace(x, source_offsets={}) for x in (a, b))
        if a == b:
            report.equal += 1
            continue
        report.corrected[cid] = want
        fields = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
        report.differences.append(
            f"customer {cid}: "
            + "; ".join(f"{f} is {getattr(a, f)!r}, rebuilt {getattr(b, f)!r}" for f in fields)
        )
