"""Account events first after an assignment: the backlog of account-events.

Kafka orders nothing across the two input topics, so a worker that starts on a
backlog (a restart, a replay, a rebalance) may fetch a customer's usage before the
subscription that was published long before it, and dead-letter it as
`no_subscription`, where the live run, which saw the subscription first, applied
it. To decide like the live run did, the pipeline folds, before the first batch
of each newly assigned partition, every account event of that partition from the
group's committed offset up to the end offset of that moment (read here with a
plain consumer that never joins the group nor commits). Those messages are made
durable like any batch; when the stream delivers them again the customer
record's offsets skip them. Account events published after that moment race
with usage as before (documented limitation; `streambill dlq replay` repairs).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from processors.fold import SourceMessage


async def account_backlog(
    bootstrap_servers: str,
    group_id: str,
    topic: str,
    partitions: Iterable[int],
    timeout_s: float = 60.0,
) -> list[SourceMessage]:
    """Messages of `topic` in `partitions` between the group's committed offset
    (the beginning if none) and the end offset as of now, in offset order."""
    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=group_id,  # only to read its committed offsets: never subscribes
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        pending: set[TopicPartition] = set()
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
            if await consumer.position(tp) < ends[tp]:
                pending.add(tp)
        out: list[SourceMessage] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"account backlog of {sorted(map(str, pending))} not read")
            fetched = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in fetched.items():
                for r in records:
                    if r.offset < ends[tp]:
                        out.append(_message(tp, r))
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return out
    finally:
        await consumer.stop()


def _message(tp: TopicPartition, r: ConsumerRecord[bytes, bytes]) -> SourceMessage:
    return SourceMessage(
        topic=tp.topic,
        partition=tp.partition,
        offset=r.offset,
        timestamp_ms=r.timestamp,
        key=r.key,
        value=r.value if r.value is not None else b"",
    )
