"""History that retention deleted is no longer needed, on the real broker (issue 17).

Two runs of one history with the fold worker running: "kept" keeps everything,
"trimmed" deletes, after the September close, the oldest records of usage-events
and account-events with Kafka's delete-records API: every account event (below the
September watermarks) and the usage below the re-read dedupe windows the
checkpoints name. Then October is closed in both: identical invoice bytes, and
`worker-rebuild` on the trimmed run (checkpoints plus the log after them) equals
the running worker's snapshots. Deleting a range the October close still needs
(usage past the September watermark, never billed) stops it with the named error.

Customers (periods are calendar months from 1 Aug 2026):
- cus_m, writer (metered): 19.00 a month, 100,000 tokens included, 0.02 per 1,000
  beyond; August 150,000 (20.00), September 50,000 (19.00), October 300,000 (23.00);
- cus_b, dev-api (balance): USD 5.00 deposited, 0.50 per 1M small-model input
  tokens: 1M on 2 Aug, 1M on 10 Sep, 1M on 10 Oct (balance 3.50 at the end); its
  period invoices bill 0.00 (the wallet prepaid the usage).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from billing.events import (
    CustomerCheckpointed,
    Event,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from processors.close.plan import CHECKPOINTS, USAGE, ClosePlanError, Month
from processors.close.run import CloseDeps, CloseOptions, close_period
from processors.close.topics import CloseTopics
from processors.fold.admission import policy_from
from processors.reconcile.rebuild import RebuildReport, rebuild_worker
from processors.reconcile.switch_over import SwitchOverError, install
from processors.worker.worker import topics_from
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.local.procs import free_port
from streambill.wire.codec import Codec
from streambill.wire.convert import decode_value
from streambill.wire.kafka_log import KafkaLog
from tests.integration.fold_support import WorkerProcess, isolated, send_with_sdk
from tests.integration.test_late_usage_kafka import caught_up

pytestmark = pytest.mark.integration
SMALL = {"model": "small", "input_tokens": "1000000", "output_tokens": "0"}


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def _usage(eid: str, customer: str, qty: int, when: datetime, **props: str) -> UsageRecorded:
    return UsageRecorded(eid, customer, "tokens", Decimal(qty), when, props)


AUGUST: list[Event] = [
    SubscriptionStarted("s-m", "cus_m", at(8, 1).replace(hour=0), "writer"),
    SubscriptionStarted("s-b", "cus_b", at(8, 1).replace(hour=0), "dev-api"),
    WalletDeposited("d-b", "cus_b", at(8, 1), Decimal("5.00"), "USD"),
    _usage("m-aug", "cus_m", 150_000, at(8, 10)),
    _usage("b-aug", "cus_b", 1_000_000, at(8, 2), **SMALL),
]
SEPTEMBER: list[Event] = [
    _usage("m-sep", "cus_m", 50_000, at(9, 10)),
    _usage("b-sep", "cus_b", 1_000_000, at(9, 10), **SMALL),
]
OCTOBER: list[Event] = [
    _usage("m-oct", "cus_m", 300_000, at(10, 10)),
    _usage("b-oct", "cus_b", 1_000_000, at(10, 10), **SMALL),
    _usage("b-sep", "cus_b", 1_000_000, at(9, 10), **SMALL),  # a retry: a duplicate
]


@pytest.fixture
def runs(base: Settings) -> Iterator[tuple[Settings, Settings, list[WorkerProcess]]]:
    kept = isolated(base, worker_metrics_port=free_port(), usage_retention_days=0)
    trimmed = isolated(base, worker_metrics_port=free_port(), usage_retention_days=0)
    workers = [WorkerProcess(kept), WorkerProcess(trimmed)]
    for w in workers:
        w.start()
    yield kept, trimmed, workers
    for w in workers:
        w.stop()


def _deps(settings: Settings, log: KafkaLog) -> CloseDeps:
    return CloseDeps(
        log, Codec(), load_catalog(settings.catalog_path), CloseTopics.of(settings),
        lambda: datetime(2026, 11, 3, tzinfo=UTC), policy=policy_from(settings),
    )  # fmt: skip


def _close(settings: Settings, month: str) -> tuple[list[bytes], dict[str, dict[int, int]]]:
    caught_up(settings)
    log = KafkaLog(settings.kafka_config())
    try:
        report = close_period(_deps(settings, log), CloseOptions(Month.parse(month)))
    finally:
        log.close()
    return sorted(data for _, data in report.invoices), report.watermarks


def _needed_usage(settings: Settings, marks: dict[str, dict[int, int]]) -> dict[int, int]:
    """Per partition the lowest usage offset the next close reads: the watermark, or
    a re-read window or pending record a checkpoint names."""
    codec = Codec()
    log = KafkaLog(settings.kafka_config())
    try:
        need = dict(marks[USAGE])
        topic = CloseTopics.of(settings).checkpoints
        _, high = log.watermarks(topic)
        for batch in log.read(topic, marks[CHECKPOINTS], high):
            for r in batch:
                cp = decode_value(codec, r.value)
                assert isinstance(cp, CustomerCheckpointed)
                window = [] if cp.window_offset is None else [cp.window_offset]
                for o in (*cp.pending, *window):
                    need[cp.partition] = min(need[cp.partition], o)
    finally:
        log.close()
    return need


def _delete_below(settings: Settings, topic: str, offsets: dict[int, int]) -> None:
    admin = AdminClient(settings.kafka_config())
    parts = [TopicPartition(topic, p, o) for p, o in offsets.items() if o > 0]
    for future in admin.delete_records(parts, request_timeout=30).values():
        future.result(timeout=30)


def _rebuild(settings: Settings) -> RebuildReport:
    log = KafkaLog(settings.kafka_config())
    try:
        return rebuild_worker(
            log, Codec(), load_catalog(settings.catalog_path), topics_from(settings),
            CloseTopics.of(settings), policy_from(settings), lambda: datetime.now(UTC),
        )  # fmt: skip
    finally:
        log.close()


def test_october_after_the_history_was_deleted_bills_what_the_whole_log_bills(
    runs: tuple[Settings, Settings, list[WorkerProcess]],
) -> None:
    kept, trimmed, workers = runs
    for settings in (kept, trimmed):
        send_with_sdk(settings, AUGUST)
        _close(settings, "2026-08")
        send_with_sdk(settings, SEPTEMBER)
    _close(kept, "2026-09")
    _, marks_t = _close(trimmed, "2026-09")

    topics = CloseTopics.of(trimmed)
    _delete_below(trimmed, topics.account, marks_t["account-events"])
    needed = _needed_usage(trimmed, marks_t)
    _delete_below(trimmed, topics.usage, needed)
    log = KafkaLog(trimmed.kafka_config())
    low_usage, _ = log.watermarks(topics.usage)
    low_account, _ = log.watermarks(topics.account)
    log.close()
    assert sum(low_usage.values()) > 0 and sum(low_account.values()) == sum(
        marks_t["account-events"].values()
    )  # the broker did delete: every account event, and August's usage

    for settings in (kept, trimmed):
        send_with_sdk(settings, OCTOBER)
    kept_october, _ = _close(kept, "2026-10")
    trimmed_october, _ = _close(trimmed, "2026-10")
    assert trimmed_october == kept_october
    totals = sorted(str(decode_value(Codec(), d).total) for d in kept_october)  # type: ignore[union-attr]
    assert totals == ["0.00", "23.00"]  # the wallet prepaid cus_b's usage

    caught_up(trimmed)
    time.sleep(1.0)  # the worker's last snapshots flushed to customer-state
    report = _rebuild(trimmed)
    assert report.started_from == "checkpoints of 2026-10"
    assert report.ok, report.differences
    assert report.equal == report.customers == 2

    # Switch-over: the worker's state handed to a new app id, which the log's start
    # (deleted) could no longer give; the new worker dedupes a retry of October's
    # usage by the installed seen entries and bills November's on the installed state.
    workers[1].stop()
    written = install(trimmed, _rebuild(trimmed), "fold-worker-b")
    assert written["customers"] == 2 and written["seen"] > 0
    switched = trimmed.model_copy(update={"worker_app_id": "fold-worker-b"})
    worker_b = WorkerProcess(switched, name="worker-b")
    worker_b.start()
    try:
        november = [
            _usage("m-nov", "cus_m", 10_000, at(11, 2)),
            _usage("m-oct", "cus_m", 300_000, at(10, 10)),  # the retry: a duplicate
        ]
        send_with_sdk(switched, november)
        caught_up(switched)
        time.sleep(1.0)
        after = _rebuild(switched)
        assert after.ok, after.differences
        assert after.equal == 2
        with pytest.raises(SwitchOverError, match="in use"):
            install(trimmed, after, "fold-worker-b")
    finally:
        worker_b.stop()


def test_deleting_usage_the_next_close_still_needs_is_named(base: Settings) -> None:
    settings = isolated(base, worker_metrics_port=free_port(), usage_retention_days=0)
    worker = WorkerProcess(settings)
    worker.start()
    try:
        send_with_sdk(settings, AUGUST)
        _close(settings, "2026-08")
        send_with_sdk(settings, SEPTEMBER)
        caught_up(settings)
        topics = CloseTopics.of(settings)
        log = KafkaLog(settings.kafka_config())
        _, high = log.watermarks(topics.usage)
        log.close()
        _delete_below(settings, topics.usage, high)  # September's usage: never billed
        with pytest.raises(ClosePlanError, match=f"{topics.usage} partition \\d+: .*starts at"):
            _close(settings, "2026-09")
    finally:
        worker.stop()
