"""Issue 22, no 5xx from any input: a permanent error is a 4xx naming the field. Event
times, ids and properties have the bounds of `billing.bounds` at the API as at the
SDK (one set of constants); a time past admission's future rule is refused at the
door instead of as a broker error; and a 503, only for a broker that is really
unavailable, lists which events of the batch were queued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from billing import bounds
from projections.http.app import create_app
from projections.http.models import UsageIn
from projections.read.store import InMemoryStore
from streambill.sdk import validate
from streambill.sdk.client import DeliveryError
from tests.projections.apphelpers import ADMIN_KEY, NOW, RecordingWriter, fill, settings

ADMIN = {"x-admin-key": ADMIN_KEY}
NOW_ISO = datetime.fromtimestamp(NOW, UTC).isoformat()


def item(event_id: str = "e-1", **over: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": "cus_a",
        "feature_id": "api_calls",
        "quantity": "1",
        "timestamp": NOW_ISO,
        **over,
    }


def _errors(r: Any) -> str:
    return " ".join(" ".join(e["errors"]) for e in r.json()["errors"])


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp"),
        ({"timestamp": "9999-12-31T23:59:59Z"}, "timestamp"),
        ({"timestamp": "9999-12-31T23:59:59.999999-14:00"}, "timestamp"),  # year 10000 in UTC
        (
            {"timestamp": (datetime.fromtimestamp(NOW, UTC) + timedelta(hours=2)).isoformat()},
            "timestamp",
        ),
        ({"properties": {"k" * 2_000_000: "v"}}, "properties"),
        ({"properties": {"": "v"}}, "properties"),
        ({"properties": {"model": "v" * 501}}, "properties"),
        ({"properties": {f"k{n}": "v" for n in range(51)}}, "properties"),
        ({"customer_id": "c" * 201}, "customer_id"),
        ({"event_id": "e" * 201}, "event_id"),
    ],
)
def test_ingest_refuses_what_the_wire_or_worker_would_as_422_naming_the_field(
    client: TestClient, writer: RecordingWriter, over: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/usage", json=item(**over), headers=ADMIN)
    assert r.status_code == 422
    assert field in _errors(r)
    assert writer.calls == []


def test_the_future_rule_is_admissions_own(client: TestClient, writer: RecordingWriter) -> None:
    at = datetime.fromtimestamp(NOW + 1, UTC)
    inside = (at + timedelta(minutes=4)).isoformat()
    outside = (at + timedelta(minutes=6)).isoformat()
    r = client.post(
        "/v1/usage",
        json=[item("in", timestamp=inside), item("out", timestamp=outside)],
        headers=ADMIN,
    )
    assert r.status_code == 202
    assert r.json()["accepted"] == ["in"]
    assert "timestamp: timestamp_in_future" in _errors(r)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("subscription", {"event_id": "s", "plan_id": "starter"}),
        ("seats", {"event_id": "s", "seats": 2}),
        ("credit-purchases", {"event_id": "s", "pack_id": "p"}),
        ("deposits", {"event_id": "s", "amount": "5", "currency": "USD"}),
    ],
)
@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z"])
def test_account_commands_refuse_times_out_of_bounds(
    client: TestClient, writer: RecordingWriter, path: str, body: dict[str, Any], timestamp: str
) -> None:
    r = client.post(
        f"/v1/customers/cus_a/{path}", json={**body, "timestamp": timestamp}, headers=ADMIN
    )
    assert r.status_code == 422
    assert "timestamp" in r.text
    assert writer.calls == []


def test_the_api_and_the_sdk_share_one_set_of_bounds() -> None:
    schema = UsageIn.model_json_schema()["properties"]
    assert schema["customer_id"]["maxLength"] == bounds.MAX_ID_CHARS
    props = schema["properties"]
    assert props["maxProperties"] == bounds.MAX_PROPERTIES
    assert props["propertyNames"]["maxLength"] == bounds.MAX_PROPERTY_KEY_CHARS
    assert props["additionalProperties"]["maxLength"] == bounds.MAX_PROPERTY_VALUE_CHARS
    with pytest.raises(validate.ValidationError, match="customer_id: longer than 200"):
        validate.identifier("c" * (bounds.MAX_ID_CHARS + 1), "customer_id")
    with pytest.raises(validate.ValidationError, match="a key must have 1 to 100"):
        validate.properties({"k" * (bounds.MAX_PROPERTY_KEY_CHARS + 1): "v"})
    with pytest.raises(validate.ValidationError, match="at most 50 properties"):
        validate.properties({f"k{n}": "v" for n in range(bounds.MAX_PROPERTIES + 1)})
    with pytest.raises(validate.ValidationError, match="timestamp: before 0001-01-01"):
        validate.event_millis(datetime.fromisoformat("0001-01-01T00:00:00+14:00"))
    assert validate.event_millis(datetime(1, 1, 1, tzinfo=UTC)) == bounds.MIN_EVENT_MS


class FailingWriter(RecordingWriter):
    """Queues `room` events, then the local queue is full; or fails delivery."""

    def __init__(self, room: int = 10**9, undelivered: list[str] | None = None) -> None:
        super().__init__()
        self.room = room
        self.undelivered = undelivered

    def report(self, *args: Any, **kwargs: Any) -> str:
        if len(self.calls) >= self.room:
            raise BufferError("Local: Queue full")
        return super().report(*args, **kwargs)

    def flush(self, timeout: float | None = None) -> None:
        if self.undelivered is not None:
            raise DeliveryError(
                [(e, "Broker: Not enough in-sync replicas") for e in self.undelivered]
            )


def _app_with(writer: RecordingWriter) -> TestClient:
    store = InMemoryStore()
    fill(store)
    return TestClient(create_app(settings(), store, writer, clock=lambda: NOW + 1))


def test_a_503_lists_the_events_that_were_queued() -> None:
    with _app_with(FailingWriter(room=2)) as c:
        r = c.post("/v1/usage", json=[item(f"e-{n}") for n in range(4)], headers=ADMIN)
    assert r.status_code == 503
    assert r.json()["queued"] == ["e-0", "e-1"]
    assert r.json()["error"] == "unavailable"


def test_a_503_after_a_failed_delivery_names_the_events_not_delivered() -> None:
    with _app_with(FailingWriter(undelivered=["e-1"])) as c:
        r = c.post(
            "/v1/usage", json=[item("e-0"), item("e-1"), item("bad", quantity="x")], headers=ADMIN
        )
    assert r.status_code == 503
    body = r.json()
    assert (body["queued"], body["not_delivered"]) == (["e-0", "e-1"], ["e-1"])
    assert [e["index"] for e in body["errors"]] == [2]


def test_quantities_stay_decimal(client: TestClient, writer: RecordingWriter) -> None:
    assert client.post("/v1/usage", json=item(quantity="1.5"), headers=ADMIN).status_code == 202
    assert writer.calls[0][1][2] == Decimal("1.5")
