"""Admin writes through the real SDK into the real broker, read back from the topics."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from billing.events import SubscriptionStarted, UsageRecorded, WalletDeposited
from projections.http.app import create_app
from projections.read.store import InMemoryStore
from streambill.config.settings import ACCOUNT_EVENTS, USAGE_EVENTS, Settings
from streambill.sdk.client import UsageClient
from streambill.wire.codec import Codec
from streambill.wire.convert import decode_value
from tests.kafka_helpers import consume_all
from tests.projections.apphelpers import ADMIN_KEY
from tests.projections.apphelpers import settings as app_settings

pytestmark = pytest.mark.integration


def read_all(settings: Settings, logical: str, customer_id: str, count: int) -> list[object]:
    """`customer_id`'s records on a session-wide topic (other tests write there too), read
    from the beginning until `count` of them arrived or 30 s passed."""
    mine = consume_all(settings, logical, count, keep=lambda m: m.key() == customer_id.encode())
    codec = Codec()
    return [decode_value(codec, m.value()) for m in mine]


def test_ingest_and_account_commands_reach_kafka(
    settings: Settings, topics: dict[str, str]
) -> None:
    session = settings.model_copy(
        update={"admin_key": app_settings().admin_key, "token_secret": app_settings().token_secret}
    )
    cid = f"cus_{uuid.uuid4().hex[:8]}"
    admin = {"x-admin-key": ADMIN_KEY}
    with UsageClient(session) as sdk, TestClient(create_app(session, InMemoryStore(), sdk)) as c:
        batch = [
            {
                "event_id": f"{cid}-u{i}",
                "customer_id": cid,
                "feature_id": "tokens",
                "quantity": f"{i}.5",
                "timestamp": "2026-11-02T10:00:00Z",
            }
            for i in range(3)
        ]
        r = c.post("/v1/usage", json=[*batch, batch[0], {"event_id": "bad"}], headers=admin)
        assert r.status_code == 202
        assert r.json()["accepted"] == [f"{cid}-u{i}" for i in range(3)]
        assert [e["index"] for e in r.json()["errors"]] == [4]
        ts = "2026-11-01T00:00:00Z"
        sub = {"event_id": f"{cid}-s", "plan_id": "starter", "seats": 2, "timestamp": ts}
        assert (
            c.post(f"/v1/customers/{cid}/subscription", json=sub, headers=admin).status_code == 202
        )
        dep = {"event_id": f"{cid}-d", "amount": "25.00", "currency": "EUR", "timestamp": ts}
        assert c.post(f"/v1/customers/{cid}/deposits", json=dep, headers=admin).status_code == 202
    usage = [e for e in read_all(session, USAGE_EVENTS, cid, 3) if isinstance(e, UsageRecorded)]
    mine = sorted((e for e in usage if e.customer_id == cid), key=lambda e: e.event_id)
    assert [(e.event_id, str(e.quantity)) for e in mine] == [
        (f"{cid}-u0", "0.5"),
        (f"{cid}-u1", "1.5"),
        (f"{cid}-u2", "2.5"),
    ]
    account = [
        e for e in read_all(session, ACCOUNT_EVENTS, cid, 2) if getattr(e, "customer_id", "") == cid
    ]
    assert any(isinstance(e, SubscriptionStarted) and e.seats == 2 for e in account)
    assert any(isinstance(e, WalletDeposited) and str(e.amount) == "25.00" for e in account)
