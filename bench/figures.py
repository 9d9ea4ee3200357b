"""What the benchmark report shows: the headline figures with the issues' targets, and
the scaling tables' columns. Plain data, read by `bench/report.py`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def number(value: float) -> str:
    """Thousands separated from 1,000 up; fewer decimals the larger the value."""
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass(frozen=True)
class Target:
    """A headline figure: which result and metric, and the issue's target (if any)."""

    label: str
    bench: str
    figure: str
    where: Mapping[str, Any]
    metric: str
    unit: str
    op: str | None = None  # ">=" or "<"
    bound: float | None = None

    def met(self, value: float) -> bool | None:
        if self.op is None or self.bound is None:
            return None
        return value >= self.bound if self.op == ">=" else value < self.bound

    def describe(self) -> str:
        if self.op is None or self.bound is None:
            return "-"
        return f"{self.op} {number(self.bound)} {self.unit}"


TARGETS: tuple[Target, ...] = (
    Target("SDK `report_many` + flush", "produce", "report_many", {}, "events_per_s",
           "events/s", ">=", 100_000),
    Target("SDK `report` (one call per event) + flush", "produce", "report", {},
           "events_per_s", "events/s", ">=", 30_000),
    Target("SDK encode alone (no broker)", "produce", "encode_direct", {}, "events_per_s",
           "events/s"),
    Target("rating `apply`, metered, one core", "rating", "apply", {"model": "metered"},
           "events_per_cpu_s", "events/CPU-s", ">=", 200_000),
    Target("rating `apply`, credits, one core", "rating", "apply", {"model": "credits"},
           "events_per_cpu_s", "events/CPU-s", ">=", 200_000),
    Target("rating `apply`, balance, one core", "rating", "apply", {"model": "balance"},
           "events_per_cpu_s", "events/CPU-s", ">=", 200_000),
    Target("fold worker, sustained", "fold", "throughput", {}, "events_per_s", "events/s",
           ">=", 20_000),
    Target("publish -> snapshot p50 at 1,000 events/s", "fold", "latency", {"rate": 1000},
           "p50_ms", "ms"),
    Target("publish -> snapshot p99 at 1,000 events/s", "fold", "latency", {"rate": 1000},
           "p99_ms", "ms", "<", 100),
    Target("publish -> snapshot p50 at 5,000 events/s", "fold", "latency", {"rate": 5000},
           "p50_ms", "ms"),
    Target("publish -> snapshot p99 at 5,000 events/s", "fold", "latency", {"rate": 5000},
           "p99_ms", "ms", "<", 100),
    Target("period close", "close", "close", {}, "events_per_s", "events/s", ">=", 100_000),
    Target("entitlement check p50 at 1,000 req/s", "api", "entitlement", {"rate": 1000},
           "p50_ms", "ms"),
    Target("entitlement check p99 at 1,000 req/s", "api", "entitlement", {"rate": 1000},
           "p99_ms", "ms", "<", 5),
)  # fmt: skip


@dataclass(frozen=True)
class Column:
    header: str
    figure: str
    metric: str
    where: Mapping[str, Any] = field(default_factory=dict)


def _percentiles(figure: str) -> tuple[Column, ...]:
    """The p50, p99 and max columns (ms) of a latency figure."""
    return tuple(Column(f"{q} ms", figure, f"{q}_ms") for q in ("p50", "p99", "max"))


_PRODUCE = (
    Column("`report_many` events/s", "report_many", "events_per_s"),
    Column("`report` events/s", "report", "events_per_s"),
    Column("encode events/s", "encode_direct", "events_per_s"),
    Column("`report_many` CPU µs/event", "report_many", "cpu_us_per_event"),
    Column("`report` CPU µs/event", "report", "cpu_us_per_event"),
)
_RATING = tuple(
    Column(f"{m} {what}", "apply", metric, {"model": m})
    for m in ("metered", "credits", "balance")
    for what, metric in (("events/CPU-s", "events_per_cpu_s"), ("CPU µs/event", "cpu_us_per_event"))
)
_FOLD = (
    Column("sustained events/s", "throughput", "events_per_s"),
    Column("incl. startup events/s", "throughput", "events_per_s_incl_startup"),
    Column("startup s", "throughput", "startup_seconds"),
)
_LATENCY = (*_percentiles("latency"), Column("observed / published", "latency", "observed"))
_CLOSE = (
    Column("events/s", "close", "events_per_s"),
    Column("close s", "close", "seconds"),
    Column("invoices", "close", "invoices"),
)
_API = (
    *_percentiles("entitlement"),
    Column("achieved req/s", "entitlement", "requests_per_s"),
    Column("non-200", "entitlement", "errors"),
)

# (bench, axis, columns), in report order; a view without runs is left out.
VIEWS: tuple[tuple[str, str, tuple[Column, ...]], ...] = (
    ("produce", "events", _PRODUCE),
    ("produce", "customers", _PRODUCE),
    ("produce", "partitions", _PRODUCE),
    ("rating", "events", _RATING),
    ("rating", "customers", _RATING),
    ("fold", "events", _FOLD),
    ("fold", "customers", _FOLD),
    ("fold", "partitions", _FOLD),
    ("fold", "rate", _LATENCY),
    ("close", "events", _CLOSE),
    ("close", "customers", _CLOSE),
    ("close", "partitions", _CLOSE),
    ("close", "workers", _CLOSE),
    ("api", "rate", _API),
    ("api", "customers", _API),
)

BENCH_TITLES = {
    "produce": "Producer SDK (`bench/produce.py`)",
    "rating": "Rating, pure `billing.ledger.apply` (`bench/rating.py`)",
    "fold": "Fold worker (`bench/fold.py`)",
    "close": "Period close (`bench/close.py`)",
    "api": "Entitlement API (`bench/api.py`)",
}
