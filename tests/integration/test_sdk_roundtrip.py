"""The SDK against the real broker: what a separate consumer reads back equals what was
sent, in order per customer, keyed by customer, stamped with the event time."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from billing.events import (
    AccountEvent,
    CreditsPurchased,
    SeatsChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from streambill.cli.main import build_parser
from streambill.config.settings import ACCOUNT_EVENTS, USAGE_EVENTS, Settings
from streambill.sdk.client import DeliveryError, UsageClient
from streambill.wire.codec import Codec
from streambill.wire.convert import from_avro
from streambill.wire.fields import to_millis
from tests.kafka_helpers import consume_all

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def _usage_batch() -> list[UsageRecorded]:
    customers = ["cus_abc123", "cus_img42", "cus_dev7", "cus_zz"]
    return [
        UsageRecorded(
            event_id=f"evt-{i:04d}",
            customer_id=customers[i % 4],
            feature_id="tokens" if i % 3 else "image_generations",
            quantity=Decimal(i) / 4,
            timestamp=T0 + timedelta(milliseconds=i * 37),
            properties={"model": "gpt-4o", "seq": str(i)} if i % 2 else {},
        )
        for i in range(400)
    ]


def test_sdk_publishes_what_a_separate_consumer_reads(env: Settings) -> None:
    settings = env  # topics of its own: it reads back the whole usage topic
    batch = _usage_batch()
    with UsageClient(settings) as client:
        single = client.report("cus_abc123", "tokens", "1500", timestamp=T0 + timedelta(seconds=60))
        ids = client.report_many(batch[:200]) + client.report_many(
            {
                "customer_id": e.customer_id,
                "feature_id": e.feature_id,
                "quantity": e.quantity,
                "event_id": e.event_id,
                "timestamp": e.timestamp,
                "properties": e.properties,
            }
            for e in batch[200:]
        )
        sub = client.subscribe("cus_abc123", "starter", seats=2, timestamp=T0)
        dep = client.deposit("cus_dev7", "100.00", "USD", event_id="dep-1", timestamp=T0)
        seats = client.change_seats(
            "cus_abc123", 5, timestamp=T0 + timedelta(hours=2, microseconds=7_007)
        )
        pack = client.purchase_credits(
            "cus_img42", "credits-100", 3, event_id="pack-1", timestamp=T0 + timedelta(days=1)
        )
    assert ids == [e.event_id for e in batch]

    codec = Codec()
    usage = consume_all(settings, USAGE_EVENTS, expected=len(batch) + 1)
    assert len(usage) == len(batch) + 1
    received: dict[str, UsageRecorded] = {}
    order: dict[str, list[str]] = defaultdict(list)
    for msg in usage:
        event = from_avro(*codec.decode(msg.value()))
        assert isinstance(event, UsageRecorded)
        assert msg.key() == event.customer_id.encode("utf-8")
        assert msg.timestamp()[1] == to_millis(event.timestamp)
        received[event.event_id] = event
        order[event.customer_id].append(event.event_id)
    assert {e.event_id: e for e in batch} == {k: v for k, v in received.items() if k != single}
    assert received[single].quantity == Decimal("1500")
    for customer in {e.customer_id for e in batch}:
        sent = [e.event_id for e in batch if e.customer_id == customer]
        got = [i for i in order[customer] if i != single]
        assert got == sent, f"order of {customer}"

    _assert_account_events_read_back(settings, [
        SubscriptionStarted(sub, "cus_abc123", T0, "starter", 2),
        WalletDeposited(dep, "cus_dev7", T0, Decimal("100.00"), "USD"),
        # event times travel in milliseconds: 7.007 ms are floored to 7
        SeatsChanged(seats, "cus_abc123", T0 + timedelta(hours=2, milliseconds=7), 5),
        CreditsPurchased(pack, "cus_img42", T0 + timedelta(days=1), "credits-100", 3),
    ])  # fmt: skip


def _assert_account_events_read_back(settings: Settings, sent: list[AccountEvent]) -> None:
    """A separate consumer reads account-events back equal to what was sent, in order
    per customer, each keyed by its customer id and stamped with its event time."""
    codec = Codec()
    read = consume_all(settings, ACCOUNT_EVENTS, len(sent))
    assert len(read) == len(sent)
    received: dict[str, list[AccountEvent]] = defaultdict(list)
    for msg in read:
        event = from_avro(*codec.decode(msg.value()))
        assert isinstance(event, AccountEvent)
        assert msg.key() == event.customer_id.encode("utf-8")
        assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, to_millis(event.timestamp))
        received[event.customer_id].append(event)
    expected: dict[str, list[AccountEvent]] = defaultdict(list)
    for event in sent:
        expected[event.customer_id].append(event)
    assert received == expected


def test_tail_prints_each_value_as_json(
    settings: Settings, topics: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with UsageClient(settings) as client:
        sent = client.report("cus_tail", "tokens", Decimal("0.25"), properties={"k": "v"})
    capsys.readouterr()
    args = build_parser().parse_args(["tail", "usage-events", "--from-beginning", "--timeout", "3"])
    assert args.func(args, settings) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [line for line in lines if line["value"]["event_id"] == sent]
    assert len(mine) == 1
    line = mine[0]
    assert line["topic"] == "usage-events" and line["key"] == "cus_tail"
    assert line["schema"] == "streambill.usage.v1.UsageRecorded"
    assert line["value"]["quantity"] == "0.25"
    assert line["value"]["properties"] == {"k": "v"}
    assert line["timestamp"] == line["value"]["timestamp"]
    assert line["timestamp"].endswith("Z")


def test_undelivered_events_are_listed_by_flush(settings: Settings) -> None:
    """A topic that does not exist (auto-creation is off): every event comes back."""
    missing = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "absent."})
    client = UsageClient(missing, producer_config={"message.timeout.ms": 3000})
    ids = [client.report("cus_1", "tokens", 1), client.report("cus_2", "tokens", 2)]
    with pytest.raises(DeliveryError) as err:
        client.flush()
    assert sorted(err.value.event_ids) == sorted(ids)
