"""Request rate limits: token buckets in memory, one per key name, customer or address.

Each bucket allows `rate` requests a second on average and `burst` at once; a request
past that is refused with the seconds until the next one is allowed (429 with
`Retry-After`). Three limiters use this (`projections.http.auth.Limits`): per API
key, per customer (customer tokens and portal sessions), and per client address for
requests that prove no identity (failed authentication, the portal's link and
sign-out routes). The buckets live in this process only: several API processes each
allow the rate (size it per process). A rate of 0 switches a limit off.

Memory stays bounded by the callers active within one refill time (`burst / rate`):
once the buckets outnumber `sweep_at` (at first `min_sweep`), the full ones (a full
bucket is the same as none) are dropped, and the next sweep waits until the count
doubles, so a sweep costs amortized O(1) per request.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable

MIN_SWEEP = 10_000


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        min_sweep: int = MIN_SWEEP,
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate limit: rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, when]
        self._min_sweep = min_sweep
        self.sweep_at = min_sweep

    def _tokens(self, name: str, now: float) -> float:
        bucket = self._buckets.get(name)
        if bucket is None:
            return self.burst
        return min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)

    def _seconds_until_one(self, tokens: float) -> int:
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def take(self, name: str) -> int:
        """0 when `name` may make this request (one token is taken), else the whole
        seconds until it may (at least 1)."""
        if not self.rate:
            return 0
        now = self._clock()
        tokens = self._tokens(name, now)
        if tokens >= 1.0:
            self._buckets[name] = [tokens - 1.0, now]
            if len(self._buckets) > self.sweep_at:
                self._sweep(now)
            return 0
        self._buckets[name] = [tokens, now]
        return self._seconds_until_one(tokens)

    def wait(self, name: str) -> int:
        """What `take` would answer, without taking: 0 while `name` has a token left."""
        if not self.rate:
            return 0
        tokens = self._tokens(name, self._clock())
        return 0 if tokens >= 1.0 else self._seconds_until_one(tokens)

    def _sweep(self, now: float) -> None:
        full = [n for n in self._buckets if self._tokens(n, now) >= self.burst]
        for name in full:
            del self._buckets[name]
        self.sweep_at = max(self._min_sweep, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)


def address_key(host: str | None) -> str:
    """The bucket of a client address: an IPv4 address itself, an IPv6 address by its
    /64 (one host usually holds a whole /64, so single addresses would not limit it),
    anything else (no address, a test client's name) as given. The address is the
    ASGI client's: behind a proxy, uvicorn takes it from `X-Forwarded-For` of the
    proxies in `FORWARDED_ALLOW_IPS` (default the loopback) and ignores it otherwise."""
    if not host:
        return "-"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client a.b.c.d
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
