"""Late usage becomes adjustments, once; a close interrupted anywhere and re-run
emits exactly the invoices of an uninterrupted close (in-memory log)."""

from __future__ import annotations

import pytest

from billing.events import Invoice
from streambill.wire.log import InMemoryLog
from tests.close_support import (
    TOPICS,
    Harness,
    cents,
    load_example_catalog,
    subscribe,
    usage,
    utc,
)


def base(h: Harness) -> None:
    h.publish(
        [
            subscribe("cus_w", "writer", utc(2025, 1, 2)),
            usage("cus_w", "tokens", 250000, utc(2025, 1, 9)),
            subscribe("cus_s", "starter", utc(2025, 1, 15, 10)),
            usage("cus_s", "tokens", 60000, utc(2025, 1, 20)),
            usage("cus_w", "tokens", 100000, utc(2025, 2, 9)),
            usage("cus_s", "tokens", 1000, utc(2025, 2, 20)),
        ]
    )


def kinds(invoices: list[Invoice]) -> list[tuple[str, str, int]]:
    return sorted((i.customer_id, i.kind, cents(i.total)) for i in invoices)


def test_late_usage_is_adjusted_once_and_never_lost() -> None:
    h = Harness(load_example_catalog())
    base(h)
    feb = h.close("2025-02")
    assert kinds([p.invoice for p, _ in feb.invoices]) == [
        ("cus_s", "period", 2900 + 30),
        ("cus_w", "period", 2200),
    ]
    # after the February close: 50,000 more tokens of January (writer) and of the
    # starter period Jan 15 - Feb 15 arrive late
    h.publish(
        [
            usage("cus_w", "tokens", 50000, utc(2025, 1, 30)),
            usage("cus_s", "tokens", 10000, utc(2025, 2, 14)),
        ]
    )
    mar = h.close("2025-03")
    adjustments = [p.invoice for p, _ in mar.invoices if p.invoice.kind == "adjustment"]
    # writer: 300,000 -> 200,000 overage = 4.00 recomputed, 3.00 issued: +1.00
    # starter: 70,000 -> 20,000 overage = 0.60 recomputed, 0.30 issued: +0.30
    assert kinds(adjustments) == [("cus_s", "adjustment", 30), ("cus_w", "adjustment", 100)]
    issued = {p.invoice.customer_id: p.invoice.invoice_id for p, _ in feb.invoices}
    assert {a.adjusts_invoice_id for a in adjustments} == set(issued.values())
    # the period invoices of March are untouched by January's late usage
    assert kinds([p.invoice for p, _ in mar.invoices if p.invoice.kind == "period"]) == [
        ("cus_s", "period", 2900),
        ("cus_w", "period", 1900),
    ]
    # nothing new arrived for those periods: April bills no further adjustment
    apr = h.close("2025-04")
    assert [p for p, _ in apr.invoices if p.invoice.kind == "adjustment"] == []
    # a second late batch for January is adjusted relative to what was billed so far
    h.publish([usage("cus_w", "tokens", 25000, utc(2025, 1, 31))])
    may = h.close("2025-05", lookback=4)
    again = [p.invoice for p, _ in may.invoices if p.invoice.kind == "adjustment"]
    assert kinds(again) == [("cus_w", "adjustment", 50)]
    total_billed_jan = sum(
        i.total
        for _, i in h.invoices_on_topic()
        if i.customer_id == "cus_w" and i.period_start == utc(2025, 1, 2)
    )
    assert cents(total_billed_jan) == 1900 + 450  # (325,000 - 100,000 included) * 0.02/1000
    ids = [i.invoice_id for _, i in h.invoices_on_topic()]
    assert len(ids) == len(set(ids))


def test_late_usage_older_than_the_lookback_is_still_adjusted() -> None:
    """cus_w's watermark is Feb 9, so the worker accepts January 30 (within 35 days)
    even after the March close: April's close widens past its lookback and adjusts
    January against the invoice the February close issued: +1.00 (as above)."""
    h = Harness(load_example_catalog())
    base(h)
    feb = h.close("2025-02")
    h.close("2025-03")
    h.publish([usage("cus_w", "tokens", 50000, utc(2025, 1, 30))])
    apr = h.close("2025-04", lookback=1)
    adjustments = [p.invoice for p, _ in apr.invoices if p.invoice.kind == "adjustment"]
    assert kinds(adjustments) == [("cus_w", "adjustment", 100)]
    issued = {p.invoice.customer_id: p.invoice.invoice_id for p, _ in feb.invoices}
    assert adjustments[0].adjusts_invoice_id == issued["cus_w"]
    assert apr.fold.beyond_horizon == []


def test_usage_too_late_for_the_worker_is_not_billed_by_the_close() -> None:
    """With cus_w's watermark at March 20, January 30 is more than 35 days behind:
    the worker dead-letters it as too_late, and the close (same rule) bills nothing."""
    h = Harness(load_example_catalog())
    base(h)
    h.publish([usage("cus_w", "tokens", 1000, utc(2025, 3, 20))])
    h.close("2025-02")
    h.close("2025-03")
    h.publish([usage("cus_w", "tokens", 50000, utc(2025, 1, 30))])
    apr = h.close("2025-04", lookback=1)
    assert [p for p, _ in apr.invoices if p.invoice.kind == "adjustment"] == []
    assert apr.fold.beyond_horizon == []


class CrashingLog(InMemoryLog):
    """Raises after `budget` records were produced (a crash between two writes)."""

    budget: int = 0

    def produce(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        if self.budget <= 0:
            raise KeyboardInterrupt("simulated crash")
        self.budget -= 1
        super().produce(topic, key, value, timestamp_ms)


@pytest.mark.parametrize("budget", [0, 1, 2, 3])
def test_interrupted_close_rerun_equals_uninterrupted(budget: int) -> None:
    reference = Harness(load_example_catalog())
    base(reference)
    reference.close("2025-02")
    expected = sorted(data for data, _ in reference.invoices_on_topic())

    h = Harness(load_example_catalog(), log=CrashingLog(partition_count=3))
    assert isinstance(h.log, CrashingLog)
    h.log.budget = 10**6
    base(h)
    h.log.budget = budget  # writes: plan record, invoice, invoice, PeriodClosed
    with pytest.raises(KeyboardInterrupt):
        h.close("2025-02")
    h.log.budget = 10**6
    report = h.close("2025-02")
    assert sorted(data for data, _ in h.invoices_on_topic()) == expected
    assert report.sent + report.already_on_topic == len(expected)
    assert h.close("2025-02").status == "no_op"
    assert len(h.log.topics[TOPICS.closes]) > 0
