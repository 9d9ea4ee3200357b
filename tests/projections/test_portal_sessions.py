"""Portal sessions against the real Redis (`projections.http.sessions`): a link's token
is exchanged for a random server-side session, the cookie carries only its id, the
session ends no later than the token, sign-out deletes it on the server, and a link
stays usable (for new sessions) until its token expires."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from projections.http import tokens
from projections.http.app import create_app
from projections.http.sessions import LEGACY_COOKIE, SESSION_COOKIE, RedisSessions
from projections.read.store import InMemoryStore
from tests.projections.apphelpers import NOW, SECRET, RecordingWriter, fill, settings
from tests.projections.conftest import REDIS_URL

pytestmark = pytest.mark.integration
TTL = 600  # the link tokens' lifetime


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    name = f"sbs-{uuid.uuid4().hex[:10]}"
    yield name
    for key in redis_client.scan_iter(match=f"{name}:*"):
        redis_client.delete(key)


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW + 1)

    def __call__(self) -> float:
        return self.now


def _client(prefix: str, clock: Clock, **over: object) -> TestClient:
    store = InMemoryStore()
    fill(store)
    app = create_app(
        settings().model_copy(update=over),
        store,
        RecordingWriter(),
        clock=clock,
        sessions=RedisSessions.from_url(REDIS_URL, prefix),
    )
    return TestClient(app, base_url="https://testserver")


def _link(customer: str, *, ttl: int = TTL) -> str:
    return tokens.issue(SECRET.encode(), customer, now=NOW, ttl_seconds=ttl)


def _session_cookie(response: object) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        jar.load(header)
    return jar


def _keys(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(client.scan_iter(match=f"{prefix}:*"))


def test_a_link_is_exchanged_for_a_server_side_session(
    redis_client: redis.Redis, prefix: str
) -> None:
    link = _link("cus_a")
    with _client(prefix, Clock()) as c:
        r = c.get("/portal", params={"token": link}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/portal"  # no token
        jar = _session_cookie(r)
        morsel = jar[SESSION_COOKIE]
        session_id = morsel.value
        assert session_id != link and link not in r.headers["set-cookie"]
        assert len(session_id) == 43  # 32 random bytes, base64url
        assert morsel["secure"] and morsel["httponly"] and morsel["samesite"].lower() == "strict"
        assert morsel["path"] == "/portal" and int(morsel["max-age"]) == TTL - 1
        assert jar[LEGACY_COOKIE]["max-age"] == "0"  # a token cookie of before is cleared
        # Redis holds one key, named by the id's MAC (not the id), expiring with the token
        (key,) = _keys(redis_client, prefix)
        assert session_id not in key and key.startswith(f"{prefix}:portal:")
        assert 0 < redis_client.ttl(key) <= TTL - 1
        assert '"sub":"cus_a"' in str(redis_client.get(key))
        page = c.get("/portal")
        assert page.status_code == 200 and "<h1>cus_a</h1>" in page.text


def test_the_cookie_carries_only_the_session_id(prefix: str) -> None:
    link = _link("cus_a")
    with _client(prefix, Clock()) as c:
        r = c.get("/portal", params={"token": link}, follow_redirects=False)
        session_id = _session_cookie(r)[SESSION_COOKIE].value
        c.cookies.clear()
        for name, value in [(SESSION_COOKIE, link), (LEGACY_COOKIE, link)]:
            c.cookies.set(name, value)  # the token where a session id belongs: nobody
            assert c.get("/portal", follow_redirects=False).status_code == 401
            c.cookies.clear()
        bearer = {"authorization": f"Bearer {session_id}"}  # nor is the id a token
        assert c.get("/v1/customers/cus_a/usage", headers=bearer).status_code == 401
        c.cookies.set(SESSION_COOKIE, session_id)
        assert c.get("/portal", follow_redirects=False).status_code == 200


def test_sign_out_deletes_the_session_on_the_server(redis_client: redis.Redis, prefix: str) -> None:
    with _client(prefix, Clock()) as c:
        r = c.get("/portal", params={"token": _link("cus_a")}, follow_redirects=False)
        session_id = _session_cookie(r)[SESSION_COOKIE].value
        assert len(_keys(redis_client, prefix)) == 1
        out = c.post("/portal/sign-out", follow_redirects=False)
        assert out.status_code == 303
        assert _session_cookie(out)[SESSION_COOKIE]["max-age"] == "0"
        assert _keys(redis_client, prefix) == []
        c.cookies.set(SESSION_COOKIE, session_id)  # a copy of the cookie kept elsewhere
        assert c.get("/portal", follow_redirects=False).status_code == 401


def test_a_link_is_reusable_until_its_token_expires(redis_client: redis.Redis, prefix: str) -> None:
    clock = Clock()
    link = _link("cus_a")
    with _client(prefix, clock) as c:
        first = c.get("/portal", params={"token": link}, follow_redirects=False)
        first_id = _session_cookie(first)[SESSION_COOKIE].value
        c.post("/portal/sign-out")
        again = c.get("/portal", params={"token": link}, follow_redirects=False)
        assert again.status_code == 303  # the same link, a new session
        second_id = _session_cookie(again)[SESSION_COOKIE].value
        assert second_id != first_id
        # the same browser follows it once more: the earlier session is replaced
        third = c.get("/portal", params={"token": link}, follow_redirects=False)
        third_id = _session_cookie(third)[SESSION_COOKIE].value
        assert len(_keys(redis_client, prefix)) == 1
        c.cookies.clear()
        c.cookies.set(SESSION_COOKIE, second_id)
        assert c.get("/portal", follow_redirects=False).status_code == 401
        c.cookies.set(SESSION_COOKIE, third_id)
        assert c.get("/portal", follow_redirects=False).status_code == 200
        clock.now = NOW + TTL  # the token's expiry: the link and its session end together
        assert c.get("/portal", follow_redirects=False).status_code == 401
        c.cookies.clear()
        assert c.get("/portal", params={"token": link}, follow_redirects=False).status_code == 401


def test_a_session_lives_at_most_the_session_ttl(redis_client: redis.Redis, prefix: str) -> None:
    clock = Clock()
    with _client(prefix, clock, portal_session_ttl="60") as c:
        r = c.get("/portal", params={"token": _link("cus_a")}, follow_redirects=False)
        assert _session_cookie(r)[SESSION_COOKIE]["max-age"] == "60"
        (key,) = _keys(redis_client, prefix)
        assert 0 < redis_client.ttl(key) <= 60
        clock.now += 59
        assert c.get("/portal", follow_redirects=False).status_code == 200
        clock.now += 1  # the token is still valid, the session is not
        assert c.get("/portal", follow_redirects=False).status_code == 401


def test_changing_the_token_secret_ends_every_session(prefix: str) -> None:
    with _client(prefix, Clock()) as c:
        r = c.get("/portal", params={"token": _link("cus_a")}, follow_redirects=False)
        session_id = _session_cookie(r)[SESSION_COOKIE].value
    rotated = SecretStr("another-token-secret-0123456789")
    with _client(prefix, Clock(), token_secret=rotated) as c:
        c.cookies.set(SESSION_COOKIE, session_id)
        assert c.get("/portal", follow_redirects=False).status_code == 401


def test_a_bad_session_ttl_names_the_setting(prefix: str) -> None:
    with pytest.raises(ValueError, match="STREAMBILL_PORTAL_SESSION_TTL: invalid ttl"):
        _client(prefix, Clock(), portal_session_ttl="forever")


def test_redis_down_is_503_not_a_session_or_a_500() -> None:
    store = InMemoryStore()
    fill(store)
    no_retry = Retry(NoBackoff(), 0)
    dead = RedisSessions(redis.Redis(port=1, socket_connect_timeout=0.2, retry=no_retry), "x")
    app = create_app(settings(), store, RecordingWriter(), clock=Clock(), sessions=dead)
    with TestClient(app, base_url="https://testserver") as c:
        r = c.get("/portal", params={"token": _link("cus_a")}, follow_redirects=False)
        assert r.status_code == 503 and "set-cookie" not in r.headers
        c.cookies.set(SESSION_COOKIE, "x" * 43)
        assert c.get("/portal", follow_redirects=False).status_code == 503
