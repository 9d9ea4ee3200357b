"""Every route of the API, including the isolation cases (in-memory read models)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from projections.http import tokens
from projections.http.models import MAX_BATCH, EntitlementOut
from projections.http.sessions import LEGACY_COOKIE, SESSION_COOKIE
from tests.projections import samples
from tests.projections.apphelpers import (
    ADMIN_KEY,
    NOW,
    SECRET,
    TREND_B,
    RecordingWriter,
)

ADMIN = {"x-admin-key": ADMIN_KEY}
READS = [
    "usage",
    "balance",
    "upcoming-invoice",
    "alerts",
    "alerts/recent",
    "invoices",
    "entitlements/tokens",
]


def bearer(customer: str, *, ttl: int = 600, now: int = NOW) -> dict[str, str]:
    token = tokens.issue(SECRET.encode(), customer, now=now, ttl_seconds=ttl)
    return {"authorization": f"Bearer {token}"}


def test_usage_shows_period_usage_and_allowance(client: TestClient) -> None:
    body = client.get("/v1/customers/cus_a/usage", headers=bearer("cus_a")).json()
    tokens_row = next(f for f in body["features"] if f["feature_id"] == "tokens")
    assert tokens_row == {
        "feature_id": "tokens",
        "used": "600",
        "remaining": "400",
        "allowance": "1000",
    }
    assert body["freshness"]["offset"] == 4 and body["freshness"]["topic"] == "customer-state"


def test_balance_of_a_credits_customer(client: TestClient) -> None:
    body = client.get("/v1/customers/cus_b/balance", headers=bearer("cus_b")).json()
    assert body["credits_remaining"] == "640"
    assert body["last_topup"] == "1000" and body["used_since_topup"] == "360"
    assert body["allowed"] is True
    assert body["trend"] == [
        {"at": (samples.T0 + timedelta(hours=h)).isoformat(), "value": v} for v, h in TREND_B
    ]
    metered = client.get("/v1/customers/cus_a/balance", headers=bearer("cus_a")).json()
    assert metered["trend"] == [] and metered["credits_remaining"] is None


def test_upcoming_invoice_alerts_and_invoices(client: TestClient) -> None:
    up = client.get("/v1/customers/cus_a/upcoming-invoice", headers=bearer("cus_a")).json()
    assert up["invoice"]["total"] == "12.50"
    alerts = client.get("/v1/customers/cus_a/alerts", headers=bearer("cus_a")).json()
    assert [a["alert_id"] for a in alerts] == ["al-1"]  # active only, fields unchanged
    assert set(alerts[0]) == {
        "alert_id",
        "kind",
        "feature_id",
        "threshold_percent",
        "value",
        "reference",
        "timestamp",
    }
    invoices = client.get("/v1/customers/cus_a/invoices", headers=bearer("cus_a")).json()
    assert [i["invoice_id"] for i in invoices] == ["inv-1"]
    assert [line["amount"] for line in invoices[0]["lines"]] == ["10.00", "2.50"]


def test_recent_alerts_keep_raised_and_resolved_newest_first(client: TestClient) -> None:
    body = client.get("/v1/customers/cus_a/alerts/recent", headers=bearer("cus_a")).json()
    assert body["customer_id"] == "cus_a" and body["limit"] == 20
    assert [(e["event"], e["alert_id"], e["raised_alert_id"]) for e in body["recent"]] == [
        ("raised", "al-1", "al-1"),
        ("resolved", "res-al-0", "al-0"),
        ("raised", "al-0", "al-0"),
    ]
    assert body["recent"][2]["threshold_percent"] == 100
    empty = client.get("/v1/customers/cus_b/alerts/recent", headers=ADMIN).json()
    assert empty == {"customer_id": "cus_b", "limit": 20, "recent": []}


def test_entitlement_answers_with_freshness(client: TestClient) -> None:
    body = client.get("/v1/customers/cus_a/entitlements/tokens", headers=bearer("cus_a")).json()
    assert body["allowed"] is True and body["remaining"] == "400" and body["unit"] == "quantity"
    assert body["freshness"]["partition"] == 0 and body["freshness"]["offset"] == 4
    assert body["freshness"]["source_offsets"] == {"usage-events/0": 10}
    EntitlementOut.model_validate(body)  # the hot path skips the response-model pass
    credits = client.get("/v1/customers/cus_b/entitlements/tokens", headers=ADMIN).json()
    assert credits["remaining"] == "640" and credits["unit"] == "credits"


def test_unknown_customer_is_404_for_admin(client: TestClient) -> None:
    r = client.get("/v1/customers/nobody/entitlements/tokens", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert client.get("/v1/customers/nobody/usage", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("route", READS)
@pytest.mark.parametrize("other", ["cus_b", "nobody"])
def test_customer_token_on_another_customer_is_403_without_hint(
    client: TestClient, route: str, other: str
) -> None:
    r = client.get(f"/v1/customers/{other}/{route}", headers=bearer("cus_a"))
    assert r.status_code == 403
    # The same answer whether the other customer exists or not.
    assert r.json() == {"error": "forbidden", "detail": "not allowed"}


@pytest.mark.parametrize("route", READS)
def test_bad_tokens_all_get_the_same_401(client: TestClient, route: str) -> None:
    good = bearer("cus_a")["authorization"].removeprefix("Bearer ")
    head, payload, sig = good.split(".")
    forged_payload = tokens.issue(b"another-secret-0123456789", "cus_a", now=NOW, ttl_seconds=60)
    cases = {
        "missing": {},
        "garbage": {"authorization": "Bearer nonsense"},
        "tampered": {"authorization": f"Bearer {head}.{payload[:-2]}xx.{sig}"},
        "wrong-secret": {"authorization": f"Bearer {forged_payload}"},
        "expired": bearer("cus_a", ttl=1, now=NOW - 10),
        "wrong-admin-key": {"x-admin-key": "nope"},
    }
    answers = {
        name: client.get(f"/v1/customers/cus_a/{route}", headers=h) for name, h in cases.items()
    }
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(cases, 401)
    assert len({r.text for r in answers.values()}) == 1


def raw_token(customer: str, *, ttl: int = 600, now: int = NOW) -> str:
    return bearer(customer, ttl=ttl, now=now)["authorization"].removeprefix("Bearer ")


def test_portal_bad_tokens_all_get_the_same_401_page(client: TestClient) -> None:
    good = raw_token("cus_a")
    head, _, sig = good.split(".")
    # The signature of cus_a's token on a payload that claims cus_b.
    claims_b = tokens.issue(SECRET.encode(), "cus_b", now=NOW, ttl_seconds=600).split(".")[1]
    cases = {
        "expired": raw_token("cus_a", ttl=600, now=NOW - 600),  # expired at NOW, clock NOW+1
        "tampered": f"{head}.{claims_b}.{sig}",
        "unknown-signer": tokens.issue(
            b"another-secret-0123456789", "cus_a", now=NOW, ttl_seconds=60
        ),
        "garbage": "garbage-not-a-token",
        "unknown-version": f"v9.{good.split('.', 1)[1]}",
    }
    answers = {}
    for name, token in cases.items():
        answers[name] = client.get("/portal", params={"token": token}, follow_redirects=False)
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, token)  # the same token replayed as a session
        answers[f"{name}-cookie"] = client.get("/portal", follow_redirects=False)
        client.cookies.clear()
    answers["none"] = client.get("/portal", follow_redirects=False)
    for name, cookie in [("good-as-session", SESSION_COOKIE), ("good-legacy", LEGACY_COOKIE)]:
        client.cookies.set(cookie, good)  # the cookie carries a session id, never a token
        answers[name] = client.get("/portal", follow_redirects=False)
        client.cookies.clear()
    assert {n: r.status_code for n, r in answers.items()} == dict.fromkeys(answers, 401)
    assert len({r.text for r in answers.values()}) == 1  # byte-identical pages
    page = answers["expired"].text
    assert "invalid or has expired" in page and "cus_a" not in page
    assert all("set-cookie" not in r.headers for r in answers.values())
    # control: the link itself starts a session, which the cookie then carries
    assert client.get("/portal", params={"token": good}, follow_redirects=False).status_code == 303
    assert client.get("/portal", follow_redirects=False).status_code == 200


def test_portal_shows_only_the_token_customers_data(client: TestClient) -> None:
    first = client.get("/portal", params={"token": raw_token("cus_a")}, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/portal"
    page_a = client.get("/portal", params={"customer_id": "cus_b"})  # cookie of cus_a
    assert page_a.status_code == 200
    assert "<h1>cus_a</h1>" in page_a.text and 'data-testid="used-tokens">600<' in page_a.text
    # Nothing of cus_b (its plan, credits, trend) appears on cus_a's page.
    for of_b in ("cus_b", "credits-starter", 'current-balance">640<', "trend-chart"):
        assert of_b not in page_a.text
    # A link for cus_b does not replace cus_a's session (login CSRF): 409, sign out first.
    other = client.get("/portal", params={"token": raw_token("cus_b")}, follow_redirects=False)
    assert other.status_code == 409 and "set-cookie" not in other.headers
    assert "Sign out first" in other.text and "cus_a" not in other.text
    out = client.post("/portal/sign-out", follow_redirects=False)
    assert out.status_code == 303 and SESSION_COOKIE in out.headers["set-cookie"]
    assert client.get("/portal", follow_redirects=False).status_code == 401
    page_b = client.get("/portal", params={"token": raw_token("cus_b")})
    assert "<h1>cus_b</h1>" in page_b.text and 'current-balance">640<' in page_b.text
    assert "cus_a" not in page_b.text and "al-1" not in page_b.text


def test_the_portal_cookie_is_secure_httponly_and_strict(client: TestClient) -> None:
    r = client.get("/portal", params={"token": raw_token("cus_a")}, follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert r.status_code == 303
    for flag in ("secure", "httponly", "samesite=strict", "path=/portal"):
        assert flag in cookie
    again = client.get("/portal", params={"token": raw_token("cus_a")}, follow_redirects=False)
    assert again.status_code == 303  # the same customer's new link refreshes the session


def test_admin_routes_need_the_admin_key(client: TestClient, writer: RecordingWriter) -> None:
    routes: list[tuple[str, dict[str, object]]] = [
        ("/v1/usage", {}),
        ("/v1/customers/cus_a/subscription", {}),
        ("/v1/customers/cus_a/seats", {}),
        ("/v1/customers/cus_a/credit-purchases", {}),
        ("/v1/customers/cus_a/deposits", {}),
    ]
    for path, body in routes:
        for headers in ({}, {"x-admin-key": "wrong"}, bearer("cus_a")):
            r = client.post(path, json=body, headers=headers)
            assert r.status_code == 401, (path, headers)
    assert writer.calls == []


def usage_item(event_id: str, **over: object) -> dict[str, object]:
    item: dict[str, object] = {
        "event_id": event_id,
        "customer_id": "cus_a",
        "feature_id": "tokens",
        "quantity": "12.5",
        "timestamp": "2026-11-02T10:00:00Z",
    }
    item.update(over)
    return item


def test_ingest_one_event(client: TestClient, writer: RecordingWriter) -> None:
    r = client.post("/v1/usage", json=usage_item("e1", quantity=3), headers=ADMIN)
    assert r.status_code == 202 and r.json() == {"accepted": ["e1"], "errors": []}
    name, args, kwargs = writer.calls[0]
    assert (name, args[0], args[1], str(args[2]), kwargs["event_id"]) == (
        "report",
        "cus_a",
        "tokens",
        "3",
        "e1",
    )


def test_ingest_batch_validates_each_item(client: TestClient, writer: RecordingWriter) -> None:
    batch = [
        usage_item("e1"),
        usage_item("e2", quantity=1.5),  # floats are refused for quantities
        usage_item("e3", timestamp="2026-11-02T10:00:00"),  # naive time
        usage_item("e1"),  # identical repeat: sent once
        usage_item("e1", quantity="99"),  # same id, other payload
        "not an object",
        usage_item("e4", quantity="-1"),
        usage_item("e5", feature_id="images"),
    ]
    r = client.post("/v1/usage", json=batch, headers=ADMIN)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == ["e1", "e5"]
    assert [(e["index"], e["event_id"]) for e in body["errors"]] == [
        (1, "e2"),
        (2, "e3"),
        (4, "e1"),
        (5, None),
        (6, "e4"),
    ]
    assert [c[2]["event_id"] for c in writer.calls] == ["e1", "e5"]


def test_ingest_exactly_the_batch_limit_is_accepted(
    client: TestClient, writer: RecordingWriter
) -> None:
    batch = [usage_item(f"e{i}") for i in range(MAX_BATCH)]
    assert MAX_BATCH == 1000
    r = client.post("/v1/usage", json=batch, headers=ADMIN)
    assert r.status_code == 202
    assert r.json() == {"accepted": [f"e{i}" for i in range(MAX_BATCH)], "errors": []}
    assert len(writer.calls) == MAX_BATCH


def test_ingest_of_the_same_event_twice_answers_the_same_id(
    client: TestClient, writer: RecordingWriter
) -> None:
    # A client retry: the API accepts it again with the same id; the event_id makes the
    # second copy harmless downstream (the fold worker applies an id once).
    answers = [client.post("/v1/usage", json=usage_item("e-retry"), headers=ADMIN) for _ in "12"]
    assert [r.status_code for r in answers] == [202, 202]
    assert answers[0].json() == answers[1].json() == {"accepted": ["e-retry"], "errors": []}
    assert [c[2]["event_id"] for c in writer.calls] == ["e-retry", "e-retry"]
    assert writer.calls[0] == writer.calls[1]  # the same payload both times


def test_ingest_nothing_valid_is_422_and_limits(
    client: TestClient, writer: RecordingWriter
) -> None:
    r = client.post("/v1/usage", json=[usage_item("e1", quantity="x")], headers=ADMIN)
    assert r.status_code == 422 and r.json()["accepted"] == []
    assert client.post("/v1/usage", json=[], headers=ADMIN).status_code == 422
    too_many = [usage_item(f"e{i}") for i in range(1001)]
    assert client.post("/v1/usage", json=too_many, headers=ADMIN).status_code == 422
    assert writer.calls == []


def test_ingest_unacknowledged_is_503(client: TestClient, writer: RecordingWriter) -> None:
    writer.pending_after_flush = 2
    r = client.post("/v1/usage", json=usage_item("e1"), headers=ADMIN)
    assert r.status_code == 503 and r.json()["error"] == "unavailable"


def test_account_commands(client: TestClient, writer: RecordingWriter) -> None:
    ts = "2026-11-01T00:00:00+00:00"
    cases: list[tuple[str, dict[str, object], str]] = [
        (
            "subscription",
            {"event_id": "s1", "plan_id": "starter", "seats": 3, "timestamp": ts},
            "subscribe",
        ),
        ("seats", {"event_id": "s2", "seats": 5, "timestamp": ts}, "change_seats"),
        (
            "credit-purchases",
            {"event_id": "s3", "pack_id": "p1k", "quantity": 2, "timestamp": ts},
            "purchase_credits",
        ),
        (
            "deposits",
            {"event_id": "s4", "amount": "50.00", "currency": "EUR", "timestamp": ts},
            "deposit",
        ),
    ]
    for route, body, method in cases:
        r = client.post(f"/v1/customers/cus_z/{route}", json=body, headers=ADMIN)
        assert r.status_code == 202, r.text
        assert r.json() == {"event_id": body["event_id"], "status": "accepted"}
        assert writer.calls[-1][0] == method and writer.calls[-1][1][0] == "cus_z"
    assert str(writer.calls[-1][1][1]) == "50.00"
    bad = client.post(
        "/v1/customers/cus_z/deposits",
        json={"event_id": "s5", "amount": 50.5, "currency": "EUR", "timestamp": ts},
        headers=ADMIN,
    )
    assert bad.status_code == 422


def test_openapi_is_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    entitlement = spec["paths"]["/v1/customers/{customer_id}/entitlements/{feature_id}"]["get"]
    assert {(p["name"], p["in"]) for p in entitlement["parameters"]} == {
        ("customer_id", "path"),
        ("feature_id", "path"),
        ("x-api-key", "header"),
        ("x-admin-key", "header"),
        ("authorization", "header"),
    }
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"quantity": 123456789012345678901234567890123}, "quantity"),
        ({"quantity": "123456789012345678901234567890123"}, "quantity"),
        ({"quantity": "1.0000000000001"}, "quantity"),
        ({"properties": {"input_tokens": "1" + "0" * 30}}, "input_tokens"),
    ],
)
def test_ingest_answers_422_naming_the_field_for_a_number_beyond_the_bounds(
    client: TestClient, writer: RecordingWriter, over: dict[str, object], field: str
) -> None:
    r = client.post("/v1/usage", json=usage_item("e1", **over), headers=ADMIN)
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert any(field in message for message in error["errors"]), error
    assert writer.calls == []
    ok = client.post("/v1/usage", json=usage_item("e2", quantity=10**18 - 1), headers=ADMIN)
    assert ok.status_code == 202


def test_deposit_beyond_the_bounds_is_a_4xx_naming_amount(client: TestClient) -> None:
    body = {
        "event_id": "d1",
        "amount": "1234567890123456789.5",
        "currency": "USD",
        "timestamp": "2026-11-02T10:00:00Z",
    }
    r = client.post("/v1/customers/cus_a/deposits", json=body, headers=ADMIN)
    assert 400 <= r.status_code < 500 and "amount" in r.text
