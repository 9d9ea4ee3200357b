"""Period close against the real broker: determinism and no-op re-run, downstream
dedupe by invoice id, late usage adjusted once, close equals live, and invoices
read by `kcat` and decoded with nothing but the published .avsc files."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

from billing.events import Event, Invoice, UsageRecorded
from processors.close.auto import close_due
from processors.close.plan import Month
from processors.close.run import (
    CloseDeps,
    CloseOptions,
    CloseReport,
    close_period,
)
from processors.close.topics import CloseTopics
from streambill.config.settings import REPO_ROOT, Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import decode_value, encode_value
from streambill.wire.kafka_log import KafkaLog
from tests.close_support import live_preview, load_example_catalog, ms, utc
from tests.unit.processors.close.test_close_late_and_crash import base
from tests.unit.processors.close.test_close_scenarios import history

pytestmark = pytest.mark.integration


class Kafka:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = Codec()
        self.catalog = load_example_catalog()
        self.log = KafkaLog(settings.kafka_config(), timeout_s=20)
        self.published: list[Event] = []
        self.topics = CloseTopics.of(settings)

    def publish(self, events: list[Event]) -> None:
        for e in events:
            topic = self.topics.usage if isinstance(e, UsageRecorded) else self.topics.account
            self.log.produce(
                topic, e.customer_id.encode(), encode_value(self.codec, e), ms(e.timestamp)
            )
            self.published.append(e)
        self.log.flush()

    def close(self, month: str, **opts: object) -> CloseReport:
        deps = CloseDeps(self.log, self.codec, self.catalog, self.topics, lambda: utc(2030, 1, 1))
        return close_period(deps, CloseOptions(Month.parse(month), **opts))  # type: ignore[arg-type]

    def invoice_records(self) -> list[bytes]:
        """Every value on the invoices topic, read by a consumer of our own."""
        low, high = self.log.watermarks(self.topics.invoices)
        return [r.value for b in self.log.read(self.topics.invoices, low, high) for r in b]


@pytest.fixture
def kafka(env: Settings) -> Iterator[Kafka]:
    k = Kafka(env)
    yield k
    k.log.close()


def dedupe_by_id(values: list[bytes], codec: Codec) -> dict[str, bytes]:
    """What a downstream consumer does: keep the first record of each invoice id."""
    out: dict[str, bytes] = {}
    for v in values:
        inv = decode_value(codec, v)
        assert isinstance(inv, Invoice)
        out.setdefault(inv.invoice_id, v)
    return out


def test_close_twice_is_byte_identical_and_a_no_op(kafka: Kafka) -> None:
    kafka.publish(history())
    first = kafka.close("2025-02")
    assert first.status == "closed" and first.sent == 8
    again = kafka.close("2025-02")
    assert again.status == "no_op" and again.sent == 0 and again.already_on_topic == 8
    assert [d for _, d in again.invoices] == [d for _, d in first.invoices]
    values = kafka.invoice_records()
    assert len(values) == 8  # the re-run sent nothing
    seen = dedupe_by_id(values, kafka.codec)
    assert set(seen) == {p.invoice.invoice_id for p, _ in first.invoices}
    assert sorted(seen.values()) == sorted(d for _, d in first.invoices)


def test_close_equals_live_for_every_customer(kafka: Kafka) -> None:
    kafka.publish(history())
    for month in ("2025-02", "2025-03"):
        for priced, _ in kafka.close(month).invoices:
            inv = priced.invoice
            assert (
                live_preview(kafka.catalog, kafka.published, inv.customer_id, inv.period_end) == inv
            )


def test_late_usage_on_kafka_is_one_adjustment(kafka: Kafka) -> None:
    class Pub:
        def publish(self, events: list[Event]) -> None:
            kafka.publish(events)

    base(Pub())  # type: ignore[arg-type]
    kafka.close("2025-02")
    late = history()[:0]
    from tests.close_support import usage

    late.append(usage("cus_w", "tokens", 50000, utc(2025, 1, 30)))
    kafka.publish(late)
    mar = kafka.close("2025-03")
    adj = [p.invoice for p, _ in mar.invoices if p.invoice.kind == "adjustment"]
    assert [(a.customer_id, str(a.total)) for a in adj] == [("cus_w", "1.00")]
    assert kafka.close("2025-03").status == "no_op"
    apr = kafka.close("2025-04")
    assert [p for p, _ in apr.invoices if p.invoice.kind == "adjustment"] == []
    ids = list(dedupe_by_id(kafka.invoice_records(), kafka.codec))
    assert len(ids) == len(kafka.invoice_records())  # no id twice on the wire


def _schemas_by_fingerprint() -> dict[bytes, tuple[str, object]]:
    """Only the published .avsc files: fingerprint -> (name, parsed schema)."""
    out: dict[bytes, tuple[str, object]] = {}
    for path in sorted((REPO_ROOT / "schemas").glob("streambill.invoices.*.avsc")):
        raw = json.loads(Path(path).read_text())
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))
        out[fp] = (path.stem, parse_schema(raw))
    return out


def test_invoices_read_by_kcat_and_decoded_with_the_schema_alone(kafka: Kafka) -> None:
    kafka.publish(history())
    report = kafka.close("2025-02")
    raw = subprocess.run(
        [
            "kcat",
            "-b",
            kafka.settings.bootstrap_servers,
            "-C",
            "-t",
            kafka.topics.invoices,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%R%s",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    schemas = _schemas_by_fingerprint()
    decoded: dict[str, dict[str, object]] = {}
    pos = 0
    while pos < len(raw):
        (size,) = struct.unpack(">i", raw[pos : pos + 4])
        value = raw[pos + 4 : pos + 4 + size]
        pos += 4 + size
        assert value[:2] == b"\xc3\x01"
        _name, schema = schemas[value[2:10]]
        record = schemaless_reader(io.BytesIO(value[10:]), schema)
        assert isinstance(record, dict)
        decoded[str(record["invoice_id"])] = record
    expected = {p.invoice.invoice_id: p.invoice for p, _ in report.invoices}
    assert set(decoded) == set(expected)
    for invoice_id, record in decoded.items():
        assert record["customer_id"] == expected[invoice_id].customer_id
        assert str(record["total"]) == str(expected[invoice_id].total)


def test_consumer_sees_invoices_keyed_by_customer(kafka: Kafka) -> None:
    kafka.publish(history())
    kafka.close("2025-02")
    c = Consumer(
        {
            **kafka.settings.kafka_config(),
            "group.id": f"g-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    low, high = kafka.log.watermarks(kafka.topics.invoices)
    c.assign([TopicPartition(kafka.topics.invoices, p, low[p]) for p in low])
    got = 0
    while got < sum(high.values()):
        for m in c.consume(100, timeout=5):
            inv = decode_value(kafka.codec, m.value())
            assert isinstance(inv, Invoice) and m.key() == inv.customer_id.encode()
            got += 1
    c.close()


def test_auto_closes_each_due_month_once_in_order(kafka: Kafka) -> None:
    """`streambill close --auto`: every month whose end + grace has passed, oldest
    first, each once; nothing while the grace runs; February is the first month a
    period can end in (the earliest account event is in January)."""
    kafka.publish(history())
    now = [utc(2025, 3, 1, 12)]
    deps = CloseDeps(kafka.log, kafka.codec, kafka.catalog, kafka.topics, lambda: now[0])
    grace = timedelta(days=1)
    assert close_due(deps, grace) == []  # February ended at 1 Mar 00:00: grace runs
    now[0] = utc(2025, 3, 2, 0, 1)
    due = close_due(deps, grace)
    assert [(str(r.month), r.status) for r in due] == [("2025-02", "closed")]
    assert due[0].sent == len(due[0].invoices) > 0
    assert close_due(deps, grace) == []  # closed already: nothing is due
    now[0] = utc(2025, 6, 10)  # March, April and May are due now, in that order
    due = close_due(deps, grace)
    assert [str(r.month) for r in due] == ["2025-03", "2025-04", "2025-05"]
    assert all(r.status == "closed" for r in due)
    assert close_due(deps, grace) == []
    february = kafka.close("2025-02")  # a manual close of an auto-closed month: no-op
    assert february.status == "no_op" and february.sent == 0
