"""`streambill worker-rebuild --install APP_ID`: hand a rebuilt state to a new worker.

The worker's state is its two tables' changelog topics plus its consumer group's
committed offsets. A new app id names a new group and new changelogs, so installing
there never touches the running workers (docs/ARCHITECTURE.md, "Checkpoints").

Steps, in this order, each idempotent (a crash between two is repaired by running the
command again with the same app id, as long as no worker of it has started):
 1. refuse an app id whose group already committed offsets or whose changelogs hold
    records (it is in use: installing would mix two states);
 2. create both changelog topics (compacted, the inputs' partition count);
 3. write every rebuilt record and seen entry to them (key and value exactly as the
    worker writes them, `processors.worker.commit`), flushed with acks=all;
 4. publish the rebuilt snapshot of every customer whose latest snapshot differed to
    customer-state (the read models are right at once; the bytes the new workers
    would publish at that customer's next change);
 5. commit the group's offsets of both inputs at the positions the rebuild read to.
Then the operator starts the workers with `STREAMBILL_WORKER_APP_ID=APP_ID`: they
recover the tables from the changelogs and consume from the committed offsets.
Records that arrived after the rebuild read are folded by the new workers then.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from processors.fold.record_json import RecordJson
from processors.reconcile.rebuild import RebuildReport
from processors.worker.commit import json_key
from streambill.config.settings import CUSTOMER_STATE, Settings


class SwitchOverError(Exception):
    """The rebuilt state was not installed (the message says why and what to do)."""


def install(settings: Settings, report: RebuildReport, app_id: str) -> dict[str, int]:
    """Install `report`'s tables under `app_id`; returns records written per table."""
    target = settings.model_copy(update={"worker_app_id": app_id})
    group = target.worker_group()
    if group == settings.worker_group():
        raise SwitchOverError(f"{app_id!r} is the running workers' app id: choose a new one")
    config = settings.kafka_config()
    changelogs = {name: f"{group}-{name}-changelog" for name in ("customers", "seen")}
    _refuse_used(config, group, changelogs.values(), report)
    admin = AdminClient(config)
    new = [
        NewTopic(
            t, num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            config={"cleanup.policy": "compact"},
        )
        for t in changelogs.values()
    ]  # fmt: skip
    for topic, future in admin.create_topics(new, request_timeout=30).items():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise SwitchOverError(f"cannot create {topic}: {exc}") from exc
    producer = Producer({**config, "enable.idempotence": True, "acks": "all"})
    encode = RecordJson().encode
    for cid, (p, record) in sorted(report.records.items()):
        producer.produce(changelogs["customers"], encode(record), json_key(cid), partition=p)
        producer.poll(0)
    for key, (p, entry) in sorted(report.seen.items()):
        producer.produce(changelogs["seen"], entry.to_json(), json_key(key), partition=p)
        producer.poll(0)
    for cid, snapshot in sorted(report.corrected.items()):
        producer.produce(settings.topic(CUSTOMER_STATE), snapshot, cid.encode())
        producer.poll(0)
    if producer.flush(60) != 0:
        raise SwitchOverError("the changelog records were not all acknowledged; run it again")
    offsets = [
        TopicPartition(topic, p, offset)
        for topic, parts in sorted(report.positions.items())
        for p, offset in sorted(parts.items())
    ]
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
    return {
        "customers": len(report.records),
        "seen": len(report.seen),
        "snapshots": len(report.corrected),
    }


def _refuse_used(
    config: dict[str, object], group: str, changelogs: object, report: RebuildReport
) -> None:
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [
            TopicPartition(topic, p)
            for topic, positions in report.positions.items()
            for p in positions
        ]
        committed = consumer.committed(parts, timeout=30)
        if any(tp.offset >= 0 for tp in committed):
            raise SwitchOverError(
                f"consumer group {group} already committed offsets: the app id is in use"
            )
        meta = consumer.list_topics(timeout=30)
        for topic in changelogs:  # type: ignore[attr-defined]
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                continue
            for p in info.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                if high > low:
                    raise SwitchOverError(f"{topic} already holds records: the app id is in use")
    finally:
        consumer.close()
