"""`processors.simulate.export`: the doors decide which records count; the selection
is by event time; simulating the export bills as simulating the events (the lines
themselves: test_lines.py)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from billing.events import (
    Event,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from processors.fold.admission import Doors
from processors.simulate.export import ExportTally, Selection, export_records
from processors.simulate.lines import read_jsonl
from processors.simulate.simulation import result_json, simulate
from streambill.config.catalog_file import load_catalog
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.log import InMemoryLog, LogRecord
from streambill.wire.partitioner import owner

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "catalog.yaml"
AT = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)
CODEC = Codec()
USAGE, ACCOUNT = "t.usage-events", "t.account-events"


def _usage(event_id: str, customer: str, at: datetime, quantity: str = "1000") -> UsageRecorded:
    return UsageRecorded(event_id, customer, "tokens", Decimal(quantity), at, {})


def _log(events: list[Event]) -> InMemoryLog:
    log = InMemoryLog(partition_count=3)
    for e in events:
        topic = USAGE if isinstance(e, UsageRecorded) else ACCOUNT
        log.produce(topic, e.customer_id.encode(), encode_value(CODEC, e), 0)
    return log


def _records(log: InMemoryLog) -> list[LogRecord]:
    out: list[LogRecord] = []
    for topic in (ACCOUNT, USAGE):
        for p in log.partitions(topic):
            out += log.topics[topic][p]
    return out


def test_records_the_doors_reject_are_counted_by_reason_and_not_written() -> None:
    log = _log([SubscriptionStarted("a1", "c1", AT, "writer"), _usage("u1", "c1", AT)])
    good = encode_value(CODEC, _usage("u2", "c1", AT))
    wrong = (owner(b"c1", 3) + 1) % 3
    bad = [
        LogRecord(USAGE, 0, 99, b"c1", b"\x00garbage", 0),
        LogRecord(USAGE, 0, 100, None, good, 0),
        LogRecord(USAGE, wrong, 101, b"c1", good, 0),
        LogRecord(ACCOUNT, 0, 102, b"c1", good, 0),  # usage on the account topic
    ]
    out, tally = io.StringIO(), ExportTally()
    doors = Doors(CODEC, USAGE, ACCOUNT, 3)
    export_records([*_records(log), *bad], doors, Selection(AT, END), out, tally)
    assert (tally.usage, tally.account, tally.outside) == (1, 1, 0)
    assert sum(tally.rejected.values()) == 4
    assert set(tally.rejected) == {
        "undecodable", "missing_key", "wrong_partition", "unknown_schema",
    }  # fmt: skip
    assert [line.count('"event_id": "') for line in out.getvalue().splitlines()] == [1, 1]


def test_the_selection_is_usage_in_the_range_and_account_events_before_its_end() -> None:
    before, inside, after = AT - timedelta(days=1), AT, END
    history: list[Event] = [
        SubscriptionStarted("a1", "c1", before, "writer"),
        SubscriptionStarted("a2", "c2", before, "writer"),
        SubscriptionChanged("a3", "c1", after, "starter"),
        _usage("u1", "c1", before),
        _usage("u2", "c1", inside),
        _usage("u3", "c2", inside),
        _usage("u4", "c1", after),
    ]
    doors = Doors(CODEC, USAGE, ACCOUNT, 3)
    out, tally = io.StringIO(), ExportTally()
    export_records(_records(_log(history)), doors, Selection(AT, END), out, tally)
    assert (tally.usage, tally.account, tally.outside) == (2, 2, 3)
    out, tally = io.StringIO(), ExportTally()
    export_records(
        _records(_log(history)), doors, Selection(AT, END, frozenset({"c2"})), out, tally
    )
    assert (tally.usage, tally.account) == (1, 1)
    assert '"c1"' not in out.getvalue()


def test_simulating_the_export_equals_simulating_the_events(tmp_path: Path) -> None:
    catalog = load_catalog(EXAMPLE)
    history: list[Event] = [
        SubscriptionStarted("a1", "c1", AT - timedelta(days=40), "writer"),
        SubscriptionStarted("a2", "c2", AT, "dev-api"),
        WalletDeposited("a3", "c2", AT, Decimal("5.00"), "USD"),
        *(_usage(f"u{i}", "c1", AT + timedelta(hours=i), "40000") for i in range(5)),
        _usage("u1", "c1", AT + timedelta(hours=1), "40000"),  # a duplicate
    ]
    out, tally = io.StringIO(), ExportTally()
    export_records(
        _records(_log(history)), Doors(CODEC, USAGE, ACCOUNT, 3), Selection(AT, END), out, tally
    )
    path = tmp_path / "export.jsonl"
    path.write_text(out.getvalue())
    exported, rejected = read_jsonl(path, account=False)
    assert rejected == []
    direct = result_json(simulate(catalog, history, AT, END))
    assert result_json(simulate(catalog, exported, AT, END)) == direct
    assert direct["invoices"]
