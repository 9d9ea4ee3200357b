"""The demo's read-back step without a broker: which events it samples, and that a
missing or altered event fails the demo instead of being reported as read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.events import UsageRecorded
from streambill.config.settings import Settings
from streambill.local.demo_load import DemoCustomer
from streambill.local.demo_procs import DemoError
from streambill.local.demo_readback import pick_sample, read_back
from streambill.wire import tail
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.fields import to_millis

T0 = datetime(2026, 1, 31, tzinfo=UTC)
CUSTOMERS = [DemoCustomer(f"c{i}", plan, 1.0) for i, plan in enumerate("aabcdefgh")]
CODEC = Codec()


def _event(n: int, customer: str) -> UsageRecorded:
    at = T0 + timedelta(milliseconds=n)
    return UsageRecorded(f"u{n}", customer, "tokens", Decimal(n) / 10, at, {"model": "small"})


PUBLISHED = [_event(n, f"c{n % 3}") for n in range(6)] + [
    _event(n, f"c{n - 3}") for n in range(6, 12)
]


class FakeMessage:
    """The part of confluent_kafka.Message the read-back uses."""

    def __init__(self, value: bytes, key: bytes, millis: int, offset: int) -> None:
        self._value, self._key, self._millis, self._offset = value, key, millis, offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key

    def timestamp(self) -> tuple[int, int]:
        return (1, self._millis)

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def _as_sent(events: list[UsageRecorded]) -> list[FakeMessage]:
    return [
        FakeMessage(encode_value(CODEC, e), e.customer_id.encode(), to_millis(e.timestamp), i)
        for i, e in enumerate(events)
    ]


def _read_back(monkeypatch: pytest.MonkeyPatch, on_topic: list[FakeMessage]) -> list[str]:
    def fake_read(*args: Any, **kwargs: Any) -> Iterator[FakeMessage]:
        yield from on_topic

    monkeypatch.setattr(tail, "read", fake_read)
    return read_back(Settings(), CODEC, PUBLISHED, CUSTOMERS, limit=len(on_topic))


def test_the_sample_is_the_first_event_of_each_plan_in_publishing_order() -> None:
    plan_of = {c.customer_id: c.plan_id for c in CUSTOMERS}
    sample = pick_sample(PUBLISHED, plan_of)
    assert [e.event_id for e in sample] == ["u0", "u2", "u6", "u7", "u8", "u9"]
    assert len({plan_of[e.customer_id] for e in sample}) == 6
    few = pick_sample(PUBLISHED[:4], plan_of)  # two plans only: the earliest others fill up
    assert [e.event_id for e in few] == ["u0", "u1", "u2", "u3"]


def test_events_read_back_are_printed_as_json_then_the_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = _read_back(monkeypatch, _as_sent(PUBLISHED))
    assert lines[-1] == "read back 6 of 6 published events from Kafka, equal to what was sent"
    docs = [json.loads(line) for line in lines[:-1]]
    assert [d["value"]["event_id"] for d in docs] == ["u0", "u2", "u6", "u7", "u8", "u9"]
    assert docs[0]["value"]["quantity"] == "0" and docs[1]["value"]["quantity"] == "0.2"


def test_a_missing_event_fails_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    on_topic = _as_sent([e for e in PUBLISHED if e.event_id != "u7"])
    with pytest.raises(
        DemoError, match="read back 5 of 6 published events from Kafka; missing: u7"
    ):
        _read_back(monkeypatch, on_topic)


@pytest.mark.parametrize("change", ["value", "key", "timestamp"])
def test_an_event_not_as_sent_fails_the_demo(monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    on_topic = _as_sent(PUBLISHED)
    sent = PUBLISHED[8]
    if change == "value":
        altered = UsageRecorded(
            sent.event_id, sent.customer_id, "tokens", Decimal(9), sent.timestamp
        )
        on_topic[8]._value = encode_value(CODEC, altered)
    elif change == "key":
        on_topic[8]._key = PUBLISHED[0].customer_id.encode()  # another sampled customer
    else:
        on_topic[8]._millis += 1
    with pytest.raises(DemoError, match=f"differ from what was sent: {sent.event_id}: .*{change}"):
        _read_back(monkeypatch, on_topic)
