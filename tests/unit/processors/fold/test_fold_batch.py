"""BatchFolder without a broker: the skip rules that make crashes harmless."""

from __future__ import annotations

import dataclasses
import gc
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.admission import AdmissionPolicy
from billing.events import SubscriptionStarted, UsageRecorded
from processors.fold.batch import BatchFolder, SourceMessage, Topics
from processors.fold.records import CustomerRecord, RecordCache, SeenEntry
from processors.worker.catch_up import OffsetOrder
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.wire import convert
from streambill.wire.codec import Codec
from tests.worker_tables import Tables as View

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
TOPICS = Topics("u", "a", "s", "al", "inv", "rej")
DAY = 86_400_000


codec = Codec()
folder = BatchFolder(
    load_catalog(Settings().catalog_path),
    codec,
    AdmissionPolicy(35 * DAY, 35 * DAY, 300_000),
    TOPICS,
    lambda: NOW,
)


def msg(topic: str, offset: int, event: object) -> SourceMessage:
    name, record = convert.to_avro(event)  # type: ignore[arg-type]
    return SourceMessage(topic, 0, offset, None, b"c1", codec.encode(name, record))


def opened(view: View) -> None:
    sub = SubscriptionStarted("s1", "c1", NOW - timedelta(days=1), "starter")
    view.commit(folder.fold([msg("a", 0, sub)], view))


def usage(eid: str, qty: int, at: datetime = NOW) -> UsageRecorded:
    return UsageRecorded(eid, "c1", "tokens", Decimal(qty), at)


def test_redelivered_offsets_are_skipped_and_resending_nothing() -> None:
    view = View()
    opened(view)
    batch = [msg("u", 0, usage("e1", 5)), msg("u", 1, usage("e2", 7))]
    view.commit(folder.fold(batch, view))
    again = folder.fold(batch, view)
    assert again.counts["redelivered"] == 2
    assert again.customers == {} and again.outputs == []


def test_seen_entry_of_the_same_message_is_not_a_duplicate() -> None:
    """Crash between the seen write and the state write: the entry names this very
    message, so its redelivery is applied (once)."""
    view = View()
    opened(view)
    first = folder.fold([msg("u", 0, usage("e1", 5))], view)
    for eid, (_, entry) in first.seen.items():
        view.seen_ids[eid] = entry  # seen durable, customer record lost
    redelivery = folder.fold([msg("u", 0, usage("e1", 5))], view)
    assert redelivery.counts["applied"] == 1
    view.commit(redelivery)
    copy = folder.fold([msg("u", 5, usage("e1", 5))], view)
    assert copy.counts["deduplicated"] == 1 and copy.customers == {}


def test_same_id_other_payload_is_a_conflict_dead_letter() -> None:
    view = View()
    opened(view)
    view.commit(folder.fold([msg("u", 0, usage("e1", 5))], view))
    result = folder.fold([msg("u", 1, usage("e1", 6))], view)
    assert dict(result.rejected) == {"duplicate_conflict": 1}
    name, record = codec.decode(result.outputs[0].value)
    letter = convert.from_avro(name, record)
    assert letter.original == msg("u", 1, usage("e1", 6)).value  # type: ignore[union-attr]
    assert (letter.source_topic, letter.source_offset) == ("u", 1)  # type: ignore[union-attr]


def test_time_checks_future_by_clock_late_by_customer_watermark() -> None:
    view = View()
    opened(view)
    future = usage("f", 1, NOW + timedelta(minutes=6))
    late = usage("l", 1, NOW - timedelta(days=36))
    result = folder.fold(
        [msg("u", 0, future), msg("u", 1, usage("ok", 1)), msg("u", 2, late)], view
    )
    assert dict(result.rejected) == {"timestamp_in_future": 1, "too_late": 1}
    assert result.counts["applied"] == 1


def test_garbage_and_wrong_topic_are_dead_letters_not_crashes() -> None:
    view = View()
    opened(view)
    ok = msg("u", 0, usage("e1", 5))
    garbage = dataclasses.replace(ok, offset=1, value=b"\x00\x01garbage")
    account_on_usage = msg("u", 2, SubscriptionStarted("s9", "c1", NOW, "starter"))
    result = folder.fold([garbage, account_on_usage, ok], view)
    assert dict(result.rejected) == {"undecodable": 1, "unknown_schema": 1}
    assert result.counts["applied"] == 1


class CachingView(View):
    """Hands out the records it keeps (as the worker's cache does), no copies."""

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None:
        return self.customers.get(customer_id)


def test_kept_records_and_restored_records_fold_alike_and_stay_unchanged() -> None:
    """The worker keeps records between batches; a restarted one reads them back
    from JSON without the core's id memory. Both must decide every event alike,
    and a kept record must not change while a batch is folded."""
    kept, restored = CachingView(), View()
    for view in (kept, restored):
        opened(view)
    batches = [
        [msg("u", 0, usage("e1", 5)), msg("u", 1, usage("e2", 7))],
        [msg("u", 2, usage("e1", 5)), msg("u", 3, usage("e3", 1))],  # e1 again
        [msg("u", 3, usage("e3", 1)), msg("u", 4, usage("e2", 9))],  # redelivery, conflict
    ]
    for batch in batches:
        before = kept.customers["c1"].to_dict()
        a, b = folder.fold(batch, kept), folder.fold(batch, restored)
        assert kept.customers["c1"].to_dict() == before  # folding did not touch it
        assert (a.counts, a.rejected, a.outputs) == (b.counts, b.rejected, b.outputs)
        kept.commit(a)
        restored.commit(b)
    record = kept.customers["c1"]
    assert record.to_dict() == restored.customers["c1"].to_dict()
    assert record.to_dict()["state"]["seen"] == {}  # no id memory stored
    assert not record.state.seen.entries  # nor kept between batches
    assert record.state.seq == 4  # subscription + e1, e2, e3


def test_record_cache_drops_revoked_and_newly_assigned_partitions() -> None:
    cache = RecordCache()
    cache.drop({0, 1}, keep_unchanged=True)  # first assignment
    a, b = CustomerRecord.new("a"), CustomerRecord.new("b")
    cache.put("a", 0, a)
    cache.put("b", 1, b)
    epoch = cache.epoch
    cache.drop({0, 1, 2}, keep_unchanged=True)  # 0 and 1 kept: their records stay
    assert cache.get("a", 0) is a and cache.get("b", 1) is b
    cache.drop({1})  # revoked
    assert cache.get("b", 1) is None and cache.get("a", 0) is a
    cache.put("b", 1, b)
    cache.drop({1}, keep_unchanged=True)  # assigned again: may have changed meanwhile
    assert cache.get("b", 1) is None and len(cache) == 1
    assert cache.epoch > epoch  # a fold that overlapped the drops is done again


def _check(order: OffsetOrder, topic: str, partition: int, offset: int) -> None:
    assert order.gap(topic, partition, offset) is None, (topic, partition, offset)


def test_offset_order_allows_going_back_and_names_a_skipped_range() -> None:
    order = OffsetOrder()
    order.expect({("u", 0): 10})
    _check(order, "u", 0, 10)
    _check(order, "u", 0, 11)
    _check(order, "u", 0, 5)  # Faust seeked back to the committed offset: redelivery
    _check(order, "u", 0, 6)
    _check(order, "a", 1, 42)  # no committed offset known: starts anywhere
    assert order.gap("u", 0, 9) == 7  # 7 and 8 skipped: the caller reads them first
    _check(order, "u", 0, 10)  # and the partition goes on from there


def test_offset_order_after_a_rebalance_resumes_from_committed_or_own_progress() -> None:
    order = OffsetOrder()
    order.expect({("u", 0): 100, ("u", 1): 50})
    for offset in range(100, 120):
        _check(order, "u", 0, offset)  # folded (durably) through 119, committed 100
    _check(order, "u", 1, 50)
    order.new_assignment()
    order.expect({("u", 0): 100, ("u", 1): 70})
    _check(order, "u", 0, 120)  # kept partition continues from its own position
    _check(order, "u", 1, 70)  # another worker folded 51..69 and committed 70
    order.new_assignment()
    order.expect({("u", 0): 100})
    _check(order, "u", 0, 100)  # Faust seeked back to committed: redelivery
    order.new_assignment()
    order.expect({("u", 0): 100})
    # Faust dropped 121..124 (never folded) and hands over 125
    assert order.gap("u", 0, 125) == 121


@given(
    st.text(),
    st.text(),
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**63 - 1),
    st.text(),
    st.integers(-(2**62), 2**62),
)
def test_seen_entry_json_is_exactly_the_encoders(
    fp: str, topic: str, partition: int, offset: int, customer: str, event_ms: int
) -> None:
    fp = fp.encode().hex()  # fingerprints are hex digests
    entry = SeenEntry(fp, topic, partition, offset, customer, event_ms)
    expected = json.dumps(entry.to_row(), separators=(",", ":"), ensure_ascii=False)
    assert entry.to_json() == expected.encode()
    assert SeenEntry.from_row(json.loads(entry.to_json())) == entry
    assert SeenEntry.from_row(entry.to_row()) == entry


def test_stored_seen_rows_drop_out_of_the_collectors_sight() -> None:
    """The `seen` store holds a row per event of the window: rows the collector
    keeps tracking would make every full collection scan all of them."""
    row = SeenEntry("ab" * 16, "usage-events", 2, 41, "cus_1", 1_700_000_000_000).to_row()
    gc.collect()
    assert not gc.is_tracked(row)


def test_a_quantity_beyond_the_bounds_is_an_out_of_range_dead_letter_and_the_rest_applies() -> None:
    view = View()
    opened(view)
    huge = {  # encoded by hand: the SDK and the domain conversion are bypassed
        "event_id": "e-huge",
        "customer_id": "c1",
        "feature_id": "tokens",
        "quantity": "123456789012345678901234567890123",
        "timestamp": NOW,
        "properties": {},
    }
    bad = SourceMessage(
        "u", 0, 1, None, b"c1", codec.encode("streambill.usage.v1.UsageRecorded", huge)
    )
    batch = [msg("u", 0, usage("e1", 5)), bad, msg("u", 2, usage("e2", 7))]
    result = folder.fold(batch, view)
    assert dict(result.rejected) == {"out_of_range": 1}
    assert result.counts["applied"] == 2
    letters = [o for o in result.outputs if o.topic == TOPICS.rejected]
    _, record = codec.decode(letters[0].value)
    assert record["reason"] == "out_of_range" and "quantity" in record["detail"]
    assert record["original"] == bad.value
    states = [o for o in result.outputs if o.topic == TOPICS.state]
    _, snapshot = codec.decode(states[-1].value)
    assert snapshot["usage"] == {"tokens": "12"}
