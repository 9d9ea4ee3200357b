"""On the real broker with the fold worker running: four successive closes, late
usage arriving after each of the first three. Everything the worker accepted is
billed by some close (as an adjustment once its period is closed), what it refused
as too late is billed by none, and reconcile finds the closes equal to the live
worker after every close.

Writer plan: 19.00 a month, 100,000 tokens included, 0.02 per 1,000 beyond. The
customer subscribes on 1 Aug 2026, so its periods are calendar months.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.events import Invoice, SubscriptionStarted, UsageRecorded
from processors.close.plan import Month
from processors.close.run import CloseDeps, CloseOptions, close_period
from processors.close.topics import CloseTopics
from processors.fold.admission import policy_from
from processors.reconcile.run import reconcile, render
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.local.demo_watch import WorkerProgress
from streambill.local.procs import free_port
from streambill.wire.codec import Codec
from streambill.wire.kafka_log import KafkaLog
from tests.integration.fold_support import TopicReader, WorkerProcess, isolated, send_with_sdk

pytestmark = pytest.mark.integration
CUSTOMER = "cus_late"


@pytest.fixture
def running(base: Settings) -> Iterator[Settings]:
    # Infinite usage retention: the events are months old by the broker's clock, and
    # a 75-day retention would delete them within minutes of their arrival.
    settings = isolated(base, worker_metrics_port=free_port(), usage_retention_days=0)
    worker = WorkerProcess(settings)
    worker.start()
    yield settings
    worker.stop()


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def tokens(eid: str, qty: int, when: datetime) -> UsageRecorded:
    return UsageRecorded(eid, CUSTOMER, "tokens", Decimal(qty), when)


def caught_up(settings: Settings, timeout: float = 60) -> None:
    progress = WorkerProgress(settings)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if progress.lag()[0] == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"the worker did not catch up: {progress.lag()}")
    finally:
        progress.close()


def close(settings: Settings, month: str) -> list[Invoice]:
    topics = CloseTopics.of(settings)
    log = KafkaLog(settings.kafka_config())
    try:
        deps = CloseDeps(
            log, Codec(), load_catalog(settings.catalog_path), topics,
            lambda: datetime.now(UTC), policy=policy_from(settings),
        )  # fmt: skip
        report = close_period(deps, CloseOptions(Month.parse(month)))
    finally:
        log.close()
    return [p.invoice for p, _ in report.invoices]


def amounts(invoices: list[Invoice]) -> list[tuple[str, str, Decimal]]:
    return sorted((i.kind, f"{i.period_start:%m}", i.total) for i in invoices)


def test_late_usage_after_each_close_is_billed_once_and_too_late_never(
    running: Settings, codec: Codec
) -> None:
    settings = running
    start = datetime(2026, 8, 1, tzinfo=UTC)  # periods are calendar months
    send_with_sdk(settings, [SubscriptionStarted("sub-late", CUSTOMER, start, "writer")])
    caught_up(settings)
    send_with_sdk(settings, [tokens("a1", 150_000, at(8, 10)), tokens("s1", 50_000, at(9, 20))])
    caught_up(settings)

    def checked(month: str) -> list[tuple[str, str, Decimal]]:
        caught_up(settings)
        out = amounts(close(settings, month))
        report = reconcile(settings, Month.parse(month))
        assert report.ok, render(report)
        return out

    # August: 150,000 tokens, 50,000 over: 19.00 + 1.00
    assert checked("2026-08") == [("period", "08", Decimal("20.00"))]
    # late for August (23 days behind the watermark of 20 Sep): +100,000 -> +2.00
    send_with_sdk(settings, [tokens("a2", 100_000, at(8, 28)), tokens("o1", 10, at(10, 15))])
    assert checked("2026-09") == [
        ("adjustment", "08", Decimal("2.00")),
        ("period", "09", Decimal("19.00")),
    ]
    # after the August and September closes: late for September (17 days behind
    # 15 Oct) and August again (48 days behind: too late, billed by no close)
    send_with_sdk(settings, [tokens("s2", 150_000, at(9, 28)), tokens("a3", 500_000, at(8, 28))])
    assert checked("2026-10") == [
        ("adjustment", "09", Decimal("2.00")),
        ("period", "10", Decimal("19.00")),
    ]
    # after the October close: two months back for September, within the window
    # (watermark 15 Oct, 20 days behind) -> +1.00 in November's close
    send_with_sdk(settings, [tokens("s3", 50_000, at(9, 25)), tokens("n1", 10, at(11, 2))])
    assert checked("2026-11") == [
        ("adjustment", "09", Decimal("1.00")),
        ("period", "11", Decimal("19.00")),
    ]
    letters = TopicReader(settings, "usage-rejected", codec)
    try:
        found = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            found = [v for _, v in letters.poll(0.5) if getattr(v, "event_id", None) == "a3"]
        assert [x.reason.value for x in found] == ["too_late"]  # type: ignore[attr-defined]
    finally:
        letters.close()
