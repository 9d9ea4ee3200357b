"""Customer tokens: signed (HMAC-SHA256), expiring, scoped to one customer. Stdlib only.

Format: `v1.<payload>.<signature>`, both parts unpadded base64url; the payload is the
JSON `{"sub": customer_id, "iat": issued, "exp": expires}` (unix seconds) and the
signature covers the literal bytes `v1.<payload>`. Verification recomputes the MAC
and compares in constant time before it even parses the payload, so a tampered
token and an unknown one fail identically (`Unauthenticated`), as does an expired one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from projections.read.errors import Unauthenticated

_VERSION = "v1"
MIN_SECRET_BYTES = 16


@dataclass(frozen=True, slots=True)
class CustomerToken:
    customer_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"token secret must be at least {MIN_SECRET_BYTES} bytes")


def issue(secret: bytes, customer_id: str, *, now: int, ttl_seconds: int) -> str:
    """A token for `customer_id`, valid from `now` for `ttl_seconds`."""
    _check_secret(secret)
    if not customer_id:
        raise ValueError("customer_id must not be empty")
    if ttl_seconds <= 0:
        raise ValueError("ttl must be positive")
    body = json.dumps(
        {"sub": customer_id, "iat": now, "exp": now + ttl_seconds},
        separators=(",", ":"),
        sort_keys=True,
    )
    signed = f"{_VERSION}.{_b64(body.encode('utf-8'))}"
    return f"{signed}.{_b64(_mac(secret, signed))}"


def verify(secret: bytes, token: str, *, now: int) -> CustomerToken:
    """The token's claims, or `Unauthenticated` (same error for every failure)."""
    _check_secret(secret)
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise Unauthenticated()
    signed = f"{parts[0]}.{parts[1]}"
    try:
        given = _unb64(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise Unauthenticated() from exc
    if not hmac.compare_digest(given, _mac(secret, signed)):
        raise Unauthenticated()
    try:
        claims = json.loads(_unb64(parts[1]))
        token_value = CustomerToken(
            customer_id=str(claims["sub"]),
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated() from exc
    if now >= token_value.expires_at:
        raise Unauthenticated()
    return token_value


_TTL = re.compile(r"([0-9]+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """`90`, `90s`, `15m`, `12h`, `7d` -> seconds (ASCII digits, case and surrounding
    blanks ignored); anything else, or zero, is a `ValueError` that says what to write."""
    match = _TTL.fullmatch(text.strip().lower())
    if match is None or int(match[1]) <= 0:
        raise ValueError(f"invalid ttl {text!r}: use e.g. 3600, 15m, 12h, 7d")
    return int(match[1]) * _UNITS[match[2]]
