"""Edges where a resumed close once billed other bytes than a close folding from the
log start (found in review; each failed before its fix). Every scenario runs twice on
the in-memory log, checkpoints off and on, and the invoice bytes must be equal.

1. An idle credits or balance customer's usage of a long-closed period arrives late:
   its whole history is in its checkpoint, so it is folded in place and no period is
   adjusted (as from the start), never an extra adjustment.
2. Late usage of a period that begins before what a checkpoint's state holds
   (`complete_from`, the first close's horizon) is folded again from the log, so the
   adjustment prices the whole period (20 Nov - 20 Dec: 80k + 10k + 50k tokens, 40k
   past writer's 100k allowance at 0.02 per 1,000: 0.80), not the part the state had.
3. Usage the first close did not fold (older than its horizon) is not in the dedupe
   memory a checkpoint rebuilds: a later event reusing its id with another payload is
   billed, as from the start (lateness and window 45 days, as settings allow).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

import pytest

from billing.admission import AdmissionPolicy
from billing.events import (
    CreditsPurchased,
    Event,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from processors.close.plan import ClosePlanError, Month
from processors.close.run import CloseOptions, close_period
from streambill.wire.partitioner import owner
from tests.close_support import TOPICS, Harness, load_example_catalog, utc

CATALOG = load_example_catalog()
DAY = 86_400_000
POLICY = AdmissionPolicy(35 * DAY, 35 * DAY, 300_000)
NO_CHECKPOINTS = dataclasses.replace(TOPICS, checkpoints="")
Step = tuple[str, Event | str, datetime | None]


def _run(steps: list[Step], checkpoints: bool, policy: AdmissionPolicy = POLICY) -> Harness:
    h = Harness(CATALOG)
    for kind, what, now in steps:
        if kind == "publish":
            assert not isinstance(what, str)
            h.publish([what])
        else:
            assert isinstance(what, str) and now is not None
            h.now = now
            topics = TOPICS if checkpoints else NO_CHECKPOINTS
            deps = dataclasses.replace(h.deps(), topics=topics, policy=policy)
            close_period(deps, CloseOptions(Month.parse(what)))
    return h


def _same(steps: list[Step], policy: AdmissionPolicy = POLICY) -> list[tuple[str, str]]:
    fresh, resumed = _run(steps, False, policy), _run(steps, True, policy)
    assert sorted(d for d, _ in resumed.invoices_on_topic()) == sorted(
        d for d, _ in fresh.invoices_on_topic()
    )
    return sorted((i.kind, str(i.total)) for _, i in fresh.invoices_on_topic())


def _closes(*months: tuple[str, datetime]) -> list[Step]:
    return [("close", m, at) for m, at in months]


JAN_TO_APR = _closes(
    ("2025-01", utc(2025, 2, 3)), ("2025-02", utc(2025, 3, 3)),
    ("2025-03", utc(2025, 4, 3)), ("2025-04", utc(2025, 5, 3)),
)  # fmt: skip
SMALL = {"model": "small", "input_tokens": "1000000", "output_tokens": "0"}


@pytest.mark.parametrize("model", ["balance", "credits"])
def test_late_usage_of_an_idle_prepaid_customer_adjusts_nothing(model: str) -> None:
    c = "cus_p"
    if model == "balance":
        start: list[Step] = [
            ("publish", SubscriptionStarted("s1", c, utc(2025, 1, 2), "dev-api"), None),
            ("publish", WalletDeposited("d1", c, utc(2025, 1, 2), Decimal(5), "USD"), None),
        ]
        use = lambda eid, day: UsageRecorded(  # noqa: E731
            eid, c, "tokens", Decimal(1_000_000), utc(2025, 1, day), SMALL
        )
    else:
        start = [
            ("publish", SubscriptionStarted("s1", c, utc(2025, 1, 2), "image-credits"), None),
            ("publish", CreditsPurchased("p1", c, utc(2025, 1, 2), "credits-100", 1), None),
        ]
        use = lambda eid, day: UsageRecorded(  # noqa: E731
            eid, c, "image_generation", Decimal(1), utc(2025, 1, day), {"complexity": "complex"}
        )
    steps = [
        *start,
        ("publish", use("u1", 5), None),
        *JAN_TO_APR,
        ("publish", use("u2", 20), None),  # idle: 15 days behind its watermark, in May
        ("close", "2025-05", utc(2025, 6, 3)),
    ]
    assert "adjustment" not in {kind for kind, _ in _same(steps)}


def test_late_usage_before_what_a_checkpoint_holds_is_priced_from_the_log() -> None:
    c = "cus_c"
    steps: list[Step] = [
        ("publish", SubscriptionStarted("s1", c, utc(2024, 11, 20), "writer"), None),
        ("publish", UsageRecorded("a", c, "tokens", Decimal(80_000), utc(2024, 11, 25)), None),
        ("publish", UsageRecorded("b", c, "tokens", Decimal(10_000), utc(2024, 12, 5)), None),
        *JAN_TO_APR[:3],
        ("publish", UsageRecorded("c", c, "tokens", Decimal(50_000), utc(2024, 12, 10)), None),
        ("close", "2025-04", utc(2025, 5, 2)),
    ]
    assert ("adjustment", "0.80") in _same(steps)


def test_usage_a_close_did_not_fold_is_not_a_dedupe_entry() -> None:
    c = "cus_h"
    steps: list[Step] = [
        ("publish", SubscriptionStarted("s1", c, utc(2024, 11, 1), "writer"), None),
        ("publish", UsageRecorded("v", c, "tokens", Decimal(1000), utc(2025, 1, 10)), None),
        ("publish", UsageRecorded("k", c, "tokens", Decimal(1000), utc(2024, 11, 28)), None),
        ("close", "2025-01", utc(2025, 2, 2)),
        ("publish", UsageRecorded("k", c, "tokens", Decimal(300_000), utc(2025, 1, 11)), None),
        ("close", "2025-02", utc(2025, 3, 2)),
    ]
    invoices = _same(steps, AdmissionPolicy(45 * DAY, 45 * DAY, 300_000))
    assert ("adjustment", "4.02") in invoices  # the reused id's 300k tokens, billed late


def test_deleted_usage_pending_as_in_the_future_is_named() -> None:
    c = "cus_f"
    h = Harness(CATALOG)
    h.publish([SubscriptionStarted("s1", c, utc(2025, 1, 1), "writer")])
    h.publish([UsageRecorded("f", c, "tokens", Decimal(1000), utc(2025, 3, 10))])  # future
    h.now = utc(2025, 2, 3)
    report = h.close("2025-01")
    assert report.fold.rejected == {"timestamp_in_future": 1}
    p = owner(c.encode(), h.log.partition_count)
    h.log.delete_before(TOPICS.usage, p, len(h.log.topics[TOPICS.usage][p]))
    h.now = utc(2025, 3, 3)
    with pytest.raises(ClosePlanError, match="in the future and to be decided again"):
        h.close("2025-02")
