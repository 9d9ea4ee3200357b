"""Reconcile compares what the closes invoiced with what the live worker folded:
clean when they agree, a named difference when they do not (forced here by a dead
letter the close did not know of, as a worker's future rule would write)."""

from __future__ import annotations

from billing.events import EventRejected, RejectReason
from processors.close.run import read_history
from processors.reconcile.live import check_against_live
from processors.reconcile.log import ReconcileReport
from streambill.wire.convert import encode_value
from streambill.wire.log import partition_for
from tests.close_support import (
    TOPICS,
    Harness,
    load_example_catalog,
    subscribe,
    usage,
    utc,
)

REJECTED = "t.usage-rejected"


def world() -> tuple[Harness, int]:
    """Two closed months of a writer and a starter customer, with late usage; returns the
    harness and the offset of one February usage record of cus_w."""
    h = Harness(load_example_catalog())
    h.publish(
        [
            subscribe("cus_w", "writer", utc(2025, 1, 2)),
            subscribe("cus_s", "starter", utc(2025, 1, 15)),
            usage("cus_w", "tokens", 250000, utc(2025, 1, 9)),
            usage("cus_s", "tokens", 60000, utc(2025, 1, 20)),
        ]
    )
    h.close("2025-02")
    h.publish([usage("cus_w", "tokens", 50000, utc(2025, 1, 30))])  # late, adjusted in Mar
    p = partition_for(b"cus_w", 3)
    offset = len(h.log.topics[TOPICS.usage][p])
    h.publish([usage("cus_w", "tokens", 400000, utc(2025, 2, 9))])
    h.close("2025-03")
    return h, offset


def check(h: Harness, dead: dict[tuple[str, int, int], list[str]]) -> ReconcileReport:
    report = ReconcileReport()
    check_against_live(
        h.log,
        h.codec,
        h.catalog,
        usage_topic=TOPICS.usage,
        account_topic=TOPICS.account,
        invoices_topic=TOPICS.invoices,
        history=read_history(h.log, TOPICS.closes, h.codec),
        dead_letters=dead,
        report=report,
    )
    return report


def test_closes_and_live_worker_agree() -> None:
    h, _ = world()
    report = check(h, {})
    assert report.ok, report.differences
    line = report.checks["invoices against the live worker"]
    assert line.startswith("4 customer periods up to 2025-03 compared"), line


def test_a_record_the_worker_refused_but_a_close_billed_is_a_named_difference() -> None:
    """The worker dead-lettered cus_w's 400,000 tokens of February (say, in the
    future by its clock); the close billed them: writer overage 0.02 per 1,000 over
    100,000 included, 400,000 -> 6.00 billed against 0 folded live: 19.00 vs 25.00."""
    h, offset = world()
    p = partition_for(b"cus_w", 3)
    letter = EventRejected(
        RejectReason.TIMESTAMP_IN_FUTURE, "made up", None, "cus_w", TOPICS.usage, p, offset
    )
    h.log.produce(REJECTED, b"cus_w", encode_value(h.codec, letter), 0)
    report = check(h, {(TOPICS.usage, p, offset): ["timestamp_in_future"]})
    assert report.differences == [
        "customer cus_w period from 2025-02-02: invoiced USD 25.00 by the closes,"
        " the live worker folded USD 19.00"
    ]
