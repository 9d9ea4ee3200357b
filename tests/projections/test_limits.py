"""Issue 22, limits before work: a write without a valid key is 401 before a byte of
its body is read (invalid JSON too: 401, not 422), a body over the limit is 413
before it is parsed (by Content-Length, or counted while a chunked body arrives),
and each key has a request rate, past which it gets 429 with Retry-After; so does each
customer (tokens and portal sessions) and each client address for the requests that
prove no identity (failed authentications, the portal's link and sign-out)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from projections.http import keys, tokens
from projections.http.app import create_app
from projections.http.limits import RateLimiter, address_key
from projections.read.store import InMemoryStore
from streambill.config.settings import Settings
from tests.projections.apphelpers import ADMIN_KEY, NOW, SECRET, RecordingWriter, fill

ADMIN = {"x-admin-key": ADMIN_KEY}
LIMIT = 10_000
ITEM = {
    "event_id": "e-1",
    "customer_id": "cus_a",
    "feature_id": "api_calls",
    "quantity": "3",
    "timestamp": "2027-01-15T00:00:00Z",
}


def _app(tmp_path: Path, **over: Any) -> tuple[FastAPI, dict[str, str]]:
    presented, entry = keys.create("producer", "ingest")
    path = tmp_path / "keys"
    path.write_text(entry.line() + "\n")
    store = InMemoryStore()
    fill(store)
    settings = Settings(
        admin_key=SecretStr(ADMIN_KEY),
        token_secret=SecretStr(SECRET),
        api_keys_file=path,
        api_max_body_bytes=LIMIT,
        **over,
    )
    app = create_app(settings, store, RecordingWriter(), clock=lambda: NOW + 1)
    return app, {"x-api-key": presented}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app, _ = _app(tmp_path)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _call(
    app: FastAPI, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict[str, str], int]:
    """(status, response headers, body chunks the app asked for) of one raw ASGI call."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if asked >= len(chunks):
            await asyncio.sleep(3600)  # nothing more: a client that never sends the rest
        asked += 1
        return {"type": "http.request", "body": chunks[asked - 1], "more_body": asked < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 443),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start = sent[0]
    return (
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        asked,
    )


@pytest.mark.parametrize(
    "path", ["/v1/usage", "/v1/customers/cus_a/deposits", "/v1/customers/cus_a/seats"]
)
def test_invalid_json_without_a_key_is_401_not_422(client: TestClient, path: str) -> None:
    r = client.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 401
    assert r.json() == {"error": "unauthenticated", "detail": "invalid or missing credentials"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_invalid_json_with_a_key_of_another_scope_is_403(tmp_path: Path) -> None:
    app, ingest = _app(tmp_path)
    with TestClient(app) as c:
        r = c.post("/v1/customers/cus_a/deposits", content=b"{not json", headers=ingest)
    assert r.status_code == 403


def test_a_huge_body_without_a_key_is_401_and_never_read(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    status, _, asked = _call(
        app, "/v1/usage", {"content-length": str(20 * 1024 * 1024)}, [b"x" * 65536] * 320
    )
    assert (status, asked) == (401, 0)


def test_a_body_over_the_limit_by_its_length_is_413_unread(tmp_path: Path) -> None:
    app, key = _app(tmp_path)
    headers = {**key, "content-length": str(LIMIT + 1), "content-type": "application/json"}
    status, _, asked = _call(app, "/v1/usage", headers, [b"[" + b" " * LIMIT])
    assert (status, asked) == (413, 0)


def test_a_chunked_body_over_the_limit_is_413_once_counted(tmp_path: Path) -> None:
    app, key = _app(tmp_path)
    headers = {**key, "content-type": "application/json", "transfer-encoding": "chunked"}
    status, _, asked = _call(app, "/v1/usage", headers, [b" " * 4000] * 100)
    assert status == 413
    assert asked == 3  # 12,000 bytes counted past the 10,000 limit; the rest never asked for


def test_a_body_within_the_limit_reaches_the_route(tmp_path: Path) -> None:
    app, key = _app(tmp_path)
    body = json.dumps(ITEM).encode()
    headers = {**key, "content-type": "application/json"}
    status, _, asked = _call(app, "/v1/usage", headers, [body[:10], body[10:]])
    assert (status, asked) == (202, 2)


def test_the_413_is_the_api_error_shape(client: TestClient) -> None:
    r = client.post("/v1/usage", content=b" " * (LIMIT + 1), headers=ADMIN)
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"


def test_a_key_past_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    app, key = _app(tmp_path, api_rate_limit=0.01, api_rate_burst=2)
    with TestClient(app) as c:
        assert c.post("/v1/usage", json=ITEM, headers=key).status_code == 202
        assert c.post("/v1/usage", json=ITEM, headers=key).status_code == 202
        r = c.post("/v1/usage", json=ITEM, headers=key)
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        assert r.headers["retry-after"] == "100"
        # per key: the admin key has its own bucket, for writes and reads alike
        assert c.post("/v1/usage", json=ITEM, headers=ADMIN).status_code == 202
        assert c.get("/v1/customers/cus_a/usage", headers=ADMIN).status_code == 200
        r = c.get("/v1/customers/cus_a/entitlements/api_calls", headers=ADMIN)
        assert r.status_code == 429 and r.headers["retry-after"] == "100"


def test_the_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 1]
    assert limiter.take("b") == 0  # one bucket per key name
    now[0] = 0.5  # one token back
    assert limiter.take("a") == 0 and limiter.take("a") == 1
    now[0] = 100.0  # refills up to the burst, no further
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 1]
    assert RateLimiter(rate=0, burst=1).take("a") == 0  # 0: no limit


# ------------------------------------------------------- customers and addresses


def _token(customer: str) -> str:
    return tokens.issue(SECRET.encode(), customer, now=NOW, ttl_seconds=600)


def _bearer(customer: str) -> dict[str, str]:
    return {"authorization": f"Bearer {_token(customer)}"}


def _from(app: FastAPI, host: str) -> TestClient:
    return TestClient(app, base_url="https://testserver", client=(host, 4000))


def test_a_customer_past_its_rate_gets_429_whatever_it_signs_in_with(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, api_customer_rate_limit=0.01, api_customer_rate_burst=2)
    with _from(app, "198.51.100.7") as c:
        assert c.get("/v1/customers/cus_a/usage", headers=_bearer("cus_a")).status_code == 200
        # the portal session of the same customer draws on the same bucket
        c.get("/portal", params={"token": _token("cus_a")}, follow_redirects=False)
        assert c.get("/portal", follow_redirects=False).status_code == 200
        r = c.get("/v1/customers/cus_a/entitlements/api_calls", headers=_bearer("cus_a"))
        assert r.status_code == 429 and r.headers["retry-after"] == "100"
        assert r.json() == {
            "error": "rate_limited",
            "detail": "too many requests for this customer; retry after 100 s",
        }
        page = c.get("/portal", follow_redirects=False)
        assert page.status_code == 429 and page.headers["retry-after"] == "100"
        assert "try again in 100 seconds" in page.text
        # per customer: cus_b and the API keys are not held up by cus_a
        assert c.get("/v1/customers/cus_b/usage", headers=_bearer("cus_b")).status_code == 200
        assert c.get("/v1/customers/cus_a/usage", headers=ADMIN).status_code == 200


def test_failed_authentications_are_limited_per_address(tmp_path: Path) -> None:
    app, key = _app(tmp_path, api_anonymous_rate_limit=0.01, api_anonymous_rate_burst=3)
    wrong = {"authorization": "Bearer v1.forged.token"}
    with _from(app, "198.51.100.7") as c, _from(app, "203.0.113.9") as other:
        assert c.get("/v1/customers/cus_a/usage", headers=wrong).status_code == 401
        assert c.get("/v1/customers/cus_a/usage").status_code == 401  # no credentials
        assert c.post("/v1/usage", json=ITEM, headers={"x-api-key": "sbk_x_y"}).status_code == 401
        r = c.get("/v1/customers/cus_a/usage", headers=wrong)
        assert r.status_code == 429 and r.headers["retry-after"] == "100"
        assert r.json()["detail"] == "too many requests for this address; retry after 100 s"
        # while blocked, the address learns nothing: a valid key or token is 429 too,
        # on reads and on writes (before the body is read)
        assert c.get("/v1/customers/cus_a/usage", headers=ADMIN).status_code == 429
        assert c.get("/v1/customers/cus_a/usage", headers=_bearer("cus_a")).status_code == 429
        w = c.post("/v1/usage", json=ITEM, headers=key)
        assert w.status_code == 429 and w.headers["retry-after"] == "100"
        # another address is not held up
        assert other.get("/v1/customers/cus_a/usage", headers=wrong).status_code == 401
        assert other.post("/v1/usage", json=ITEM, headers=key).status_code == 202


def test_successful_requests_do_not_count_against_the_address(tmp_path: Path) -> None:
    app, key = _app(tmp_path, api_anonymous_rate_limit=0.01, api_anonymous_rate_burst=1)
    with _from(app, "198.51.100.7") as c:
        for _ in range(5):
            assert c.get("/v1/customers/cus_a/usage", headers=ADMIN).status_code == 200
            assert c.post("/v1/usage", json=ITEM, headers=key).status_code == 202
        assert c.get("/v1/customers/cus_a/usage").status_code == 401  # the one allowed
        assert c.get("/v1/customers/cus_a/usage").status_code == 429


def test_the_portal_link_and_sign_out_count_per_address(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, api_anonymous_rate_limit=0.01, api_anonymous_rate_burst=3)
    with _from(app, "198.51.100.7") as c:
        link = {"token": _token("cus_a")}
        assert c.get("/portal", params=link, follow_redirects=False).status_code == 303
        assert c.get("/portal", follow_redirects=False).status_code == 200  # a session: free
        assert c.post("/portal/sign-out", follow_redirects=False).status_code == 303
        assert c.get("/portal", params={"token": "bad"}, follow_redirects=False).status_code == 401
        r = c.get("/portal", params=link, follow_redirects=False)  # a valid link, too late
        assert r.status_code == 429 and r.headers["retry-after"] == "100"
        assert "set-cookie" not in r.headers
        assert c.post("/portal/sign-out", follow_redirects=False).status_code == 429


def test_limits_off_with_a_rate_of_zero(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, api_anonymous_rate_limit=0, api_customer_rate_limit=0)
    with _from(app, "198.51.100.7") as c:
        for _ in range(50):
            assert c.get("/v1/customers/cus_a/usage").status_code == 401
            assert c.get("/v1/customers/cus_a/usage", headers=_bearer("cus_a")).status_code == 200


def test_wait_peeks_without_taking_and_full_buckets_are_swept() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0], min_sweep=3)
    assert limiter.wait("a") == 0 and limiter.wait("a") == 0 and len(limiter) == 0
    assert [limiter.take("a"), limiter.take("a"), limiter.wait("a")] == [0, 0, 1]
    for name in "bc":
        limiter.take(name)
    assert len(limiter) == 3 and limiter.sweep_at == 3
    now[0] = 0.5  # b and c are at 1.5 of 2 tokens: not full, nothing to drop
    limiter.take("d")
    assert len(limiter) == 4 and limiter.sweep_at == 8  # next sweep once the count doubles
    now[0] = 10.0  # every bucket is full again
    for name in "efghi":
        limiter.take(name)
    assert len(limiter) == 5  # "i" made 9 > 8: the full a..d were dropped, e..i kept
    assert limiter.sweep_at == 10
    assert [limiter.take("a"), limiter.take("a"), limiter.wait("a")] == [0, 0, 1]  # anew


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # the same /64: the same bucket
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("testclient", "testclient"),
        (None, "-"),
    ],
)
def test_address_buckets(host: str | None, bucket: str) -> None:
    assert address_key(host) == bucket
