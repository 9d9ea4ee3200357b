"""Progress lines (stderr) and Prometheus metrics of a period close.

`Progress.tick` is called per batch; it prints at most one line per `interval`
seconds: events read of the total the plan will read, customers, rate, time left.
`CloseMetrics` registers its metrics in the registry it is given (the process's
registry, served by the same endpoint as the other processes' metrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge


class CloseMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_read = Counter(
            "streambill_close_events_read_total", "Events read by period closes", registry=registry
        )
        self.progress = Gauge(
            "streambill_close_progress_ratio",
            "Share of the current close's planned reads done (0..1)",
            registry=registry,
        )
        self.invoices = Counter(
            "streambill_close_invoices_total",
            "Invoices of period closes by outcome (sent, already_on_topic, dry_run)",
            ["outcome"],
            registry=registry,
        )
        self.closes = Counter(
            "streambill_close_runs_total",
            "Period close runs by status (closed, no_op, dry_run, refused, failed)",
            ["status"],
            registry=registry,
        )
        self.last_closed = Gauge(
            "streambill_close_last_closed_month",
            "Last closed period as year*100+month (e.g. 202503)",
            registry=registry,
        )
        self.duration = Gauge(
            "streambill_close_duration_seconds", "Duration of the last close", registry=registry
        )


@dataclass
class Progress:
    """Progress of one close; `total` is the number of records the plan reads."""

    label: str
    total: int
    out: TextIO | None
    metrics: CloseMetrics | None = None
    interval: float = 2.0
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    customers: int = 0
    started: float = field(default=0.0)
    _last: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self._last = self.clock()

    def tick(self, events: int, customers: int) -> None:
        self.done += events
        self.customers = max(self.customers, customers)
        if self.metrics is not None:
            self.metrics.events_read.inc(events)
            self.metrics.progress.set(self.done / self.total if self.total else 1.0)
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self.line()

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> None:
        if self.out is None:
            return
        rate = self.rate()
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        self.out.write(
            f"{self.label}: {self.done:,}/{self.total:,} events ({pct:.0f}%),"
            f" {self.customers:,} customers, {rate:,.0f} events/s, ~{left:.0f}s left\n"
        )
        self.out.flush()
