"""Event streams with a known outcome, for every plan of examples/catalog.yaml."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from billing.events import (
    CreditsPurchased,
    Event,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)

# plan -> (feature, properties choices, quantity range)
USAGE_SHAPES: dict[str, tuple[str, list[dict[str, str]], tuple[int, int]]] = {
    "starter": ("tokens", [{}], (100, 5000)),
    "writer": ("tokens", [{}], (100, 5000)),
    "scale": ("tokens", [{}], (1000, 50000)),
    "team": ("tokens", [{}], (100, 5000)),
    "voice": ("transcription", [{}], (1, 600)),
    "image-credits": (
        "image_generation",
        [{"complexity": "standard"}, {"complexity": "complex"}],
        (1, 3),
    ),
    "query-credits": ("query", [{"kind": "simple"}, {"kind": "complex"}], (1, 2)),
    "dev-api": ("tokens", [{"model": "small"}, {"model": "large"}], (100, 4000)),
}
PLANS = tuple(USAGE_SHAPES)


def account_opening(customer: str, plan: str, at: datetime) -> list[Event]:
    """Subscription plus the first top-up a prepaid plan needs."""
    events: list[Event] = [
        SubscriptionStarted(
            f"{customer}-sub", customer, at, plan, seats=3 if plan == "team" else 1
        )
    ]
    later = at + timedelta(seconds=1)
    if plan == "image-credits":
        events.append(CreditsPurchased(f"{customer}-buy", customer, later, "credits-100", 50))
    elif plan == "query-credits":
        events.append(CreditsPurchased(f"{customer}-buy", customer, later, "credits-500k", 2))
    elif plan == "dev-api":
        events.append(WalletDeposited(f"{customer}-dep", customer, later, Decimal("25"), "USD"))
    return events


def usage(customer: str, plan: str, n: int, at: datetime, rng: random.Random) -> UsageRecorded:
    feature, props_choices, (lo, hi) = USAGE_SHAPES[plan]
    quantity = rng.randint(lo, hi)
    props = dict(rng.choice(props_choices))
    if plan == "dev-api":
        inp = rng.randint(0, quantity)
        props["input_tokens"] = str(inp)
        props["output_tokens"] = str(quantity - inp)
    return UsageRecorded(f"{customer}-u{n}", customer, feature, Decimal(quantity), at, props)


def customers(n: int) -> list[tuple[str, str]]:
    return [(f"cus_{i:05d}", PLANS[i % len(PLANS)]) for i in range(n)]


def usage_stream(
    people: list[tuple[str, str]],
    total: int,
    start: datetime,
    rng: random.Random,
    duplicate_rate: float = 0.0,
) -> Iterator[tuple[UsageRecorded, bool]]:
    """`total` usage events over `people`, event times rising by 1 ms; with
    probability `duplicate_rate` an already sent event is sent again (flag True)."""
    sent: list[UsageRecorded] = []
    for i in range(total):
        if sent and rng.random() < duplicate_rate:
            yield rng.choice(sent[-1000:]), True
            continue
        customer, plan = people[rng.randrange(len(people))]
        event = usage(customer, plan, i, start + timedelta(milliseconds=i), rng)
        sent.append(event)
        yield event, False
