"""Portal sessions: a link's signed token is exchanged for a random, server-side session.

Following a portal link (`/portal?token=...`) verifies the token and starts a session:
a random id (`secrets.token_urlsafe`, 256 bits) goes into the browser's cookie, and the
server keeps the customer it stands for. The cookie never carries the token, so a
cookie jar, a proxy log or a browser extension that sees the cookie holds nothing
that works anywhere else (not the API's bearer routes, not another browser once the
session is signed out or expired).

Invariants:
- a session never outlives the token it was exchanged for: it ends at the earlier of
  the token's expiry and `max_ttl_seconds` after it started (the store's expiry, and
  the expiry written beside the customer, checked against the API's clock on every
  lookup, so a store that kept a key too long still signs nobody in);
- the store keeps `HMAC-SHA256(token secret, "portal-session:" + session id)`, never the id: whoever
  reads Redis cannot present a session, and changing `STREAMBILL_TOKEN_SECRET` ends
  every session, as it invalidates every token;
- signing out deletes the session from the store; the cookie is cleared too, but the
  server no longer accepts the id even if a copy of the cookie survives.

A link is reusable until its token expires, by choice: a billing-portal link arrives
in an email or a chat and is opened again later, on another device, or after
signing out, and a single-use link would fail those visits with nothing the customer
can do but ask for a new one. Each use starts a new session (the previous session of
the same browser is ended, so an id is never reused across sign-ins). The cost is
that whoever copies the link can use it until it expires: issue short-lived links
(`streambill token issue --ttl`).

Failures: a store error is `Unavailable` (503), never a session granted or a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from projections.http.tokens import CustomerToken
from projections.read.errors import Unavailable

SESSION_COOKIE = "sb_session"
LEGACY_COOKIE = "sb_token"  # the link's token itself, before sessions: ignored, cleared
MAX_SESSION_ID_CHARS = 64  # ids are 43 characters; a longer cookie is not looked up


class SessionStore(Protocol):
    """Where sessions live: a key (the id's MAC), a value, an expiry in seconds."""

    def put(self, key: str, value: str, ttl_seconds: int) -> None: ...
    def get(self, key: str) -> str | None: ...
    def delete(self, key: str) -> None: ...


class InMemorySessions:
    """Sessions in a dict, for tests (`create_app`'s default; `streambill api` uses
    `RedisSessions`). Nothing is ever evicted; `Sessions` checks the expiry written
    in every value on lookup."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self.values[key] = value

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class RedisSessions:
    """Sessions in Redis under `<prefix>:portal:<mac>`, one string key each with its
    expiry (`SET ... EX`), shared by every API process. The prefix is not the read
    models' (`projections rebuild` clears those, and must not sign anyone out); the
    API needs write access to it (README, "Production hardening")."""

    def __init__(self, client: redis.Redis, prefix: str = "sbs") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "sbs") -> RedisSessions:
        return cls(redis.Redis.from_url(url, decode_responses=True), prefix)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:portal:{key}"

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        try:
            self.client.set(self._key(key), value, ex=ttl_seconds)
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc

    def get(self, key: str) -> str | None:
        try:
            value = self.client.get(self._key(key))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return value if isinstance(value, str) else None

    def delete(self, key: str) -> None:
        try:
            self.client.delete(self._key(key))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str  # what the cookie carries
    customer_id: str
    expires_at: int  # unix seconds: at most the token's expiry
    ttl_seconds: int  # from its start: the cookie's Max-Age


class Sessions:
    """Starts, resolves and ends portal sessions over a `SessionStore` (module
    docstring). Without a token secret there are no tokens, so no session starts
    and none resolves."""

    def __init__(
        self,
        store: SessionStore,
        secret: bytes | None,
        max_ttl_seconds: int,
        clock: Callable[[], float],
    ) -> None:
        if max_ttl_seconds < 1:
            raise ValueError("portal session ttl must be at least 1 second")
        self._store = store
        self._secret = secret
        self._max_ttl = max_ttl_seconds
        self._clock = clock

    def _key(self, session_id: str | None) -> str | None:
        """The store key of a session id worth a lookup (ASCII, not empty, not longer
        than any id this module makes), else None."""
        if (
            self._secret is None
            or not session_id
            or len(session_id) > MAX_SESSION_ID_CHARS
            or not session_id.isascii()
        ):
            return None
        signed = b"portal-session:" + session_id.encode("ascii")  # never a token's input
        return hmac.new(self._secret, signed, hashlib.sha256).hexdigest()

    def start(self, token: CustomerToken) -> Session:
        """A new session for the customer of a verified, unexpired `token`."""
        now = int(self._clock())
        ttl = min(self._max_ttl, token.expires_at - now)
        if ttl < 1:  # pragma: no cover - `tokens.verify` refuses a token at its expiry
            raise Unavailable("the token expires now")
        session_id = secrets.token_urlsafe(32)
        key = self._key(session_id)
        if key is None:  # pragma: no cover - a verified token needs the secret
            raise Unavailable("no token secret: the portal is disabled")
        value = json.dumps({"sub": token.customer_id, "exp": now + ttl}, separators=(",", ":"))
        self._store.put(key, value, ttl)
        return Session(session_id, token.customer_id, now + ttl, ttl)

    def customer(self, session_id: str | None) -> str | None:
        """The customer of a live session, or None: no cookie, a malformed one, an
        unknown, ended or expired session."""
        key = self._key(session_id)
        if key is None:
            return None
        raw = self._store.get(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
            customer, expires = str(value["sub"]), int(value["exp"])
        except (ValueError, KeyError, TypeError):
            return None  # not a value this module wrote: no session
        return customer if self._clock() < expires else None

    def end(self, session_id: str | None) -> None:
        """Delete the session (a no-op for a missing or unknown one)."""
        key = self._key(session_id)
        if key is not None:
            self._store.delete(key)
