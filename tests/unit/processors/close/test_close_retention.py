"""A close that needs records retention deleted stops with an error naming the topic,
the partitions and their first offsets (issue 17): never a silently different number.

Credits and balance customers are folded from the start of usage-events (their
credits and wallet carry over), every customer from the start of account-events. A
metered customer needs only the window of the periods it bills, so usage deleted
below that window is no reason to stop.
"""

from __future__ import annotations

import pytest

from processors.close.plan import ClosePlanError
from streambill.wire.partitioner import owner
from tests.close_support import (
    TOPICS,
    Harness,
    deposit,
    load_example_catalog,
    subscribe,
    usage,
    utc,
)


def _deleted_all_but_the_last(h: Harness, topic: str) -> None:
    for p, records in enumerate(h.log.topics[topic]):
        if records:
            h.log.delete_before(topic, p, len(records) - 1)


def _history(h: Harness, model_customer: str, plan: str) -> None:
    h.publish([subscribe(model_customer, plan, utc(2026, 8, 1))])
    if plan == "dev-api":
        h.publish([deposit(model_customer, "5.00", utc(2026, 8, 1))])
    feature = "tokens"
    props = {"model": "small"} if plan == "dev-api" else {}
    h.publish([
        usage(model_customer, feature, 1000 * i, utc(2026, 8, 2 + i), **props) for i in range(1, 6)
    ])  # fmt: skip
    h.publish([usage(model_customer, feature, 2000, utc(2026, 10, 5), **props)])


def test_deleted_usage_of_a_balance_customer_stops_the_close_naming_it() -> None:
    h = Harness(load_example_catalog())
    _history(h, "cus_bal", "dev-api")
    _deleted_all_but_the_last(h, TOPICS.usage)
    h.now = utc(2026, 11, 3)
    with pytest.raises(ClosePlanError) as info:
        h.close("2026-10")
    text = str(info.value)
    assert TOPICS.usage in text and "starts at offset" in text
    assert "STREAMBILL_USAGE_RETENTION_DAYS" in text


def test_deleted_account_events_stop_every_close() -> None:
    h = Harness(load_example_catalog())
    _history(h, "cus_met", "writer")
    p = owner(b"cus_met", h.log.partition_count)
    assert len(h.log.topics[TOPICS.account][p]) == 1
    h.log.delete_before(TOPICS.account, p, 1)  # cus_met's subscription is gone
    h.now = utc(2026, 11, 3)
    with pytest.raises(
        ClosePlanError, match=f"{TOPICS.account}: .*partition {p} starts at offset 1"
    ):
        h.close("2026-10")


def test_metered_usage_deleted_below_the_window_is_no_reason_to_stop() -> None:
    h = Harness(load_example_catalog())
    _history(h, "cus_met", "writer")
    _deleted_all_but_the_last(h, TOPICS.usage)  # only October's usage is left
    h.now = utc(2026, 11, 3)
    report = h.close("2026-10")
    assert report.status == "closed" and len(report.invoices) == 1
