"""Reconciliation over an in-memory log: a worker-like run reconciles clean; each
kind of tampering with the outputs is found and named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.admission import AdmissionPolicy
from billing.events import (
    CreditsPurchased,
    EventRejected,
    RejectReason,
    SubscriptionStarted,
    UsageRecorded,
)
from processors.fold.batch import BatchFolder, SourceMessage, Topics
from processors.reconcile.log import ReconcileReport, reconcile_log
from processors.reconcile.run import render
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.wire import convert
from streambill.wire.codec import Codec
from streambill.wire.log import InMemoryLog, LogRecord
from tests.worker_tables import Tables

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = 86_400_000
TOPICS = Topics("u", "a", "s", "al", "inv", "rej")
POLICY = AdmissionPolicy(35 * DAY, 35 * DAY, 300_000)
codec = Codec()
catalog = load_catalog(Settings().catalog_path)


def enc(value: object) -> bytes:
    name, record = convert.to_avro(value)  # type: ignore[arg-type]
    return codec.encode(name, record)


def append(log: InMemoryLog, topic: str, key: bytes | None, value: bytes, ts: int) -> LogRecord:
    """Append to partition 0 (one partition keeps the test's order explicit)."""
    part = log._parts(topic)[0]
    record = LogRecord(topic, 0, len(part), key, value, ts)
    part.append(record)
    return record


def scenario() -> InMemoryLog:
    """Inputs for two customers (a subscription, a pack, usage, a duplicate, garbage),
    folded in three batches as the live worker would, outputs appended."""
    log = InMemoryLog(partition_count=1)
    t0 = NOW - timedelta(days=3)
    ms = int(t0.timestamp() * 1000)
    account = [
        SubscriptionStarted("s1", "c1", t0, "starter"),
        SubscriptionStarted("s2", "c2", t0, "image-credits"),
        CreditsPurchased("p2", "c2", t0 + timedelta(minutes=1), "credits-100", 1),
    ]
    usage = [
        UsageRecorded(f"u{i}", "c1", "tokens", Decimal(40_000), t0 + timedelta(hours=i))
        for i in range(1, 4)
    ] + [
        UsageRecorded(
            f"i{i}", "c2", "image_generation", Decimal(1), t0 + timedelta(hours=i),
            {"complexity": "ultra"},
        )
        for i in range(1, 10)
    ]  # fmt: skip
    inputs = [append(log, "a", e.customer_id.encode(), enc(e), ms) for e in account]
    inputs += [
        append(log, "u", e.customer_id.encode(), enc(e), int(e.timestamp.timestamp() * 1000))
        for e in usage
    ]
    inputs.append(append(log, "u", b"c1", enc(usage[0]), ms + 1))  # a producer retry
    inputs.append(append(log, "u", b"c1", b"\x00garbage", ms + 2))  # undecodable
    folder = BatchFolder(catalog, codec, POLICY, TOPICS, lambda: NOW)
    tables = Tables()
    for batch in (inputs[:3], inputs[3:9], inputs[9:]):
        result = folder.fold(
            [SourceMessage(r.topic, 0, r.offset, r.timestamp_ms, r.key, r.value) for r in batch],
            tables,
        )
        for out in result.outputs:
            append(log, out.topic, out.key, out.value, ms)
        tables.commit(result)
    return log


def run(log: InMemoryLog) -> ReconcileReport:
    return reconcile_log(log, codec, catalog, TOPICS, POLICY, lambda: NOW)


def test_a_worker_run_reconciles_clean() -> None:
    report = run(scenario())
    assert report.ok, render(report)
    rows = {r.topic: r for r in report.rows}
    assert (rows["a"].in_log, rows["a"].applied) == (3, 3)
    usage = rows["u"]
    assert (usage.in_log, usage.applied, usage.deduplicated, usage.dead_lettered) == (14, 12, 1, 1)
    assert usage.unaccounted == 0
    assert report.snapshots_equal == report.customers == 2
    assert report.effects["purchase invoices"] == 1 and report.effects["alerts"] > 0
    assert "reconciled: no difference" in render(report)


def test_an_extra_dead_letter_is_named() -> None:
    log = scenario()
    letter = EventRejected(RejectReason.INVALID_FIELD, "made up", "u2", "c1", "u", 0, 4, b"x")
    append(log, "rej", b"c1", enc(letter), 0)
    report = run(log)
    assert not report.ok
    assert report.differences == ["u/0@4: unexpected dead letter (invalid_field)"]


def test_a_missing_dead_letter_leaves_its_record_unaccounted() -> None:
    log = scenario()
    log.topics["rej"][0].clear()
    report = run(log)
    usage = next(r for r in report.rows if r.topic == "u")
    assert usage.unaccounted == 1 and usage.dead_lettered == 0
    assert report.differences == ["u/0@13: expected a dead letter (undecodable)"]


def test_a_wrong_latest_snapshot_is_named_with_its_fields() -> None:
    log = scenario()
    states = log.topics["s"][0]
    first_c1 = next(r for r in states if r.key == b"c1")
    append(log, "s", b"c1", first_c1.value, 0)  # an old snapshot becomes the latest
    report = run(log)
    assert not report.ok
    text = " ".join(report.differences)
    assert "customer c1: latest snapshot differs" in text and "usage is" in text
    assert "applied by the pure fold, not covered by c1's latest snapshot" in text
    assert "c1" in render(report) and "DIFFERENCES" in render(report)


def test_a_missing_purchase_invoice_is_named() -> None:
    log = scenario()
    log.topics["inv"][0].clear()
    report = run(log)
    assert [d for d in report.differences if "purchase invoice" in d]
    assert all("not on the invoices topic" in d for d in report.differences)


def test_inputs_deleted_by_retention_are_named_not_mismatched() -> None:
    """Issue 17: reconcile folds the inputs from their start; once retention deleted
    records it says which partition starts where, never a silent or misleading result."""
    log = scenario()
    clean = run(log)
    assert clean.ok
    log.delete_before("u", 0, 1)
    report = run(log)
    assert not report.ok
    assert any("u partition 0 starts at offset 1" in d for d in report.differences)
