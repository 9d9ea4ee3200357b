"""Per-key request rate limits: a token bucket in memory for each key name.

Each key may make `rate` requests a second on average and `burst` at once; a request
past that is refused with the seconds until the next one is allowed (429 with
`Retry-After`). The buckets live in this process only: several API processes each
allow the rate (size it per process). A rate of 0 switches the limit off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate limit: rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, when]

    def take(self, name: str) -> int:
        """0 when `name` may make this request (one token is taken), else the whole
        seconds until it may (at least 1)."""
        if not self.rate:
            return 0
        now = self._clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / self.rate))
