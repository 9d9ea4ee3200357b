"""`streambill dlq replay` against the real broker: each replayed original lands on the
partition that owns its customer under murmur2 (not where the dead letter says it was,
nor where librdkafka's default CRC32 partitioner would put it), keyed by the customer,
stamped with the event time; undecodable originals are skipped, not sent. No worker
runs: the dead letters are published directly, so only the replay's own output is
read back."""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from billing.events import EventRejected, RejectReason, SubscriptionStarted, UsageRecorded
from processors.worker.dlq import replay
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.fields import to_millis
from streambill.wire.partitioner import owner
from tests.integration.fold_support import encode, isolated, publish
from tests.kafka_helpers import consume_all

pytestmark = pytest.mark.integration


def test_replay_places_by_murmur2_with_the_event_time(base: Settings, codec: Codec) -> None:
    settings = isolated(base)
    usage, account = settings.topic("usage-events"), settings.topic("account-events")
    now = datetime.now(tz=UTC)
    t = now.replace(microsecond=123_000) - timedelta(days=3)  # millisecond-precise
    # cus_000003: murmur2 says partition 1 of 3, CRC32 says otherwise; the letter
    # claims partition 2 (a producer with the wrong partitioner).
    assert owner(b"cus_000003", 3) == 1 != zlib.crc32(b"cus_000003") % 3
    usage_event = UsageRecorded("r-1", "cus_000003", "no_such_feature", Decimal("2.5"), t)
    sub = SubscriptionStarted("r-2", "cus_000005", t - timedelta(days=1), "starter")
    letters = [
        EventRejected(
            RejectReason.WRONG_PARTITION, "on 2", "r-1", "cus_000003", usage, 2, 0,
            encode(codec, usage_event),
        ),
        EventRejected(  # its original record had no key
            RejectReason.MISSING_KEY, "no key", "r-2", "cus_000005", account, 0, 0,
            encode(codec, sub),
        ),
        EventRejected(
            RejectReason.UNDECODABLE, "garbage", None, None, usage, 0, 1,
            random.Random(1).randbytes(40),
        ),
    ]  # fmt: skip
    rejected = settings.topic("usage-rejected")
    publish(settings, [(rejected, b"x", encode(codec, letter)) for letter in letters])

    report = replay(settings, Codec(), None, lambda: now)

    assert (report.scanned, report.replayed, report.skipped) == (3, 2, {"still_invalid": 1})
    for logical, event, value in [
        ("usage-events", usage_event, letters[0].original),
        ("account-events", sub, letters[1].original),
    ]:
        [msg] = consume_all(settings, logical, 1, timeout=20)
        assert msg.value() == value
        assert msg.key() == event.customer_id.encode()
        assert msg.partition() == owner(event.customer_id.encode(), settings.partitions)
        assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, to_millis(event.timestamp))
    # The undecodable original was not sent anywhere: usage-events holds only r-1.
    assert len(consume_all(settings, "usage-events", 2, timeout=3)) == 1
