"""Events per second through `billing.ledger.apply`, per consumption model, one core.

Usage: python bench/rating.py [--events N] [--customers C] [--repeat R] [--gc-gen0 T]

Builds N usage events per model up front (building them is not measured), spread
over C customers of one example plan per model, all in one billing period, then
times folding them through `apply` (state kept per customer, as the fold worker
does). Prints the best of R runs, by CPU time of this process and by wall
time. Target (issue 3): >= 200,000 events/s per model.

The cyclic garbage collector costs 15-20 % here (every event allocates a few small
containers). The fold worker and the close raise the generation-0 threshold to 50,000
at startup, so by default the bench does too; `--gc-gen0 0` measures with Python's
default threshold (700) instead.

Each model's figures are also printed as one `RESULT {json}` line, read by `bench/run`.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import yaml

from billing import bounds
from billing.catalog import Catalog, parse_catalog
from billing.events import (
    CreditsPurchased,
    Event,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from billing.ledger import CustomerState, apply, new_state

START = datetime(2026, 1, 1, tzinfo=UTC)
# The generation-0 threshold the processes that call `apply` run with (processors/worker/cli.py
# for the fold worker, processors/close/setup.py for the close): the bench measures
# `apply` under the same garbage-collector setting. `--gc-gen0 0` shows Python's default.
PROCESS_GEN0 = 50_000
CATALOG = Path(__file__).resolve().parent.parent / "examples" / "catalog.yaml"


def setup(model: str, customers: int, catalog: Catalog) -> dict[str, CustomerState]:
    plan = {"metered": "writer", "credits": "image-credits", "balance": "dev-api"}[model]
    states: dict[str, CustomerState] = {}
    for c in range(customers):
        cid = f"cus_{c}"
        s = new_state(cid)
        setup_events: list[Event] = [SubscriptionStarted(f"sub-{cid}", cid, START, plan)]
        if model == "credits":
            setup_events.append(CreditsPurchased(f"buy-{cid}", cid, START, "credits-100", 10**6))
        if model == "balance":
            setup_events.append(WalletDeposited(f"dep-{cid}", cid, START, Decimal("1e9"), "USD"))
        for e in setup_events:
            s, eff = apply(s, e, catalog)
            assert eff.rejection is None, eff.rejection
        states[cid] = s
    return states


def usage(model: str, n: int, customers: int) -> list[UsageRecorded]:
    out: list[UsageRecorded] = []
    complexities = ("standard", "complex", "ultra")
    models = ("small", "large")
    for i in range(n):
        cid = f"cus_{i % customers}"
        ts = START + timedelta(seconds=1 + i % 2_000_000)
        if model == "metered":
            out.append(UsageRecorded(f"e{i}", cid, "tokens", Decimal(1000 + i % 500), ts))
        elif model == "credits":
            props = {"complexity": complexities[i % 3]}
            out.append(UsageRecorded(f"e{i}", cid, "image_generation", Decimal(1), ts, props))
        else:
            q_in, q_out = 700 + i % 300, 300 + i % 100
            props = {"model": models[i % 2], "input_tokens": str(q_in), "output_tokens": str(q_out)}
            out.append(UsageRecorded(f"e{i}", cid, "tokens", Decimal(q_in + q_out), ts, props))
    return out


def run(model: str, n: int, customers: int, repeat: int, catalog: Catalog) -> tuple[float, float]:
    """Best events/s over `repeat` runs, by process CPU time and by wall time (the
    machine may be shared; CPU time is the one-core figure)."""
    events = usage(model, n, customers)
    best_cpu = best_wall = 0.0
    for _ in range(repeat):
        states = setup(model, customers, catalog)
        c0, w0 = time.process_time(), time.perf_counter()
        for e in events:
            cid = e.customer_id
            states[cid], eff = apply(states[cid], e, catalog)
            if eff.rejection is not None:
                raise SystemExit(f"unexpected rejection: {eff.rejection}")
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        best_cpu, best_wall = max(best_cpu, n / cpu), max(best_wall, n / wall)
    return best_cpu, best_wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--customers", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default="metered,credits,balance")
    ap.add_argument(
        "--gc-gen0",
        type=int,
        default=PROCESS_GEN0,
        help=f"gc generation-0 threshold (default {PROCESS_GEN0:,}, as the fold worker and the"
        " close processes set it; 0 keeps Python's default of 700)",
    )
    args = ap.parse_args()
    if args.gc_gen0:
        gc.set_threshold(args.gc_gen0, *gc.get_threshold()[1:])
    bounds.install()  # as every streambill process does (streambill.cli.main.main)
    catalog = parse_catalog(yaml.safe_load(CATALOG.read_text()))
    print(
        f"apply() throughput, {args.events:,} events, {args.customers} customers,"
        f" best of {args.repeat}, gc thresholds {gc.get_threshold()}"
    )
    for model in args.models.split(","):
        cpu, wall = run(model, args.events, args.customers, args.repeat, catalog)
        verdict = "ok" if cpu >= 200_000 else "BELOW TARGET"
        print(
            f"  {model:8s} {cpu:10,.0f} events/s per CPU second  "
            f"({wall:10,.0f} by wall clock)   target 200,000: {verdict}"
        )
        params = {"model": model, "events": args.events, "customers": args.customers}
        metrics = {"events_per_cpu_s": cpu, "events_per_s": wall, "cpu_us_per_event": 1e6 / cpu}
        result = {"bench": "rating", "figure": "apply", "params": params, "metrics": metrics}
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
