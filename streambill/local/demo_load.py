"""The demo's population and its day of usage, as domain events (no I/O).

Deterministic for a given seed, so a test can regenerate exactly what the demo
published and fold it with the billing functions. Shapes follow the seed's
examples: LLM calls with a model and an input/output token breakdown (metered
token plans and the `dev-api` balance plan), image generations by complexity,
queries simple or complex, transcription seconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from billing.events import (
    AccountEvent,
    CreditsPurchased,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)

# Share of the population per example plan (every plan of examples/catalog.yaml).
PLAN_MIX: tuple[tuple[str, int], ...] = (
    ("starter", 20),
    ("writer", 14),
    ("scale", 5),
    ("team", 10),
    ("voice", 10),
    ("image-credits", 13),
    ("query-credits", 8),
    ("dev-api", 20),
)
FEATURE_OF_PLAN = {
    "starter": "tokens",
    "writer": "tokens",
    "scale": "tokens",
    "team": "tokens",
    "dev-api": "tokens",
    "voice": "transcription",
    "image-credits": "image_generation",
    "query-credits": "query",
}
# Requests per hour of the day (UTC), relative: quiet nights, busy afternoons.
HOURLY = (2, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 12, 12, 12, 13, 13, 12, 11, 9, 7, 6, 5, 4, 3)


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    customer_id: str
    plan_id: str
    activity: float  # relative share of the day's requests (heavy-tailed)


@dataclass(frozen=True, slots=True)
class Population:
    customers: tuple[DemoCustomer, ...]
    account_events: tuple[AccountEvent, ...]


def population(count: int, anchor: datetime, seed: int, run_id: str) -> Population:
    """`count` customers over every plan, subscribed at `anchor`; credit packs bought
    and wallets funded a minute later. The first len(PLAN_MIX) customers take one plan
    each, so even a tiny population covers every plan."""
    rng = random.Random(seed)
    plans = [p for p, _ in PLAN_MIX]
    weights = [w for _, w in PLAN_MIX]
    customers: list[DemoCustomer] = []
    events: list[AccountEvent] = []
    funded = anchor + timedelta(minutes=1)
    for i in range(count):
        plan = plans[i] if i < len(plans) else rng.choices(plans, weights)[0]
        cid = f"cus_{run_id}_{i:05d}"
        # Pareto-distributed activity: most customers are light, a few are heavy.
        customers.append(DemoCustomer(cid, plan, min(rng.paretovariate(1.6), 40.0)))
        seats = rng.randint(2, 25) if plan == "team" else 1
        events.append(SubscriptionStarted(f"{cid}-sub", cid, anchor, plan, seats))
        if plan == "image-credits":
            packs = rng.randint(1, 4)
            events.append(CreditsPurchased(f"{cid}-pack", cid, funded, "credits-100", packs))
        elif plan == "query-credits":
            events.append(CreditsPurchased(f"{cid}-pack", cid, funded, "credits-500k", 1))
        elif plan == "dev-api":
            amount = Decimal(rng.choice(("0.50", "1.00", "2.00", "5.00", "20.00")))
            events.append(WalletDeposited(f"{cid}-deposit", cid, funded, amount, "USD"))
    return Population(tuple(customers), tuple(events))


def usage_day(
    customers: Sequence[DemoCustomer], count: int, day: datetime, seed: int, run_id: str
) -> Iterator[UsageRecorded]:
    """`count` usage events over the 24 hours from `day`, in time order, each from a
    customer picked by activity. Event ids are `<run_id>-u<n>`."""
    rng = random.Random(seed + 1)
    cum: list[float] = []
    total = 0.0
    for c in customers:
        total += c.activity
        cum.append(total)
    per_hour = _split(count, HOURLY)
    n = 0
    for hour, in_hour in enumerate(per_hour):
        start = day + timedelta(hours=hour)
        offsets = sorted(rng.randrange(3_600_000) for _ in range(in_hour))
        picks = rng.choices(customers, cum_weights=cum, k=in_hour)
        for millis, customer in zip(offsets, picks, strict=True):
            at = start + timedelta(milliseconds=millis)
            feature, quantity, props = _request(rng, customer.plan_id)
            yield UsageRecorded(
                f"{run_id}-u{n:07d}", customer.customer_id, feature, quantity, at, props
            )
            n += 1


def _split(count: int, weights: Sequence[int]) -> list[int]:
    """`count` split by `weights`, largest remainder, summing exactly to `count`."""
    total = sum(weights)
    raw = [count * w / total for w in weights]
    out = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[: count - sum(out)]:
        out[i] += 1
    return out


def _request(rng: random.Random, plan_id: str) -> tuple[str, Decimal, dict[str, str]]:
    """(feature, quantity, properties) of one request of a customer on `plan_id`."""
    feature = FEATURE_OF_PLAN[plan_id]
    if feature == "tokens":
        large = rng.random() < 0.25
        model = "large" if large else "small"
        prompt = int(rng.lognormvariate(6.8 if large else 6.2, 0.8))
        completion = int(rng.lognormvariate(5.8 if large else 5.3, 0.7))
        props = {"model": model, "input_tokens": str(prompt), "output_tokens": str(completion)}
        return feature, Decimal(prompt + completion), props
    if feature == "image_generation":
        complexity = rng.choices(("standard", "complex", "ultra"), (70, 25, 5))[0]
        size = "1024x1024" if complexity == "standard" else "2048x2048"
        return feature, Decimal(1), {"complexity": complexity, "size": size}
    if feature == "query":
        kind = "complex" if rng.random() < 0.2 else "simple"
        return feature, Decimal(1), {"kind": kind}
    seconds = Decimal(rng.randint(20, 3600)) / 10  # 2.0 to 360.0 s, tenths
    return feature, seconds, {"model": "whisper-1"}
