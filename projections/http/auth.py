"""Who is calling: the admin (constant-time key check) or one customer (signed token).

Read routes accept either; a customer token only for its own customer, checked
before anything is read, so a 403 reveals nothing about the other customer.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from projections.http import tokens
from projections.read.errors import Forbidden, Unauthenticated

ADMIN_HEADER = "x-admin-key"
TOKEN_COOKIE = "sb_token"
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
class Caller:
    admin: bool
    customer_id: str | None = None

    def may_read(self, customer_id: str) -> None:
        if not self.admin and self.customer_id != customer_id:
            raise Forbidden()


class Authenticator:
    def __init__(
        self, admin_key: str | None, token_secret: str | None, clock: Callable[[], float]
    ) -> None:
        """`ValueError` naming every problem of `secret_problems`."""
        problems = secret_problems(admin_key, token_secret)
        if problems:
            raise ValueError("; ".join(problems))
        self._admin_key = admin_key.encode("utf-8") if admin_key else None
        self._secret = token_secret.encode("utf-8") if token_secret else None
        self._clock = clock

    def admin(self, presented: str | None) -> Caller:
        """The admin, or `Unauthenticated`. An unset admin key disables admin routes."""
        if (
            self._admin_key is None
            or presented is None
            or not hmac.compare_digest(presented.encode("utf-8"), self._admin_key)
        ):
            raise Unauthenticated()
        return Caller(admin=True)

    def customer(self, token: str | None) -> Caller:
        if self._secret is None or not token:
            raise Unauthenticated()
        claims = tokens.verify(self._secret, token, now=int(self._clock()))
        return Caller(admin=False, customer_id=claims.customer_id)

    def reader(self, admin_key: str | None, bearer: str | None) -> Caller:
        """Admin key if one is presented, else a customer token."""
        if admin_key is not None:
            return self.admin(admin_key)
        return self.customer(bearer)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
