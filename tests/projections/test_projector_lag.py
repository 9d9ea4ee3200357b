"""The projector's lag as operators see it: `kafka-consumer-groups --describe`, run from
the Maven-resolved jars (`streambill services kafka-tool`), against the real broker and
Redis (DB 13 by default). The projector commits the positions it stored in Redis to its
own group (projections/read/projector.py, step 6), so the group shows lag 0 once it
applied everything, the exact backlog while it is stopped, and the stored positions
again after a restart, even where Kafka's offsets had fallen behind Redis's."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from projections.read.redis_store import RedisStore
from projections.read.store import Keys
from projections.wiring import build_projector, projector_group
from streambill.config.settings import (
    ALL_TOPICS,
    BILLING_ALERTS,
    CUSTOMER_STATE,
    INVOICES,
    Settings,
)
from streambill.config.topics import create_topics
from streambill.local.kafka_tools import PartitionLag, parse_group_lag, run_tool
from streambill.wire.codec import Codec
from streambill.wire.convert import WireValue
from tests.kafka_helpers import Ends, caught_up, high_watermarks, produce, wait_until
from tests.projections import samples
from tests.projections.conftest import REDIS_URL

pytestmark = pytest.mark.integration

Lags = dict[tuple[str, int], PartitionLag]  # (logical topic, partition) -> row


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """Topics, consumer group and read models of this test alone: no other test's
    projector commits to the group whose offsets are read here."""
    mine = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}lag-{uuid.uuid4().hex[:6]}.",
            "redis_url": REDIS_URL,
            "read_model_prefix": f"sbl-{uuid.uuid4().hex[:8]}",
        }
    )
    create_topics(mine)
    yield mine
    admin = AdminClient(mine.kafka_config())
    for future in admin.delete_topics([mine.topic(t) for t in ALL_TOPICS]).values():
        with contextlib.suppress(KafkaException):  # best effort, as tests/conftest.py
            future.result(timeout=30)


@pytest.fixture
def store(own: Settings) -> Iterator[RedisStore]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield RedisStore(client, Keys(prefix=own.read_model_prefix))
    for key in client.scan_iter(match=f"{own.read_model_prefix}:*"):
        client.delete(key)
    client.close()


@contextmanager
def running(own: Settings, store: RedisStore) -> Iterator[None]:
    projector = build_projector(own, store, batch_size=50, poll_timeout=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=projector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def records(round_: int, customers: int = 12) -> list[tuple[str, WireValue]]:
    """Snapshots, alerts and invoices of enough customers to reach every partition."""
    items: list[tuple[str, WireValue]] = []
    for i in range(customers):
        cid = f"cus_{round_}_{i}"
        items.append((CUSTOMER_STATE, samples.metered_state(cid, version=1, used=str(i))))
        items.append((CUSTOMER_STATE, samples.metered_state(cid, version=2, used=str(i + 5))))
        items.append((BILLING_ALERTS, samples.alert(cid, f"{cid}-80")))
        items.append((INVOICES, samples.invoice(cid, f"inv-{cid}")))
    return items


def describe(own: Settings) -> Lags:
    """The projector group's rows, by logical topic, as the operator's command prints them."""
    result = run_tool(
        own, "consumer-groups", ["--describe", "--group", projector_group(own)], capture=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    logical = {own.topic(t): t for t in ALL_TOPICS}
    rows = parse_group_lag(result.stdout)
    assert {r.group for r in rows} <= {projector_group(own)}
    return {(logical[r.topic], r.partition): r for r in rows}


def lag_is(own: Settings, expected: dict[tuple[str, int], int]) -> bool:
    """True once the group has exactly the partitions of `expected`, with those lags."""
    return {key: row.lag for key, row in describe(own).items()} == expected


def zero(ends: Ends) -> dict[tuple[str, int], int]:
    return dict.fromkeys(ends, 0)


def test_the_projector_group_shows_lag_zero_when_applied_and_the_backlog_when_stopped(
    own: Settings, store: RedisStore
) -> None:
    codec = Codec()
    first = records(0)
    produce(own, first, codec)
    ends = high_watermarks(own)
    assert sum(ends.values()) == len(first)
    assert {p for (t, p) in ends if t == CUSTOMER_STATE} == set(range(own.partitions))
    with running(own, store):
        wait_until(caught_up(own, store), what="the projector applied the first records")
        wait_until(lambda: lag_is(own, zero(ends)), timeout=30, what="lag 0 while running")
    rows = describe(own)
    assert rows.keys() == ends.keys()
    for key, row in rows.items():  # the offsets Redis records, each partition's end
        assert (row.committed, row.log_end, row.lag) == (ends[key], ends[key], 0), key

    produce(own, records(1), codec)  # while the projector is stopped
    later = high_watermarks(own)
    backlog = {key: later[key] - ends.get(key, 0) for key in later}
    assert sum(backlog.values()) == len(records(1))
    assert lag_is(own, backlog)
    assert any(n > 0 for n in backlog.values())

    with running(own, store):
        wait_until(caught_up(own, store), what="the restarted projector caught up")
        wait_until(lambda: lag_is(own, zero(later)), timeout=30, what="lag 0 after restart")


def test_a_restart_commits_the_stored_positions_kafka_had_fallen_behind(
    own: Settings, store: RedisStore
) -> None:
    produce(own, records(0), Codec())
    ends = high_watermarks(own)
    with running(own, store):
        wait_until(caught_up(own, store), what="the projector applied the records")
        wait_until(lambda: lag_is(own, zero(ends)), timeout=30, what="lag 0")
    # A crash between the Redis write (step 5) and the Kafka commit (step 6): Kafka's
    # offsets are behind the positions Redis recorded. Only the display is stale.
    stale = Consumer(own.kafka_config(**{"group.id": projector_group(own)}))
    try:
        stale.commit(
            offsets=[TopicPartition(own.topic(t), p, 0) for (t, p) in ends], asynchronous=False
        )
    finally:
        stale.close()
    assert lag_is(own, ends)  # everything looks unapplied
    with running(own, store):  # nothing new to read: the assignment commits Redis's positions
        wait_until(lambda: lag_is(own, zero(ends)), timeout=30, what="display corrected")
    rows = describe(own)
    assert {key: row.committed for key, row in rows.items()} == ends
