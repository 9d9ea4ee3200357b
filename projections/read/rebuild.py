"""`streambill projections rebuild`: clear the read models, replay the topics.

Reads every partition of the three source topics from the beginning up to the high
watermarks taken at the start, with the same `BatchApplier` as the live projector,
so the result equals the live read models key for key (`store.dump()`).

Commit order: clear (new generation) -> per batch: apply writes with offsets ->
advance positions. A crash leaves a partial build of the new generation; running
rebuild again clears it and starts over, and a live projector adopts the new
generation and resumes from its positions. Nothing is committed to Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from projections.read.projector import BatchApplier

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RebuildResult:
    records: int
    applied: int
    skipped_bad: int
    seconds: float


def _targets(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (low, high) watermarks of every non-empty partition."""
    meta = consumer.list_topics(timeout=10)
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for topic in topics:
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise RuntimeError(f"topic {topic} is missing: run `streambill topics create`")
        for partition in info.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            if high > low:
                out[(topic, partition)] = (low, high)
    return out


def rebuild(
    consumer: Consumer,
    applier: BatchApplier,
    *,
    progress: Progress | None = None,
    batch_size: int = 2000,
    idle_timeout: float = 30.0,
) -> RebuildResult:
    """Rebuild from the beginning. `consumer` must be a fresh, unsubscribed consumer."""
    started = time.monotonic()
    generation = applier.store.clear()
    targets = _targets(consumer, sorted(applier.logical))
    total = sum(high - low for low, high in targets.values())
    remaining = {tp: high for tp, (_, high) in targets.items()}
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in targets])
    done = 0
    last_progress = 0.0
    last_record = time.monotonic()
    while remaining:
        records = consumer.consume(num_messages=batch_size, timeout=0.5)
        now = time.monotonic()
        if not records:
            if now - last_record > idle_timeout:
                raise TimeoutError(f"no records for {idle_timeout}s; still waiting on {remaining}")
            continue
        last_record = now
        # Only what lies below the start watermarks belongs to this rebuild.
        wanted = [
            r
            for r in records
            if r.error() is None
            and (r.topic(), r.partition()) in remaining
            and (r.offset() or 0) < remaining[(r.topic() or "", r.partition() or 0)]
        ]
        applier.apply(generation, wanted)
        done += len(wanted)
        for r in wanted:
            key = (r.topic() or "", r.partition() or 0)
            if (r.offset() or 0) + 1 >= remaining.get(key, 0):
                remaining.pop(key, None)
        if progress and (now - last_progress > 0.5 or not remaining):
            progress(done, total)
            last_progress = now
    counters = applier.counters
    return RebuildResult(
        records=done,
        applied=counters.applied,
        skipped_bad=counters.skipped_bad,
        seconds=time.monotonic() - started,
    )
