"""`streambill export` against a real broker: events published on the input topics,
exported to a file and simulated, bill as the same events simulated directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from billing.events import (
    CreditsPurchased,
    Event,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from processors.simulate.lines import event_line
from streambill.cli.main import build_parser, main
from streambill.config.settings import ACCOUNT_EVENTS, REPO_ROOT, USAGE_EVENTS, Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import WireValue
from tests.kafka_helpers import produce

CATALOG = REPO_ROOT / "examples" / "catalog.yaml"
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _usage(event_id: str, customer: str, hours: int, quantity: int = 60000) -> UsageRecorded:
    return UsageRecorded(
        event_id, customer, "tokens", Decimal(quantity), AT + timedelta(hours=hours), {}
    )


HISTORY: list[Event] = [
    SubscriptionStarted("a1", "cus_w", AT - timedelta(days=31), "writer"),
    SubscriptionStarted("a2", "cus_i", AT, "image-credits"),
    CreditsPurchased("a3", "cus_i", AT + timedelta(hours=1), "credits-100"),
    SubscriptionStarted("a4", "cus_d", AT, "dev-api"),
    WalletDeposited("a5", "cus_d", AT, Decimal("5.00"), "USD"),
    _usage("u0", "cus_w", -24),  # before --from: not exported
    *(_usage(f"u{i}", "cus_w", i) for i in range(1, 6)),
    _usage("u3", "cus_w", 3),  # a duplicate: simulate's dedupe, not export's business
    UsageRecorded(
        "u9", "cus_i", "image_generation", Decimal(2), AT + timedelta(hours=2),
        {"complexity": "complex"},
    ),
    _usage("u10", "cus_w", 24 * 31 + 1),  # after --to: not exported
]  # fmt: skip


def _publish(settings: Settings) -> None:
    items: list[tuple[str, WireValue | bytes]] = [
        (USAGE_EVENTS if isinstance(e, UsageRecorded) else ACCOUNT_EVENTS, e) for e in HISTORY
    ]
    items.append((USAGE_EVENTS, b"\x00 not an event"))  # key b"garbage": undecodable
    produce(settings, items, Codec())


def _simulate_json(capsys: pytest.CaptureFixture[str], *files: str) -> dict[str, object]:
    events = ["--events", files[0], *(["--accounts", files[1]] if len(files) > 1 else [])]
    code = main([
        "simulate", "--catalog", str(CATALOG), *events,
        "--from", "2026-01-01", "--to", "2026-02-01", "--json",
    ])  # fmt: skip
    assert code == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_export_then_simulate_equals_simulating_the_events(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish(env)
    out = tmp_path / "history.jsonl"
    args = build_parser().parse_args(
        ["export", "--from", "2026-01-01", "--to", "2026-02-01", "--out", str(out)]
    )
    assert args.func(args, env) == 0
    err = capsys.readouterr().err
    assert "exported 7 usage and 5 account event(s)" in err
    assert "2 outside the range" in err and "1 undecodable" in err

    # The same events written directly, as the two files simulate has always read.
    usage = tmp_path / "usage.jsonl"
    accounts = tmp_path / "accounts.jsonl"
    usage.write_text("".join(event_line(e) for e in HISTORY if isinstance(e, UsageRecorded)))
    accounts.write_text("".join(event_line(e) for e in HISTORY if not isinstance(e, UsageRecorded)))
    exported = _simulate_json(capsys, str(out))
    direct = _simulate_json(capsys, str(usage), str(accounts))
    assert exported == direct
    assert exported["invoices"]  # something was billed


def test_export_of_one_customer(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish(env)
    args = build_parser().parse_args(
        ["export", "--from", "2026-01-01", "--to", "2026-02-01", "--customer", "cus_i"]
    )
    assert args.func(args, env) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert {line["customer_id"] for line in lines} == {"cus_i"}
    assert [line["event_id"] for line in lines] == ["a2", "a3", "u9"]
    assert "rejected" not in captured.err  # other keys are not read at all
