"""Entitlement-check latency and throughput of `streambill api`, measured on loopback.

    python bench/api.py [--rate 1000] [--duration 10] [--connections 16] [--customers 1000]

Fills Redis (STREAMBILL_REDIS_URL; keys under a fresh prefix, deleted afterwards) with
`--customers` snapshots, starts the API in a separate process (uvicorn, one worker) and
drives `GET /v1/customers/{id}/entitlements/tokens` from this process over raw
keep-alive HTTP/1.1 connections. Open loop: request i is due at t0 + i/rate, and its
latency counts from that due time, so queueing behind a slow answer is not hidden.
`--rate 0` runs closed loop (as fast as the connections go) for peak throughput.
Prints p50/p90/p99/max and the achieved throughput; target p99 < 5 ms at 1,000 req/s.
The figures are also printed as one `RESULT {json}` line, read by `bench/run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import redis
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from projections.http import tokens  # noqa: E402
from projections.read.model import Source, to_write  # noqa: E402
from projections.read.redis_store import RedisStore  # noqa: E402
from projections.read.store import Keys  # noqa: E402
from streambill.config.settings import CUSTOMER_STATE, Settings  # noqa: E402
from streambill.local.procs import free_port  # noqa: E402
from tests.projections import samples  # noqa: E402

SECRET = "bench-token-secret-0123456789abcdef"
ADMIN = "bench-admin-key-0123456789abcdef"
T = TypeVar("T")


def serve(port: int, prefix: str) -> None:
    import uvicorn

    from projections.http.app import create_app
    from streambill.sdk.client import UsageClient

    settings = Settings(
        read_model_prefix=prefix, token_secret=SecretStr(SECRET), admin_key=SecretStr(ADMIN)
    )
    store = RedisStore.from_url(settings.redis_url, Keys(prefix=prefix))
    with UsageClient(settings) as sdk:
        app = create_app(settings, store, sdk)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def fill(store: RedisStore, customers: int) -> None:
    gen = store.ensure_generation()
    writes = [
        to_write(samples.metered_state(f"cus_{i}"), Source(CUSTOMER_STATE, i % 12, i))
        for i in range(customers)
    ]
    for start in range(0, len(writes), 500):
        store.apply(gen, writes[start : start + 500])


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when available (less client overhead on the timings)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("API did not start")


async def one_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def load(args: argparse.Namespace, port: int) -> tuple[list[float], int, float]:
    token_of = {
        i: tokens.issue(SECRET.encode(), f"cus_{i}", now=int(time.time()), ttl_seconds=3600)
        for i in range(args.customers)
    }
    requests = [
        (
            f"GET /v1/customers/cus_{i}/entitlements/tokens HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token_of[i]}\r\n\r\n"
        ).encode()
        for i in range(args.customers)
    ]
    latencies: list[float] = []
    errors = 0
    conns = args.connections
    start = time.perf_counter() + 0.05
    stop_at = start + args.duration
    total = int(args.rate * args.duration)

    async def connection(k: int) -> None:
        """Open loop: this connection owns requests k, k + C, k + 2C, ... each due at
        start + i/rate (late ones go at once, their lateness counted). Closed loop
        (rate 0): back to back until the duration is over."""
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while (i < total) if args.rate else (time.perf_counter() < stop_at):
            due = start + i / args.rate if args.rate else time.perf_counter()
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await one_request(reader, writer, requests[i % len(requests)])
            latencies.append(time.perf_counter() - due)
            errors += status != 200
            i += conns
        writer.close()

    await asyncio.gather(*(connection(k) for k in range(conns)))
    return latencies, errors, time.perf_counter() - start


def pct(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))
    return sorted_values[index] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s; 0 = closed loop")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at the rate, unmeasured")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.prefix)
        return 0

    settings = Settings()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    store = RedisStore.from_url(settings.redis_url, Keys(prefix=prefix))
    fill(store, args.customers)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--prefix", prefix],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        run(wait_ready(port))
        if args.warmup:
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
            run(load(warm, port))
        latencies, errors, elapsed = asyncio.run(load(args, port))
    finally:
        server.terminate()
        server.wait(10)
        client = redis.Redis.from_url(settings.redis_url)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    values = sorted(latencies)
    mode = f"open loop at {args.rate:.0f} req/s" if args.rate else "closed loop"
    print(f"entitlement check, {mode}, {args.connections} connections, {args.customers} customers")
    print(f"requests {len(values)}  non-200 {errors}  elapsed {elapsed:.2f}s")
    print(f"throughput {len(values) / elapsed:.0f} req/s")
    print(
        f"latency ms  p50 {pct(values, 50):.2f}  p90 {pct(values, 90):.2f}  "
        f"p99 {pct(values, 99):.2f}  max {values[-1] * 1000:.2f}"
    )
    params = {"rate": args.rate, "connections": args.connections, "customers": args.customers}
    metrics = {
        "p50_ms": pct(values, 50),
        "p90_ms": pct(values, 90),
        "p99_ms": pct(values, 99),
        "max_ms": values[-1] * 1000,
        "requests_per_s": len(values) / elapsed,
        "requests": len(values),
        "errors": errors,
    }
    result = {"bench": "api", "figure": "entitlement", "params": params, "metrics": metrics}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
