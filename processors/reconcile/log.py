"""Reconciliation: account for every input event, and check the outputs against a
pure re-run of the worker's own logic over the log.

For each partition p, the records of usage-events[p] and account-events[p] (the
same customers: the topics are co-partitioned) are folded in memory by
`processors.fold.batch.BatchFolder`, the function the fold worker runs, starting from
empty state, merged by timestamp as the worker merges a batch. That says, per
input record, what the worker must have done with it:

- applied: then the customer's latest snapshot on customer-state must cover it
  (its `source_offsets` for that topic-partition reach the record's offset);
- dead-lettered: then usage-rejected must hold a dead letter naming that source
  topic, partition and offset (copies of it, from a resend after a crash, are fine);
- deduplicated: the same event id with the same payload was applied from another
  record; nothing to find.

A record is "unaccounted" when what it requires is not on the output topics. The
latest snapshot of every customer must equal, byte for byte, the one the pure
fold produced; purchase invoices and alerts the pure fold produced must be on
their topics. Dead letters naming a log position the pure fold did not reject,
and snapshots of customers the log never applied, are differences too.

Limits: the worker decides "timestamp in the future" against its wall clock at
the time, which the log does not record; reconcile uses its own clock (an event
that was in the future then and is not now shows as a difference). Inputs are
merged by timestamp per partition: a run in which usage arrived in an earlier
batch than an account event with an earlier timestamp is reported as different.
Run it when the worker has caught up (consumer lag 0): the newest records are
otherwise still unaccounted.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from billing.admission import AdmissionPolicy
from billing.catalog import Catalog
from billing.events import AlertRaised, AlertResolved, CustomerStateChanged, EventRejected, Invoice
from processors.fold.batch import (
    BatchFolder,
    Output,
    SourceMessage,
    Topics,
    merge_by_time,
)
from processors.fold.records import CustomerRecord, SeenEntry, tp_key
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, decode_value
from streambill.wire.log import LogPort, LogRecord

MAX_LISTED = 50  # differences kept in full; the rest are counted


@dataclass
class PartitionRow:
    topic: str
    partition: int
    in_log: int = 0
    applied: int = 0
    deduplicated: int = 0
    dead_lettered: int = 0
    unaccounted: int = 0


@dataclass
class ReconcileReport:
    rows: list[PartitionRow] = field(default_factory=list)
    customers: int = 0
    snapshots_equal: int = 0
    effects: Counter[str] = field(default_factory=Counter)  # expected, found on topics
    checks: dict[str, str] = field(default_factory=dict)  # name -> one-line result
    differences: list[str] = field(default_factory=list)
    more_differences: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences

    def differ(self, text: str) -> None:
        if len(self.differences) < MAX_LISTED:
            self.differences.append(text)
        else:
            self.more_differences += 1


@dataclass(frozen=True)
class Outputs:
    """What is on the output topics now, indexed for the comparisons."""

    dead_letters: dict[tuple[str, int, int], list[str]]  # source position -> reasons
    foreign_dead_letters: int  # with no source position (e.g. HTTP ingest)
    snapshots: dict[str, bytes]  # customer -> latest snapshot bytes
    invoices: dict[str, bytes]  # invoice id -> first bytes seen
    alerts: set[str]


class _Empty:
    """A worker that never ran: no customer records, no seen ids."""

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None:
        return None

    def seen(self, event_id: str, partition: int) -> SeenEntry | None:
        return None


def read_all(log: LogPort, topic: str) -> Iterator[LogRecord]:
    low, high = log.watermarks(topic)
    for batch in log.read(topic, low, high):
        yield from batch


def retention_gaps(log: LogPort, inputs: tuple[str, ...]) -> list[str]:
    """A difference for every input partition whose log no longer starts at offset 0:
    reconcile re-folds every input from the log start, so once retention deleted
    records its comparisons cannot hold, and it says so instead of listing the
    mismatches that follow."""
    out = []
    for topic in inputs:
        low, _ = log.watermarks(topic)
        for p, first in sorted(low.items()):
            if first > 0:
                out.append(
                    f"{topic} partition {p} starts at offset {first}: records below were"
                    " deleted by retention, and reconcile folds the inputs from their start;"
                    " keep the input topics for ever (STREAMBILL_USAGE_RETENTION_DAYS=0)"
                )
    return out


def read_outputs(log: LogPort, topics: Topics, codec: Codec) -> tuple[Outputs, list[str]]:
    """Index the output topics; undecodable records there are listed as problems."""
    problems: list[str] = []

    def values(topic: str) -> Iterator[tuple[LogRecord, object]]:
        for r in read_all(log, topic):
            try:
                yield r, decode_value(codec, r.value)
            except (DecodeError, InvalidField) as exc:
                problems.append(f"{topic}/{r.partition}@{r.offset} is not decodable: {exc}")

    dead: dict[tuple[str, int, int], list[str]] = {}
    foreign = 0
    for _, v in values(topics.rejected):
        if not isinstance(v, EventRejected):
            continue
        if v.source_topic is None or v.source_partition is None or v.source_offset is None:
            foreign += 1
            continue
        pos = (v.source_topic, v.source_partition, v.source_offset)
        dead.setdefault(pos, []).append(v.reason.value)
    snapshots = {r.key.decode(): r.value for r in read_all(log, topics.state) if r.key}
    invoices: dict[str, bytes] = {}
    for r, v in values(topics.invoices):
        if isinstance(v, Invoice):
            invoices.setdefault(v.invoice_id, r.value)
    alerts = {
        v.alert_id for _, v in values(topics.alerts) if isinstance(v, AlertRaised | AlertResolved)
    }
    return Outputs(dead, foreign, snapshots, invoices, alerts), problems


def _inputs(log: LogPort, topics: Topics) -> dict[int, list[SourceMessage]]:
    """Every input record, by partition (one pass over each input topic)."""
    out: dict[int, list[SourceMessage]] = {p: [] for p in log.partitions(topics.usage)}
    for topic in (topics.usage, topics.account):
        for r in read_all(log, topic):
            out.setdefault(r.partition, []).append(
                SourceMessage(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value)
            )
    return out


def reconcile_log(
    log: LogPort,
    codec: Codec,
    catalog: Catalog,
    topics: Topics,
    policy: AdmissionPolicy,
    clock: Callable[[], datetime],
    report: ReconcileReport | None = None,
    read: tuple[Outputs, list[str]] | None = None,
) -> ReconcileReport:
    """The per-partition accounting and the state / effects checks. `read`: the
    output topics already indexed by `read_outputs`."""
    report = report or ReconcileReport()
    for problem in retention_gaps(log, (topics.usage, topics.account)):
        report.differ(problem)
    outputs, problems = read if read is not None else read_outputs(log, topics, codec)
    for problem in problems:
        report.differ(problem)
    partitions = len(log.partitions(topics.usage))
    folder = BatchFolder(catalog, codec, policy, topics, clock, partitions=partitions)
    expected_dead: set[tuple[str, int, int]] = set()
    seen_customers: set[str] = set()
    for p, msgs in sorted(_inputs(log, topics).items()):
        result = folder.fold(merge_by_time(msgs), _Empty())
        expected = _expected_outputs(result.outputs, topics, codec)
        expected_dead |= set(expected.dead)
        seen_customers |= set(expected.snapshots)
        actual_state = _actual_states(outputs, expected.snapshots, report, codec)
        applied = _applied_by_tp(result.seen.values(), actual_state)
        for topic in (topics.usage, topics.account):
            row = PartitionRow(topic, p)
            row.in_log = sum(1 for m in msgs if m.topic == topic)
            for pos, reason in expected.dead.items():
                if pos[0] != topic:
                    continue
                found = outputs.dead_letters.get(pos, [])
                if reason in found:
                    row.dead_lettered += 1
                else:
                    row.unaccounted += 1
                    there = f" (there: {', '.join(found)})" if found else ""
                    report.differ(f"{_pos(pos)}: expected a dead letter ({reason}){there}")
            ok, missing = applied.get(topic, (0, []))
            row.applied = ok
            row.unaccounted += len(missing)
            for entry in missing[:3]:
                report.differ(
                    f"{_pos((entry.topic, entry.partition, entry.offset))}: applied by the pure"
                    f" fold, not covered by {entry.customer_id}'s latest snapshot"
                )
            expected_here = sum(1 for pos in expected.dead if pos[0] == topic)
            row.deduplicated = row.in_log - ok - len(missing) - expected_here
            report.rows.append(row)
        _check_effects(expected, outputs, report)
    for pos, reasons in sorted(outputs.dead_letters.items()):
        if pos not in expected_dead:
            report.differ(f"{_pos(pos)}: unexpected dead letter ({', '.join(reasons)})")
    for cid in sorted(set(outputs.snapshots) - seen_customers):
        report.differ(f"customer {cid}: snapshot on customer-state, but the log applies nothing")
    report.customers = len(seen_customers)
    report.checks["dead letters without a source position (ingest)"] = str(
        outputs.foreign_dead_letters
    )
    return report


@dataclass
class _Expected:
    dead: dict[tuple[str, int, int], str] = field(default_factory=dict)
    snapshots: dict[str, bytes] = field(default_factory=dict)
    invoices: dict[str, bytes] = field(default_factory=dict)
    alerts: set[str] = field(default_factory=set)


def _expected_outputs(outputs: list[Output], topics: Topics, codec: Codec) -> _Expected:
    exp = _Expected()
    for out in outputs:
        topic, key, value = out.topic, out.key, out.value
        if topic == topics.state and key is not None:
            exp.snapshots[key.decode()] = value  # the last one per customer wins
            continue
        decoded = decode_value(codec, value)
        if isinstance(decoded, EventRejected):
            pos = (decoded.source_topic, decoded.source_partition, decoded.source_offset)
            exp.dead[pos] = decoded.reason.value  # type: ignore[index]
        elif isinstance(decoded, Invoice):
            exp.invoices[decoded.invoice_id] = value
        elif isinstance(decoded, AlertRaised | AlertResolved):
            exp.alerts.add(decoded.alert_id)
    return exp


def _actual_states(
    outputs: Outputs, expected: dict[str, bytes], report: ReconcileReport, codec: Codec
) -> dict[str, CustomerStateChanged]:
    """Compare latest snapshots; return the actual ones decoded (for coverage)."""
    actual: dict[str, CustomerStateChanged] = {}
    for cid, want in expected.items():
        have = outputs.snapshots.get(cid)
        if have is None:
            report.differ(f"customer {cid}: no snapshot on customer-state")
            continue
        decoded = decode_value(codec, have)
        if isinstance(decoded, CustomerStateChanged):
            actual[cid] = decoded
        if have == want:
            report.snapshots_equal += 1
            continue
        report.differ(f"customer {cid}: latest snapshot differs: {_field_diff(have, want, codec)}")
    return actual


def _field_diff(have: bytes, want: bytes, codec: Codec) -> str:
    a, b = decode_value(codec, have), decode_value(codec, want)
    if not (dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b)):
        return "not a snapshot"
    parts = []
    for f in dataclasses.fields(b):
        x, y = getattr(a, f.name, None), getattr(b, f.name, None)
        if x != y:
            parts.append(f"{f.name} is {_short(x)}, pure fold {_short(y)}")
    return "; ".join(parts) or "same values, other bytes"


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _applied_by_tp(
    entries: Iterable[tuple[int, SeenEntry]], actual: dict[str, CustomerStateChanged]
) -> dict[str, tuple[int, list[SeenEntry]]]:
    """Per topic: (applied records covered by their customer's snapshot, the rest)."""
    out: dict[str, tuple[int, list[SeenEntry]]] = {}
    for _, entry in entries:
        ok, missing = out.get(entry.topic, (0, []))
        snap = actual.get(entry.customer_id)
        tp = tp_key(entry.topic, entry.partition)
        reached = None if snap is None else snap.source_offsets.get(tp)
        if reached is not None and reached >= entry.offset:
            ok += 1
        else:
            missing.append(entry)
        out[entry.topic] = (ok, missing)
    return out


def _check_effects(expected: _Expected, outputs: Outputs, report: ReconcileReport) -> None:
    for invoice_id, data in expected.invoices.items():
        there = outputs.invoices.get(invoice_id)
        if there is None:
            report.differ(f"purchase invoice {invoice_id}: not on the invoices topic")
        elif there != data:
            report.differ(f"purchase invoice {invoice_id}: other bytes than the pure fold's")
    missing = sorted(expected.alerts - outputs.alerts)
    for alert_id in missing[:5]:
        report.differ(f"alert {alert_id}: not on billing-alerts")
    if len(missing) > 5:
        report.differ(f"... and {len(missing) - 5} more alerts missing from billing-alerts")
    report.effects["purchase invoices"] += len(expected.invoices)
    report.effects["alerts"] += len(expected.alerts)


def _pos(pos: tuple[str, int, int]) -> str:
    return f"{pos[0]}/{pos[1]}@{pos[2]}"
