"""`streambill export` without a broker: the log port in memory, the arguments."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing.events import Event, SubscriptionStarted, UsageRecorded
from processors.simulate.export import Selection
from processors.simulate.lines import read_jsonl
from streambill.cli import export
from streambill.cli.main import build_parser, main
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.log import InMemoryLog

AT = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)
SETTINGS = Settings.model_construct(topic_prefix="t.")


def _log() -> InMemoryLog:
    codec = Codec()
    log = InMemoryLog(partition_count=3)
    events: list[Event] = [
        SubscriptionStarted("a1", "c1", AT, "writer"),
        UsageRecorded("u1", "c1", "tokens", Decimal(5), AT, {}),
        UsageRecorded("u2", "c2", "tokens", Decimal(7), END, {}),
    ]
    for e in events:
        topic = "t.usage-events" if isinstance(e, UsageRecorded) else "t.account-events"
        log.produce(topic, e.customer_id.encode(), encode_value(codec, e), 0)
    log.produce("t.usage-events", b"c1", b"not avro", 0)
    return log


def test_export_reads_both_topics_through_the_doors(tmp_path: Path) -> None:
    out = io.StringIO()
    tally = export.export_log(_log(), SETTINGS, Selection(AT, END), out)
    assert (tally.usage, tally.account, tally.outside) == (1, 1, 1)
    assert dict(tally.rejected) == {"undecodable": 1}
    assert "1 undecodable" in export.summary(tally, None)
    lines = out.getvalue().splitlines()
    assert '"type": "subscription_started"' in lines[0] and '"u1"' in lines[1]


def test_export_to_a_file_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    tally = export._to_file(_log(), SETTINGS, Selection(AT, END, frozenset({"c1"})), path)
    assert (tally.usage, tally.account) == (1, 1)
    events, rejected = read_jsonl(path, account=False)
    assert [e.event_id for e in events] == ["a1", "u1"] and rejected == []
    assert [p.name for p in tmp_path.iterdir()] == ["history.jsonl"]


def test_export_is_registered() -> None:
    args = build_parser().parse_args(
        ["export", "--from", "2026-01-01", "--to", "2026-02-01", "--customer", "a",
         "--customer", "b", "--out", "x.jsonl"]
    )  # fmt: skip
    assert args.func is export.run and args.customer == ["a", "b"]


@pytest.mark.parametrize(
    ("start", "end"), [("yesterday", "2026-02-01"), ("2026-02-01", "2026-02-01")]
)
def test_bad_ranges_are_usage_errors_before_any_broker_contact(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, start: str, end: str
) -> None:
    def no_broker(*args: object, **kwargs: object) -> None:
        raise AssertionError("the broker was contacted")

    monkeypatch.setattr(export, "KafkaLog", no_broker)
    assert main(["export", "--from", start, "--to", end]) == 2
    assert "streambill export:" in capsys.readouterr().err
