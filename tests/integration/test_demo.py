"""The demo end to end, small: 200 customers, 5,000 usage events, real Kafka and
Redis, real worker / projector / API processes. Its invoice summary must equal the
pure fold (the billing functions over the very events it published), its children
must be gone afterwards, and `reconcile` must find the run clean, then find a
tampered output."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from billing.events import Event, EventRejected, RejectReason
from processors.reconcile.run import reconcile, render
from processors.simulate.simulation import simulate
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import ALL_TOPICS, USAGE_EVENTS, USAGE_REJECTED, Settings
from streambill.local.demo import (
    CHUNK,
    DemoOptions,
    DemoResult,
    PlanSummary,
    run_demo,
    usage_day_start,
)
from streambill.local.demo_load import PLAN_MIX, population, usage_day
from streambill.local.demo_readback import SAMPLE_SIZE
from streambill.local.demo_steps import summarize_invoices
from streambill.wire import convert
from streambill.wire.codec import Codec
from streambill.wire.tail import json_safe, rfc3339

pytestmark = pytest.mark.integration

OPTS = DemoOptions(customers=200, events=5000, seed=11)


@pytest.fixture(scope="module")
def demo(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoResult]:
    base = settings.model_copy(update={"state_dir": tmp_path_factory.mktemp("demo")})
    out, err = io.StringIO(), io.StringIO()
    result = run_demo(base, OPTS, out=out, err=err)
    (Path(base.state_dir) / "stdout.txt").write_text(out.getvalue())
    yield result
    admin = AdminClient(result.settings.kafka_config())
    for future in admin.delete_topics([result.settings.topic(t) for t in ALL_TOPICS]).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def pure_summary(result: DemoResult) -> dict[str, PlanSummary]:
    """The billing functions (`streambill simulate`'s fold) over the same events."""
    catalog = load_catalog(result.settings.catalog_path)
    pop = population(OPTS.customers, result.anchor, OPTS.seed, OPTS.run_id)
    day = usage_day_start(result.month)
    usage = usage_day(pop.customers, OPTS.events, day, OPTS.seed, OPTS.run_id)
    events: list[Event] = [*pop.account_events, *usage]
    sim = simulate(catalog, events, result.month.start, result.month.end)
    return summarize_invoices(sim.invoices)


def test_demo_invoices_equal_the_pure_fold(demo: DemoResult) -> None:
    assert demo.summary == pure_summary(demo)
    assert set(demo.summary) == {p for p, _ in PLAN_MIX}  # every example plan billed
    assert demo.alerts_raised > 0


def test_demo_prints_the_summary_and_a_portal_link_and_stops_its_children(
    demo: DemoResult,
) -> None:
    text = (Path(demo.settings.state_dir) / "stdout.txt").read_text()
    assert f"closed {demo.month}" in text and "customer portal of" in text
    assert demo.portal_url.startswith(f"http://127.0.0.1:{demo.settings.api_port}/portal?token=")
    for name in ("starter", "dev-api", "image-credits"):
        assert any(line.startswith(name) for line in text.splitlines())
    assert [c.name for c in demo.children] == ["worker", "projector", "api"]
    assert not any(c.alive() for c in demo.children)


def test_demo_prints_published_events_read_back_from_kafka(demo: DemoResult) -> None:
    """Right after publishing, a handful of the published events (several plans) come
    back from usage-events decoded, one JSON line each, equal to what was sent."""
    lines = (Path(demo.settings.state_dir) / "stdout.txt").read_text().splitlines()
    verdict = f"read back {SAMPLE_SIZE} of {SAMPLE_SIZE} published events from Kafka, "
    at = lines.index(verdict + "equal to what was sent")
    assert lines[at - SAMPLE_SIZE - 1].startswith("publishing ")
    docs = [json.loads(line) for line in lines[at - SAMPLE_SIZE : at]]
    pop = population(OPTS.customers, demo.anchor, OPTS.seed, OPTS.run_id)
    day = usage_day_start(demo.month)
    first_chunk = list(
        islice(usage_day(pop.customers, OPTS.events, day, OPTS.seed, OPTS.run_id), CHUNK)
    )
    published = {e.event_id: e for e in first_chunk}
    for doc in docs:
        sent = published[doc["value"]["event_id"]]
        name, record = convert.to_avro(sent)
        assert (doc["topic"], doc["schema"], doc["key"]) == ("usage-events", name, sent.customer_id)
        assert doc["timestamp"] == rfc3339(sent.timestamp)
        assert doc["value"] == json_safe(record)
    ids = [doc["value"]["event_id"] for doc in docs]
    assert ids == sorted(ids, key=list(published).index)  # in publishing order
    plan_of = {c.customer_id: c.plan_id for c in pop.customers}
    assert len({plan_of[published[i].customer_id] for i in ids}) == SAMPLE_SIZE
    assert len({published[i].feature_id for i in ids}) >= 3


def test_reconcile_finds_the_demo_clean_then_a_tampered_dead_letter(demo: DemoResult) -> None:
    report = reconcile(demo.settings, demo.month)
    assert report.ok, render(report)
    total = sum(r.in_log for r in report.rows)
    assert total == OPTS.events + len(
        population(OPTS.customers, demo.anchor, OPTS.seed, OPTS.run_id).account_events
    )
    assert sum(r.applied for r in report.rows) == total
    assert f"invoices {demo.month}" in report.checks

    s = demo.settings
    usage = s.topic(USAGE_EVENTS)
    letter = EventRejected(RejectReason.INVALID_FIELD, "tampered", None, None, usage, 0, 0, b"")
    name, record = convert.to_avro(letter)
    producer = Producer(s.kafka_config())
    producer.produce(s.topic(USAGE_REJECTED), Codec().encode(name, record), b"x")
    assert producer.flush(30) == 0
    tampered = reconcile(s)
    assert not tampered.ok
    # The record is now one the worker "refused": its dead letter was not expected,
    # and the closed period it was invoiced in may now differ from what the worker
    # kept (unless the usage was inside an included allowance).
    first, *rest = tampered.differences
    assert first == f"{usage}/0@0: unexpected dead letter (invalid_field)"
    assert len(rest) <= 1 and all("by the closes, the live worker folded" in d for d in rest)
