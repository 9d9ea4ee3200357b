"""The projector against the real broker and Redis (DB 13 by default; only that DB is
ever flushed): Redis loss, redelivery, skipped records, rebuild equals live."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis

from projections.read.projector import Projector
from projections.read.rebuild import rebuild
from projections.read.redis_store import RedisStore
from projections.read.series import TREND_LIMIT
from projections.read.store import InMemoryStore, Keys
from projections.wiring import build_applier, build_projector, build_rebuild_consumer
from streambill.config.settings import BILLING_ALERTS, CUSTOMER_STATE, INVOICES, Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import WireValue
from tests.kafka_helpers import caught_up, produce, wait_until
from tests.projections import samples
from tests.projections.conftest import REDIS_URL

pytestmark = pytest.mark.integration


@contextmanager
def running(projector: Projector) -> Iterator[Projector]:
    stop = threading.Event()
    thread = threading.Thread(target=projector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield projector
    finally:
        stop.set()
        thread.join(30)


def stream(round_: int) -> list[tuple[str, WireValue | bytes]]:
    """Snapshots, alerts and invoices for 6 customers, with duplicates and junk; cus_1
    tops up by the same size and drains past the trend's cap, cus_3 by another size."""
    items: list[tuple[str, WireValue | bytes]] = []
    for i in range(6):
        cid = f"cus_{i}"
        for v in range(1, 4):
            version = round_ * 10 + v
            if i % 2:
                snap = samples.credits_state(
                    cid, version=version, remaining=str(900 - 50 * version)
                )
            else:
                snap = samples.metered_state(cid, version=version, used=str(100 * v + i))
            items.append((CUSTOMER_STATE, snap))
        items.append((CUSTOMER_STATE, snap))  # a duplicate (producer retry)
        if i == 1:
            for n in range(TREND_LIMIT + 5):
                drain = samples.credits_state(
                    cid,
                    version=round_ * 100 + 10 + n,
                    remaining=str(2000 - 10 * n),
                    at=samples.T0 + timedelta(hours=round_ * 100 + n),
                )
                items.append((CUSTOMER_STATE, drain))
        if i == 3:
            topped = samples.credits_state(
                cid, version=round_ * 10 + 5, remaining="400", topup="500"
            )
            items.append((CUSTOMER_STATE, topped))
        items.append((BILLING_ALERTS, samples.alert(cid, f"{cid}-a{round_}-80")))
        items.append((BILLING_ALERTS, samples.alert(cid, f"{cid}-a{round_}-100", percent=100)))
        if i % 3 == 0:
            items.append((BILLING_ALERTS, samples.resolved(cid, f"{cid}-a{round_}-80")))
        items.append((INVOICES, samples.invoice(cid, f"inv-{cid}-{round_}")))
        items.append((INVOICES, samples.invoice(cid, f"inv-{cid}-{round_}")))  # duplicate
    items.append((CUSTOMER_STATE, b"\x00not avro at all"))
    items.append((BILLING_ALERTS, b"\xc3\x01" + b"\x00" * 8 + b"junk"))
    items.append((BILLING_ALERTS, samples.invoice("cus_0", "misplaced")))  # wrong topic
    return items


@pytest.fixture
def session(settings: Settings, topics: dict[str, str]) -> Iterator[Settings]:
    """Settings of one test: the session's topics, this test's key prefix, DB 13."""
    yield settings.model_copy(
        update={"redis_url": REDIS_URL, "read_model_prefix": f"sbi-{uuid.uuid4().hex[:8]}"}
    )


@pytest.fixture
def store(session: Settings) -> Iterator[RedisStore]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield RedisStore(client, Keys(prefix=session.read_model_prefix))
    for key in client.scan_iter(match=f"{session.read_model_prefix}:*"):
        client.delete(key)
    client.close()


def reference_dump(session: Settings) -> dict[str, object]:
    """The read models rebuilt from the log into memory: what live must equal."""
    memory = InMemoryStore(Keys(prefix=session.read_model_prefix))
    consumer = build_rebuild_consumer(session)
    try:
        rebuild(consumer, build_applier(session, memory))
    finally:
        consumer.close()
    return dict(memory.dump())


def test_redis_loss_is_refilled_from_the_log(session: Settings, store: RedisStore) -> None:
    codec = Codec()
    produce(session, stream(0), codec)
    projector = build_projector(session, store, batch_size=50, poll_timeout=0.1)
    with running(projector):
        wait_until(caught_up(session, store), what="first catch-up")
        before = store.dump()
        assert before == reference_dump(session)
        assert len([k for k in before if k.endswith(":state")]) == 6
        store.client.flushdb()  # our own DB only, never FLUSHALL on the shared server
        assert store.dump() == {}
        wait_until(caught_up(session, store), what="refill after FLUSHDB")
        assert store.dump() == before  # detected while running, refilled at once
        assert projector.applier.counters.resets >= 1
    # Lost while the projector is down: the next start reads from the beginning.
    store.client.flushdb()
    with running(build_projector(session, store, batch_size=50, poll_timeout=0.1)):
        wait_until(caught_up(session, store), what="refill after restart")
        assert store.dump() == before


def test_rebuild_equals_live_after_redelivery_and_junk(
    session: Settings, store: RedisStore
) -> None:
    codec = Codec()
    produce(session, stream(1), codec)
    first = build_projector(session, store, batch_size=40, poll_timeout=0.1)
    with running(first):
        wait_until(caught_up(session, store), what="catch-up")
    assert first.applier.counters.skipped_bad >= 3
    # A crash between storing the writes and advancing the positions: everything since
    # the beginning is delivered again and must be skipped by the stored offsets.
    for key in store.client.scan_iter(match=f"{session.read_model_prefix}:*:position"):
        store.client.delete(key)
    produce(session, stream(2), codec)
    second = build_projector(session, store, batch_size=40, poll_timeout=0.1)
    with running(second):
        wait_until(caught_up(session, store), what="catch-up after redelivery")
    assert second.applier.counters.skipped_duplicate >= first.applier.counters.applied
    live = store.dump()
    alerts = store.alerts("cus_0")
    assert "cus_0-a2-80" not in alerts and "cus_0-a2-100" in alerts
    history = [json.loads(e) for e in store.alert_history("cus_0")]
    assert [(e["event"], e["raised_alert_id"]) for e in history[:3]] == [
        ("resolved", "cus_0-a2-80"),
        ("raised", "cus_0-a2-100"),
        ("raised", "cus_0-a2-80"),
    ]
    drained = [json.loads(p)["value"] for p in store.trend("cus_1")]
    assert drained[0] == "2000" and drained[-1] == str(2000 - 10 * (TREND_LIMIT + 4))
    assert len(drained) < TREND_LIMIT  # thinned
    assert [json.loads(p)["value"] for p in store.trend("cus_3")] == ["400"]

    consumer = build_rebuild_consumer(session)
    progress: list[tuple[int, int]] = []
    try:
        result = rebuild(
            consumer, build_applier(session, store), progress=lambda d, t: progress.append((d, t))
        )
    finally:
        consumer.close()
    assert result.skipped_bad >= 3 and progress[-1][0] == progress[-1][1]
    rebuilt = store.dump()
    assert rebuilt == live  # key for key
    assert rebuilt == reference_dump(session)
