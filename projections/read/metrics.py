"""Prometheus metrics of the projector, on a registry owned by the caller.

The composition root (`projections.commands`) makes the registry and serves it on
`projector_metrics_port` when that is set; the projector only records. Topic labels are
the physical topic names, as in the worker's metrics and in `kafka-consumer-groups`.
Lag is the high watermark minus the projector's position (the next offset it reads),
taken when it commits a position, i.e. after Redis recorded it: the read models hold
everything below the position, so the lag counts exactly the records not yet in Redis.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A batch is up to `batch_size` records (500) written with one Lua script each.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProjectorMetrics:
    """Records applied and skipped, batches and their duration, lag, last batch time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.applied = Counter(
            "streambill_projector_records_applied",
            "Writes stored in the read models, by source topic",
            ["topic"],
            registry=registry,
        )
        self.skipped = Counter(
            "streambill_projector_records_skipped",
            "Records not stored, by reason (duplicate: at or below the stored offset; "
            "undecodable: bad bytes or a record that does not belong on its topic)",
            ["reason"],
            registry=registry,
        )
        self.batches = Counter(
            "streambill_projector_batches", "Non-empty batches applied", registry=registry
        )
        self.resets = Counter(
            "streambill_projector_resets",
            "Read models found lost or rebuilt (generation changed), partitions reseeked",
            registry=registry,
        )
        self.batch_duration = Histogram(
            "streambill_projector_batch_duration_seconds",
            "Seconds from a batch consumed to its positions stored and handed to Kafka",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.last_batch = Gauge(
            "streambill_projector_last_batch_timestamp_seconds",
            "Unix time of the last non-empty batch applied",
            registry=registry,
        )
        self.lag = Gauge(
            "streambill_projector_consumer_lag",
            "High watermark minus the position stored in Redis (records not yet projected)",
            ["topic", "partition"],
            registry=registry,
        )
        self.position = Gauge(
            "streambill_projector_position",
            "Next offset to read, as stored in Redis",
            ["topic", "partition"],
            registry=registry,
        )

    def record_batch(
        self,
        applied: Mapping[str, int],
        skipped: Mapping[str, int],
        seconds: float,
        at: float,
    ) -> None:
        """One non-empty batch: writes stored per topic, skipped per reason, its
        duration and its end (unix time)."""
        for topic, n in applied.items():
            self.applied.labels(topic=topic).inc(n)
        for reason, n in skipped.items():
            if n:
                self.skipped.labels(reason=reason).inc(n)
        self.batches.inc()
        self.batch_duration.observe(seconds)
        self.last_batch.set(at)

    def record_reset(self) -> None:
        self.resets.inc()

    def record_position(self, topic: str, partition: int, position: int, highwater: int) -> None:
        """`position` is the next offset to read; the lag never shows below 0 (a cached
        high watermark may be older than the position)."""
        labels = {"topic": topic, "partition": str(partition)}
        self.position.labels(**labels).set(position)
        self.lag.labels(**labels).set(max(highwater - position, 0))

    def forget(self, topic: str, partition: int) -> None:
        """A revoked partition: its next owner reports it, this process no longer does."""
        for gauge in (self.lag, self.position):
            gauge.remove(topic, str(partition))  # a no-op for a partition never reported
