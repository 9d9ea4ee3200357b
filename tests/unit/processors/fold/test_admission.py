"""The cases where the paths used to disagree on which events count, each through
the worker's batch fold and the close: the same admission now decides for both.

Writer plan: 19.00 a month, 100,000 tokens included, 0.02 per 1,000 beyond."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing import ledger
from billing.admission import AdmissionPolicy, fingerprint, same_payload
from billing.events import SubscriptionStarted, UsageRecorded
from processors.fold.batch import BatchFolder, SourceMessage, Topics
from processors.reconcile.log import reconcile_log
from streambill.wire.convert import decode_value, encode_value
from streambill.wire.log import LogRecord, partition_for
from streambill.wire.partitioner import owner
from tests.close_support import TOPICS as CLOSE_TOPICS
from tests.close_support import Harness, load_example_catalog, utc
from tests.worker_tables import Tables

DAY = 86_400_000
PARTS = 3
NOW = utc(2025, 3, 1)
TOPICS = Topics(CLOSE_TOPICS.usage, CLOSE_TOPICS.account, "t.state", "t.al", "t.inv", "t.rej")
POLICY = AdmissionPolicy(35 * DAY, 35 * DAY, 300_000)
CATALOG = load_example_catalog()


def folder() -> BatchFolder:
    h = Harness(CATALOG)
    return BatchFolder(CATALOG, h.codec, POLICY, TOPICS, lambda: NOW, partitions=PARTS)


def message(
    event: object, offset: int, *, partition: int | None = None, key: object = ""
) -> SourceMessage:
    cid = event.customer_id  # type: ignore[attr-defined]
    topic = TOPICS.usage if isinstance(event, UsageRecorded) else TOPICS.account
    k = cid.encode() if key == "" else key
    p = owner(cid.encode(), PARTS) if partition is None else partition
    value = encode_value(Harness(CATALOG).codec, event)  # type: ignore[arg-type]
    return SourceMessage(topic, p, offset, 0, k, value)  # type: ignore[arg-type]


def sub(cid: str) -> SubscriptionStarted:
    return SubscriptionStarted(f"sub-{cid}", cid, utc(2025, 1, 2), "writer")


def tokens(eid: str, cid: str, qty: str, at: datetime, **props: str) -> UsageRecorded:
    return UsageRecorded(eid, cid, "tokens", Decimal(qty), at, props)


def period_totals(h: Harness, month: str) -> dict[str, Decimal]:
    report = h.close(month)
    return {p.invoice.customer_id: p.invoice.total for p, _ in report.invoices}


def test_two_customers_may_use_the_same_event_id() -> None:
    """Both customers' 500,000 tokens count: 19.00 + 400 x 0.02 = 27.00 each (the
    close used to deduplicate across the partition group and bill the second 19.00)."""
    events = [sub("cus_a"), sub("cus_b")]
    events += [tokens("evt-1", c, "500000", utc(2025, 1, 10)) for c in ("cus_a", "cus_b")]
    tables = Tables()
    result = folder().fold([message(e, i) for i, e in enumerate(events)], tables)
    assert result.counts["applied"] == 4 and not result.rejected
    h = Harness(CATALOG)
    h.publish(events)
    assert period_totals(h, "2025-02") == {"cus_a": Decimal("27.00"), "cus_b": Decimal("27.00")}


def test_a_retry_with_reordered_properties_and_equal_decimals_is_a_duplicate() -> None:
    first = tokens("e1", "cus_a", "12.5", utc(2025, 1, 10), model="m", region="eu")
    retry = dataclasses.replace(
        first, quantity=Decimal("12.50"), properties={"region": "eu", "model": "m"}
    )
    h = Harness(CATALOG)
    assert encode_value(h.codec, first) != encode_value(h.codec, retry)  # other bytes
    assert fingerprint(first) == fingerprint(retry) and same_payload(first, retry)
    tables = Tables()
    tables.commit(folder().fold([message(sub("cus_a"), 0), message(first, 0)], tables))
    again = folder().fold([message(retry, 1)], tables)
    assert again.counts["deduplicated"] == 1 and not again.rejected


def test_wrong_partition_and_missing_key_are_dead_letters_never_folded() -> None:
    home = owner(b"cus_a", PARTS)
    elsewhere = (home + 1) % PARTS
    tables = Tables()
    tables.commit(folder().fold([message(sub("cus_a"), 0)], tables))
    moved = message(tokens("e1", "cus_a", "5", utc(2025, 1, 10)), 0, partition=elsewhere)
    keyless = message(tokens("e2", "cus_a", "5", utc(2025, 1, 10)), 1, key=None)
    result = folder().fold([moved, keyless], tables)
    assert dict(result.rejected) == {"wrong_partition": 1, "missing_key": 1}
    assert result.customers == {}
    h = Harness(CATALOG)
    h.publish([sub("cus_a")])
    for m in (moved, keyless):
        part = h.log._parts(m.topic)[m.partition]
        at = int(utc(2025, 1, 10).timestamp() * 1000)  # the Kafka timestamp: event time
        part.append(LogRecord(m.topic, m.partition, len(part), m.key, m.value, at))
    report = h.close("2025-02")
    assert report.fold.undecodable == {"wrong_partition": 1, "missing_key": 1}
    assert {p.invoice.customer_id: p.invoice.total for p, _ in report.invoices} == {
        "cus_a": Decimal("19.00")
    }


def test_a_tombstone_is_a_dead_letter_and_reconcile_survives_it() -> None:
    h = Harness(CATALOG)
    h.publish([sub("cus_a")])
    p = partition_for(b"cus_a", PARTS)
    h.log.produce(TOPICS.usage, b"cus_a", None, 0)  # type: ignore[arg-type]
    tombstone = SourceMessage(TOPICS.usage, p, 0, 0, b"cus_a", None)  # type: ignore[arg-type]
    result = folder().fold([tombstone], Tables())
    assert dict(result.rejected) == {"undecodable": 1}
    report = reconcile_log(h.log, h.codec, CATALOG, TOPICS, POLICY, lambda: NOW)
    assert any("expected a dead letter (undecodable)" in d for d in report.differences)


def test_an_exception_while_folding_one_event_dead_letters_only_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = ledger.apply

    def fragile(state, event, catalog, **kw):  # type: ignore[no-untyped-def]
        if event.event_id == "boom":
            raise ArithmeticError("a bug")
        return real(state, event, catalog, **kw)

    monkeypatch.setattr(ledger, "apply", fragile)
    batch = [
        message(sub("cus_a"), 0),
        message(tokens("boom", "cus_a", "5", utc(2025, 1, 10)), 0),
        message(tokens("fine", "cus_a", "7", utc(2025, 1, 11)), 1),
    ]
    result = folder().fold(batch, Tables())
    assert dict(result.rejected) == {"internal_error": 1}
    assert result.counts["applied"] == 2
    letters = [decode_value(Harness(CATALOG).codec, o.value) for o in result.outputs]
    [letter] = [x for x in letters if type(x).__name__ == "EventRejected"]
    assert letter.event_id == "boom" and "ArithmeticError" in letter.detail  # type: ignore[union-attr]


def test_a_snapshot_that_cannot_be_built_finds_and_dead_letters_its_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The poison is only noticed when the batch's snapshot is built (as the huge
    quantity broke Currency.round): the batch is folded again checking each event."""
    real = ledger.snapshot

    def fragile(state, catalog, **kw):  # type: ignore[no-untyped-def]
        rec = state.last
        if rec is not None and rec.usage.get("tokens", Decimal(0)) >= 1000:
            raise ArithmeticError("cannot round")
        return real(state, catalog, **kw)

    monkeypatch.setattr(ledger, "snapshot", fragile)
    batch = [
        message(sub("cus_a"), 0),
        message(tokens("ok1", "cus_a", "5", utc(2025, 1, 10)), 0),
        message(tokens("poison", "cus_a", "5000", utc(2025, 1, 11)), 1),
        message(tokens("ok2", "cus_a", "7", utc(2025, 1, 12)), 2),
    ]
    result = folder().fold(batch, Tables())
    assert dict(result.rejected) == {"internal_error": 1}
    assert result.counts["applied"] == 3
    [(_, record)] = result.customers.values()
    assert record.state.last is not None and record.state.last.usage["tokens"] == 12
    assert sum(1 for o in result.outputs if o.topic == TOPICS.state) == 1


def test_late_usage_within_the_window_is_billed_after_two_closes() -> None:
    """35 days behind the watermark is still accepted by the worker: January usage
    arriving after the February and March closes is adjusted by April's close:
    50,000 tokens over the included 100,000 at 0.02 per 1,000 = 1.00."""
    h = Harness(CATALOG)
    h.publish([sub("cus_a"), tokens("e0", "cus_a", "100000", utc(2025, 2, 20))])
    h.close("2025-02")
    h.close("2025-03")
    late = tokens("late", "cus_a", "150000", utc(2025, 1, 20))  # 31 days behind Feb 20
    tables = Tables()
    tables.commit(folder().fold([message(sub("cus_a"), 0), message(h.published[1], 0)], tables))
    assert folder().fold([message(late, 1)], tables).counts["applied"] == 1
    h.publish([late])
    report = h.close("2025-04")
    adjustments = [p.invoice for p, _ in report.invoices if p.invoice.kind == "adjustment"]
    assert [(a.period_start, a.total) for a in adjustments] == [(utc(2025, 1, 2), Decimal("1.00"))]


def test_an_event_beyond_the_window_is_refused_by_worker_and_close_alike() -> None:
    h = Harness(CATALOG)
    h.publish([sub("cus_a"), tokens("e0", "cus_a", "100000", utc(2025, 3, 1))])
    late = tokens("late", "cus_a", "50000", utc(2025, 1, 20))  # 40 days behind
    tables = Tables()
    tables.commit(folder().fold([message(sub("cus_a"), 0), message(h.published[1], 0)], tables))
    assert dict(folder().fold([message(late, 1)], tables).rejected) == {"too_late": 1}
    h.close("2025-02")
    h.publish([late])
    report = h.close("2025-03")
    assert [p for p, _ in report.invoices if p.invoice.kind == "adjustment"] == []
    assert report.fold.rejected == {"too_late": 1}


def test_time_zone_of_the_event_does_not_change_its_fingerprint() -> None:
    a = tokens("e1", "cus_a", "1", datetime(2025, 1, 10, 12, tzinfo=UTC))
    b = dataclasses.replace(a, timestamp=a.timestamp.astimezone(timezone_plus_two()))
    assert fingerprint(a) == fingerprint(b) and same_payload(a, b)


def timezone_plus_two():  # type: ignore[no-untyped-def]
    from datetime import timezone

    return timezone(timedelta(hours=2))
