"""Prometheus metrics of the fold worker, on a registry owned by the caller."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A batch is what arrived meanwhile, up to `worker_batch_size` (20,000) messages.
BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    """Events in, applied, deduplicated, rejected by reason, lag and last offsets, and
    how long a batch takes from the start of its fold to its acknowledgement."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_in = Counter(
            "streambill_worker_events_in", "Source messages received", registry=registry
        )
        self.applied = Counter(
            "streambill_worker_events_applied", "Events folded into state", registry=registry
        )
        self.deduplicated = Counter(
            "streambill_worker_events_deduplicated",
            "Events skipped as duplicates of an applied event_id",
            registry=registry,
        )
        self.redelivered = Counter(
            "streambill_worker_events_redelivered",
            "Messages skipped because the state already reflects their offset",
            registry=registry,
        )
        self.gap_filled = Counter(
            "streambill_worker_messages_gap_filled",
            "Messages Faust skipped around a rebalance, read from the log by the worker",
            registry=registry,
        )
        self.records_repaired = Counter(
            "streambill_worker_records_repaired",
            "Customer records the store held otherwise than the changelog after a "
            "rebalance (the runtime's recovery missed them), replaced before folding",
            registry=registry,
        )
        self.rejected = Counter(
            "streambill_worker_events_rejected",
            "Dead letters sent, by reason",
            ["reason"],
            registry=registry,
        )
        self.lag = Gauge(
            "streambill_worker_consumer_lag",
            "High watermark minus next offset to process",
            ["topic", "partition"],
            registry=registry,
        )
        self.batch_duration = Histogram(
            "streambill_worker_batch_duration_seconds",
            "Seconds from the start of a batch's fold to its acknowledgement (durable)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.last_offset = Gauge(
            "streambill_worker_last_applied_offset",
            "Last offset processed and made durable",
            ["topic", "partition"],
            registry=registry,
        )

    def record_batch(self, counts: Mapping[str, int], rejected: Mapping[str, int]) -> None:
        self.events_in.inc(counts.get("in", 0))
        self.applied.inc(counts.get("applied", 0))
        self.deduplicated.inc(counts.get("deduplicated", 0))
        self.redelivered.inc(counts.get("redelivered", 0))
        for reason, n in rejected.items():
            self.rejected.labels(reason=reason).inc(n)

    def record_batch_duration(self, seconds: float) -> None:
        self.batch_duration.observe(seconds)

    def record_gap_filled(self, n: int) -> None:
        if n:
            self.gap_filled.inc(n)

    def record_records_repaired(self, n: int) -> None:
        if n:
            self.records_repaired.inc(n)

    def record_position(self, topic: str, partition: int, offset: int, highwater: int) -> None:
        self.last_offset.labels(topic=topic, partition=str(partition)).set(offset)
        self.lag.labels(topic=topic, partition=str(partition)).set(max(highwater - offset - 1, 0))
