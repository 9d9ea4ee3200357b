"""Where `streambill dlq replay` republishes a dead letter's original bytes: the
partition that owns the customer under murmur2 (Java's default partitioner), with
the event time as the Kafka timestamp, and a skip (not a send) for bytes that do
not decode to an input event."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.admission import dedupe_key
from billing.events import (
    EventRejected,
    RejectReason,
    SubscriptionStarted,
    UsageRecorded,
)
from processors.fold.admission import DEFAULT_POLICY
from processors.worker.dlq import (
    Placement,
    ReplayFilter,
    _letter,
    _skip_reason,
    original_event,
    placement,
)
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.partitioner import owner
from tests.unit.samples import SAMPLES

T = datetime(2025, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)
T_MS = 1_741_944_413_589  # T in epoch milliseconds


def test_the_partition_is_the_murmur2_owner_of_the_customer_not_the_original_one() -> None:
    # Partitions from kafka-clients 4.1.1 (Utils.toPositive(Utils.murmur2(key)) % 3).
    java = {"cus_000001": 0, "cus_000003": 1, "cus_000005": 1}
    for customer, partition in java.items():
        event = UsageRecorded("e1", customer, "tokens", Decimal(1), T)
        assert placement(event, "p.usage-events", 3) == Placement(
            "p.usage-events", partition, customer.encode(), T_MS
        )
    # librdkafka's default partitioner (CRC32) would put cus_000003 elsewhere.
    assert zlib.crc32(b"cus_000003") % 3 != java["cus_000003"]


def test_an_account_event_is_placed_the_same_way_at_its_own_event_time() -> None:
    sub = SubscriptionStarted("s1", "cus_000005", T + timedelta(days=2), "starter")
    target = placement(sub, "p.account-events", 12)
    assert isinstance(target, Placement)
    assert target.partition == owner(b"cus_000005", 12) == 10  # Java: 10
    assert target.timestamp_ms == T_MS + 2 * 86_400_000


def test_a_source_topic_without_partitions_is_skipped() -> None:
    event = UsageRecorded("e1", "cus_000001", "tokens", Decimal(1), T)
    assert placement(event, "gone", None) == "source_topic_missing"
    assert placement(event, "gone", 0) == "source_topic_missing"


def test_original_event_decodes_input_events_only() -> None:
    codec = Codec()
    event = UsageRecorded("e1", "cus_000001", "tokens", Decimal("1.5"), T)
    assert original_event(codec, encode_value(codec, event)) == event
    assert original_event(codec, b"\x00not avro") is None
    assert original_event(codec, encode_value(codec, event)[:-3]) is None
    snapshot = SAMPLES["streambill.state.v1.CustomerStateChanged"]  # an output, not an input
    assert original_event(codec, encode_value(codec, snapshot)) is None


def test_undecodable_bytes_are_skipped_as_still_invalid_before_placement() -> None:
    gate = ReplayFilter({}, lambda: T, DEFAULT_POLICY)
    letter = EventRejected(RejectReason.WRONG_PARTITION, "x", None, "cus_1", "p.usage-events")
    assert gate.can_succeed(letter, None) == "still_invalid"
    event = UsageRecorded("e1", "cus_1", "tokens", Decimal(1), T)
    assert gate.can_succeed(letter, event) is None  # a wrong_partition letter is repaired
    never = EventRejected(RejectReason.TOO_LATE, "x", "e1", "cus_1", "p.usage-events")
    assert gate.can_succeed(never, event) == "never_replayable"


def test_the_future_rule_is_admissions_own() -> None:
    """A `timestamp_in_future` letter is replayed once `billing.admission.decide`'s
    rule 1 admits it on the replay's clock, not by a second copy of the rule."""
    tolerance = timedelta(milliseconds=DEFAULT_POLICY.future_tolerance_ms)
    letter = EventRejected(RejectReason.TIMESTAMP_IN_FUTURE, "x", "e1", "cus_1", "p.usage")
    gate = ReplayFilter({}, lambda: T, DEFAULT_POLICY)
    at_edge = UsageRecorded("e1", "cus_1", "tokens", Decimal(1), T + tolerance)
    beyond = UsageRecorded(
        "e1", "cus_1", "tokens", Decimal(1), T + tolerance + timedelta(milliseconds=1)
    )
    assert gate.can_succeed(letter, at_edge) is None
    assert gate.can_succeed(letter, beyond) == "still_in_future"


def test_letters_of_two_customers_sharing_an_event_id_are_both_replayed() -> None:
    """The run's at-most-once memory uses the dedupe scope (customer_id, event_id):
    `evt-1` of one customer does not hide `evt-1` of another."""
    done = {dedupe_key("cus_a", "evt-1")}
    mine = EventRejected(RejectReason.WRONG_PARTITION, "x", "evt-1", "cus_a", "p.usage")
    theirs = EventRejected(RejectReason.WRONG_PARTITION, "x", "evt-1", "cus_b", "p.usage")
    assert _skip_reason(mine, None, done) == "already_replayed_this_run"
    assert _skip_reason(theirs, None, done) is None


def test_records_that_are_not_dead_letters_are_skipped_not_fatal() -> None:
    codec = Codec()
    assert _letter(codec, None) is None
    assert _letter(codec, b"\x00\x00garbage") is None
    usage = UsageRecorded("e1", "cus_1", "tokens", Decimal(1), T)
    assert _letter(codec, encode_value(codec, usage)) is None
