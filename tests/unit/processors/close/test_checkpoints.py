"""A close resumes from its predecessor's checkpoints, so history that retention
deleted is no longer needed (issue 17); what it still needs, deleted, stops it with
an error naming topic, partition and offsets.

Scenario (frozen clock): a balance customer (dev-api, USD 0.50 per 1M small-model
input tokens, no base fee) deposits USD 5.00 on 1 Aug and uses 1M tokens on 2 Aug
(balance 4.50); 1M more on 10 Sep (balance 4.00); 1M on 10 Oct (balance 3.50).
After the September close its dedupe window reaches back to 6 Aug (10 Sep - 35
days), so August's usage and every account event may go: the October close still
knows the wallet and bills the same bytes as a close over the whole log.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from billing.events import CustomerCheckpointed
from processors.close.plan import ClosePlanError
from streambill.wire.convert import decode_value
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

CATALOG = load_example_catalog()
C = "cus_bal"
P = owner(C.encode(), 3)
SMALL = {"model": "small", "input_tokens": "1000000", "output_tokens": "0"}


def _through_september() -> Harness:
    h = Harness(CATALOG)
    h.publish([subscribe(C, "dev-api", utc(2026, 8, 1)), deposit(C, "5.00", utc(2026, 8, 1))])
    h.publish([usage(C, "tokens", 1_000_000, utc(2026, 8, 2), **SMALL)])
    h.now = utc(2026, 9, 3)
    h.close("2026-08")
    h.publish([usage(C, "tokens", 1_000_000, utc(2026, 9, 10), **SMALL)])
    h.now = utc(2026, 10, 3)
    h.close("2026-09")
    return h


def _october(h: Harness) -> list[bytes]:
    h.publish([usage(C, "tokens", 1_000_000, utc(2026, 10, 10), **SMALL)])
    h.now = utc(2026, 11, 3)
    report = h.close("2026-10")
    assert report.fold.resumed
    return [data for _, data in report.invoices]


def _checkpoints(h: Harness) -> list[CustomerCheckpointed]:
    out = []
    for part in h.log.topics[TOPICS.checkpoints]:
        for r in part:
            cp = decode_value(h.codec, r.value)
            assert isinstance(cp, CustomerCheckpointed)
            out.append(cp)
    return out


def test_each_close_checkpoints_the_wallet_at_its_watermarks() -> None:
    h = _through_september()
    august, september = _checkpoints(h)
    assert (august.period_id, september.period_id) == ("2026-08", "2026-09")
    assert Decimal(json.loads(august.state)["balance"]) == Decimal("4.50")
    assert Decimal(json.loads(september.state)["balance"]) == Decimal("4.00")
    assert september.window_offset == 1  # 10 Sep's record: 2 Aug's is outside the window
    assert september.partition == P
    assert september.usage_offset == len(h.log.topics[TOPICS.usage][P])
    assert september.account_offset == len(h.log.topics[TOPICS.account][P])


def test_october_after_the_history_was_deleted_equals_october_over_the_whole_log() -> None:
    kept = _october(_through_september())
    h = _through_september()
    h.log.delete_before(TOPICS.usage, P, 1)  # August's usage
    h.log.delete_before(TOPICS.account, P, len(h.log.topics[TOPICS.account][P]))  # all
    trimmed = _october(h)
    assert trimmed == kept
    assert Decimal(json.loads(_checkpoints(h)[-1].state)["balance"]) == Decimal("3.50")


def test_a_window_deleted_in_part_is_named() -> None:
    h = _through_september()
    h.log.delete_before(TOPICS.usage, P, 2)  # 10 Sep's record lies in the window
    h.now = utc(2026, 11, 3)
    with pytest.raises(ClosePlanError, match=f"{TOPICS.usage} partition {P}: .*dedupe windows"):
        h.close("2026-10")


def test_usage_deleted_past_the_previous_watermark_is_named() -> None:
    h = _through_september()
    h.publish([usage(C, "tokens", 1_000_000, utc(2026, 10, 10), **SMALL)])  # never billed
    h.log.delete_before(TOPICS.usage, P, len(h.log.topics[TOPICS.usage][P]))
    h.now = utc(2026, 11, 3)
    with pytest.raises(ClosePlanError, match=f"{TOPICS.usage} partition {P}: .* starts at"):
        h.close("2026-10")


def test_deleted_checkpoints_are_named() -> None:
    h = _through_september()
    part = h.log.topics[TOPICS.checkpoints][P]
    h.log.delete_before(TOPICS.checkpoints, P, len(part))
    h.now = utc(2026, 11, 3)
    with pytest.raises(ClosePlanError, match=f"{TOPICS.checkpoints} partition {P}"):
        h.close("2026-10")


def test_a_reused_id_inside_the_window_is_still_a_duplicate_after_the_deletion() -> None:
    """The September event sent again in October, after September's usage was deleted
    below the window's start: the re-read window (or the checkpoint) still knows it."""
    h = _through_september()
    september = next(e for e in h.published if getattr(e, "timestamp", None) == utc(2026, 9, 10))
    cp = _checkpoints(h)[-1]
    start = cp.window_offset if cp.window_offset is not None else cp.usage_offset
    h.log.delete_before(TOPICS.usage, P, start)
    h.publish([september])  # a producer retry, a month late (within the 35-day window)
    h.now = utc(2026, 11, 3)
    report = h.close("2026-10")
    assert report.fold.duplicates == 1
    assert Decimal(json.loads(_checkpoints(h)[-1].state)["balance"]) == Decimal("4.00")
