"""Customer tokens: signed (HMAC-SHA256), expiring, scoped to one customer. Stdlib only.

Format: `v1.<payload>.<signature>`, both parts unpadded base64url; the payload is the
JSON `{"sub": customer_id, "iat": issued, "exp": expires}` (unix seconds) and the
signature covers the literal bytes `v1.<payload>`. Verification recomputes the MAC
and compares in constant time before it even parses the payload, so a tampered
token and an unknown one fail identically (`Unauthenticated`), as does an expired one.

One string per token: a token is ASCII, and each part must be the canonical
encoding of its bytes (no padding, no standard-alphabet characters, no stray bits in
the last character); any other spelling of the same bytes is refused. A token lives
at most `MAX_TTL_SECONDS` (one year): `issue` and `parse_ttl` refuse longer, and
`verify` refuses a token whose claims span longer, whoever signed it.
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
MAX_TTL_SECONDS = 366 * 86_400
_PART = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class CustomerToken:
    customer_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """The bytes of a canonical unpadded base64url part; `ValueError` for any other
    spelling (so each token has exactly one string)."""
    if _PART.fullmatch(text) is None or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical encoding")
    return data


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
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be between 1 second and {MAX_TTL_SECONDS // 86_400} days")
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
    if not token.isascii():
        raise Unauthenticated()
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
    lifetime = token_value.expires_at - token_value.issued_at
    if now >= token_value.expires_at or not 0 < lifetime <= MAX_TTL_SECONDS:
        raise Unauthenticated()
    return token_value


_TTL = re.compile(r"([0-9]+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """`90`, `90s`, `15m`, `12h`, `7d` -> seconds (ASCII digits, case and surrounding
    blanks ignored); anything else, zero, or more than `MAX_TTL_SECONDS` is a
    `ValueError` that says what to write."""
    match = _TTL.fullmatch(text.strip().lower())
    if match is None or len(match[1]) > 12 or int(match[1]) <= 0:
        raise ValueError(f"invalid ttl {text!r}: use e.g. 3600, 15m, 12h, 7d")
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds > MAX_TTL_SECONDS:
        raise ValueError(f"ttl {text!r} is longer than {MAX_TTL_SECONDS // 86_400} days")
    return seconds
