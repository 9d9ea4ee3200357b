"""`tail` output: one JSON object per message, decimals as strings, times RFC 3339."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from confluent_kafka import Message

import streambill
from streambill.cli.main import main
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.tail import dumps, json_safe, render, rfc3339
from tests.unit.samples import SAMPLES


def test_render_decoded_value() -> None:
    codec = Codec()
    value = encode_value(codec, SAMPLES["streambill.invoices.v1.InvoiceIssued"])
    msg = Message(
        topic="p.invoices", partition=2, offset=7, key=b"cus_abc123", value=value,
        timestamp=(1, 1_743_465_600_000),
    )  # fmt: skip
    line = json.loads(dumps(render("invoices", msg, codec)))
    assert line["topic"] == "invoices" and (line["partition"], line["offset"]) == (2, 7)
    assert line["key"] == "cus_abc123"
    assert line["timestamp"] == "2025-04-01T00:00:00.000Z"
    assert line["schema"] == "streambill.invoices.v1.InvoiceIssued"
    assert line["value"]["total"] == "33.50"
    assert line["value"]["lines"][1]["unit_price"] == "0.00003"
    assert line["value"]["period_start"] == "2025-03-01T00:00:00.000Z"


def test_render_undecodable_value_keeps_the_bytes() -> None:
    msg = Message(topic="t", partition=0, offset=1, key=None, value=b"\x00junk", timestamp=(0, -1))
    line = render("usage-events", msg, Codec())
    assert line["error"]["reason"] == "undecodable"
    assert base64.b64decode(line["value_base64"]) == b"\x00junk"
    assert line["timestamp"] is None and line["key"] is None


def test_json_safe() -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
    assert rfc3339(stamp) == "2025-01-02T03:04:05.678Z"
    assert json_safe({"b": b"\x01", "l": [stamp], "s": "1.50"}) == {
        "b": "AQ==",
        "l": ["2025-01-02T03:04:05.678Z"],
        "s": "1.50",
    }


def test_cli_report_refuses_bad_input_before_sending() -> None:
    assert main(["report", "--customer", "", "--feature", "tokens", "--quantity", "1"]) == 2
    assert main(["report", "--customer", "c", "--feature", "f", "--quantity", "-1"]) == 2
    assert main(["report", "--customer", "c", "--feature", "f", "--quantity", "1",
                 "--timestamp", "2025-01-01T00:00:00"]) == 2  # fmt: skip


def test_usage_client_is_exported_at_the_top() -> None:
    from streambill.sdk.client import UsageClient

    assert streambill.UsageClient is UsageClient
