"""Who is calling: an API key with its scopes (`projections.http.keys`, plus the
legacy admin key) or one customer (signed token).

Read routes accept a `read` (or `admin`) key or a customer token, the token only for
its own customer, checked before anything is read, so a 403 reveals nothing about
the other customer. Ingest needs `ingest`, every other write `admin`.

Rates (`Limits`, 429 with `Retry-After`): each key its own, each customer its own
whatever credential it comes with, and each client address one for the requests that
prove no identity (a failed authentication, the portal's link and sign-out), which
blocks the address altogether while it is used up (`from_address`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Request

from projections.http import tokens
from projections.http.keys import GRANTS, PREFIX, SCOPES, KeyFile, Scope
from projections.http.limits import RateLimiter, address_key
from projections.read.errors import Forbidden, RateLimited, Unauthenticated

ADMIN_HEADER = "x-admin-key"
KEY_HEADER = "x-api-key"
MIN_ADMIN_KEY_CHARS = 16


def secret_problems(admin_key: str | None, token_secret: str | None) -> list[str]:
    """What is wrong with the configured secrets, one sentence each (empty: fine).
    The API and the demo check this before they start and refuse to run otherwise,
    so a short secret is never first noticed by a request (unset is allowed: it
    disables what needs the secret)."""
    out = []
    if admin_key is not None and len(admin_key) < MIN_ADMIN_KEY_CHARS:
        out.append(
            f"STREAMBILL_ADMIN_KEY is {len(admin_key)} characters; use at least"
            f" {MIN_ADMIN_KEY_CHARS} (e.g. `openssl rand -hex 24`)"
        )
    if token_secret is not None and len(token_secret.encode("utf-8")) < tokens.MIN_SECRET_BYTES:
        out.append(
            f"STREAMBILL_TOKEN_SECRET is {len(token_secret.encode('utf-8'))} bytes; use at"
            f" least {tokens.MIN_SECRET_BYTES}"
        )
    return out


@dataclass(frozen=True, slots=True)
class Limits:
    """The request rates (`projections.http.limits`): per API key name, per customer
    (tokens and portal sessions), and per client address for requests that prove no
    identity. None: no limit of that kind."""

    keys: RateLimiter | None = None
    customers: RateLimiter | None = None
    addresses: RateLimiter | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: an API key (`name` and the scopes it `grants`) or
    one customer (`customer_id`, a signed token: that customer's own view only)."""

    grants: frozenset[str] = frozenset()
    customer_id: str | None = None
    name: str | None = None

    def may_read(self, customer_id: str) -> None:
        if "read" not in self.grants and self.customer_id != customer_id:
            raise Forbidden()


class Authenticator:
    """Checks credentials. Keys: the scoped keys of `keys` (`projections.http.keys`)
    and the single legacy `admin_key` (`STREAMBILL_ADMIN_KEY`, an admin-scope key
    named `STREAMBILL_ADMIN_KEY`, compared in constant time). Tokens: customer tokens
    signed with `token_secret`."""

    def __init__(
        self,
        admin_key: str | None,
        token_secret: str | None,
        clock: Callable[[], float],
        keys: KeyFile | None = None,
        limits: Limits | None = None,
    ) -> None:
        """`ValueError` naming every problem of `secret_problems`."""
        problems = secret_problems(admin_key, token_secret)
        if problems:
            raise ValueError("; ".join(problems))
        self._admin_key = admin_key.encode("utf-8") if admin_key else None
        self._secret = token_secret.encode("utf-8") if token_secret else None
        self._clock = clock
        self._keys = keys
        self._limits = limits or Limits()

    def identify(self, presented: str | None) -> Caller:
        """The caller a presented API key stands for, or `Unauthenticated` (one answer
        for a missing, unknown or wrong key). An unset admin key and no keys file
        disable key access."""
        if presented is None:
            raise Unauthenticated()
        if presented.startswith(PREFIX):
            entry = self._keys.find(presented) if self._keys is not None else None
            if entry is None:
                raise Unauthenticated()
            return Caller(grants=entry.grants, name=entry.name)
        if self._admin_key is None or not hmac.compare_digest(
            presented.encode("utf-8"), self._admin_key
        ):
            raise Unauthenticated()
        return LEGACY_ADMIN

    def key(self, presented: str | None, scope: Scope) -> Caller:
        """The key's caller if its scopes cover `scope` and its rate allows one more
        request: `Unauthenticated` for no valid key, `Forbidden` for a valid key of
        another scope, `RateLimited` past its rate (`projections.http.limits`)."""
        caller = self.identify(presented)
        if scope not in caller.grants:
            raise Forbidden(f"the key {caller.name} ({_scope_of(caller)}) may not {scope}")
        _take(self._limits.keys, caller.name or "", "this key")
        return caller

    def admin(self, presented: str | None) -> Caller:
        return self.key(presented, "admin")

    def claims(self, token: str | None) -> tokens.CustomerToken:
        """The verified claims of a customer token, or `Unauthenticated` (no secret,
        no token, or one that does not verify or has expired)."""
        if self._secret is None or not token:
            raise Unauthenticated()
        return tokens.verify(self._secret, token, now=int(self._clock()))

    def customer(self, token: str | None) -> Caller:
        """The customer of a token, within the customer's rate (`RateLimited`)."""
        customer_id = self.claims(token).customer_id
        self.customer_request(customer_id)
        return Caller(customer_id=customer_id)

    def customer_request(self, customer_id: str) -> None:
        """Count one request of `customer_id` (a token or a portal session):
        `RateLimited` past the customer's rate, whatever credential it came with."""
        _take(self._limits.customers, customer_id, "this customer")

    def reader(self, api_key: str | None, bearer: str | None) -> Caller:
        """A read-scope key if one is presented, else a customer token."""
        if api_key is not None:
            return self.key(api_key, "read")
        return self.customer(bearer)

    def from_address(self, address: str, check: Callable[[], Caller]) -> Caller:
        """`check()` for a request from `address` (`limits.address_key`): `RateLimited`
        first, credentials unchecked, while the address has used up its rate of
        unproven requests, so a guesser learns nothing from those answers (a valid
        caller on the same address waits too); a check that fails (`Unauthenticated`)
        counts against the address and is 429 once none is left, else 401."""
        self.address_admitted(address)
        try:
            return check()
        except Unauthenticated:
            self.anonymous_request(address)
            raise

    def address_admitted(self, address: str) -> None:
        """`RateLimited` while `address` has no unproven request left (nothing taken)."""
        limiter = self._limits.addresses
        wait = limiter.wait(address) if limiter is not None else 0
        if wait:
            raise RateLimited(wait, "this address")

    def anonymous_request(self, address: str) -> None:
        """Count one request from `address` that proves no identity (a failed
        authentication, a portal link, a sign-out): `RateLimited` past its rate."""
        _take(self._limits.addresses, address, "this address")


def _take(limiter: RateLimiter | None, name: str, who: str) -> None:
    wait = limiter.take(name) if limiter is not None else 0
    if wait:
        raise RateLimited(wait, who)


LEGACY_ADMIN = Caller(grants=GRANTS["admin"], name="STREAMBILL_ADMIN_KEY")


def _scope_of(caller: Caller) -> str:
    return next(s for s in SCOPES if GRANTS[s] == caller.grants)


def presented_key(api_key: str | None, admin_key: str | None) -> str | None:
    """The key of the request: `x-api-key`, else the older `x-admin-key` header."""
    return api_key if api_key is not None else admin_key


CALLER = "caller"  # key of the caller `projections.http.gate` put in the scope state


def key_dependency(auth: Authenticator, scope: Scope) -> Callable[..., Caller]:
    """A FastAPI dependency: the caller of a key covering `scope` (else 401/403/429).
    Behind `projections.http.gate.Gate` the key was checked (and its rate taken)
    before the body was read: the caller is in the scope state. The header
    parameters document the route; they are read only without the gate."""

    def caller(
        request: Request,
        x_api_key: Annotated[str | None, Header(alias=KEY_HEADER)] = None,
        x_admin_key: Annotated[str | None, Header(alias=ADMIN_HEADER)] = None,
    ) -> Caller:
        found = request.scope.get("state", {}).get(CALLER)
        if not isinstance(found, Caller):
            presented = presented_key(x_api_key, x_admin_key)
            return auth.from_address(
                request_address(request.scope), lambda: auth.key(presented, scope)
            )
        if scope not in found.grants:
            raise Forbidden(f"the key {found.name} ({_scope_of(found)}) may not {scope}")
        return found

    return caller


def request_address(scope: Mapping[str, Any]) -> str:
    """The rate-limit bucket of an ASGI request's client (`limits.address_key`)."""
    client = scope.get("client")
    return address_key(client[0] if client else None)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
