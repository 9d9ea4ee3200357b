"""`streambill catalog check` and `streambill simulate` on small fixtures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing.events import CreditsGranted, Event, SubscriptionStarted, UsageRecorded
from processors.simulate.simulation import simulate
from streambill.cli.main import main
from streambill.config.catalog_file import load_catalog

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "simulate"
EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "catalog.yaml"


def run_json(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    code = main([
        "simulate", "--catalog", str(EXAMPLE), "--events", str(FIX / "usage.jsonl"),
        "--accounts", str(FIX / "accounts.jsonl"), "--from", "2026-01-01", "--to", "2026-02-01",
        "--json", *extra,
    ])  # fmt: skip
    assert code == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def test_catalog_check_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "check", str(EXAMPLE)]) == 0
    assert "ok (8 plans" in capsys.readouterr().out
    assert main(["catalog", "check", str(FIX / "bad_catalog.yaml")]) == 1
    out = capsys.readouterr().out
    assert "4 problem(s)" in out
    assert "plan 'mixed' field 'credit_packs': mixes consumption models" in out
    assert "plan 'mixed' field 'prices.tokens.unit_price': negative price -0.01" in out
    assert "plan 'ghost' field 'currency': unknown currency 'XYZ'" in out
    assert "plan 'ghost' field 'prices.images': price on unknown feature 'images'" in out
    assert main(["catalog", "check", str(FIX / "missing.yaml")]) == 1


def test_simulate_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys)
    assert set(doc) == {"invoices", "customers", "rejected"}
    by_customer = {(i["customer_id"], i["kind"]): i for i in doc["invoices"]}
    writer = by_customer[("cus_writer", "period")]
    assert writer["total"] == "22.00"
    assert (writer["plan_id"], writer["plan_version"], writer["currency"]) == ("writer", 1, "USD")
    assert (writer["period_start"], writer["period_end"]) == (
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
    )
    assert set(writer["lines"][0]) == {"description", "quantity", "unit_price", "amount"}
    assert [line["amount"] for line in writer["lines"]] == ["19.00", "0.00", "3.00"]
    assert by_customer[("cus_img", "purchase")]["total"] == "10.00"
    assert by_customer[("cus_dev", "purchase")]["total"] == "5.00"
    assert by_customer[("cus_dev", "period")]["total"] == "0.00"
    customers = {c["customer_id"]: c for c in doc["customers"]}
    assert customers["cus_writer"] == {
        "customer_id": "cus_writer", "plan_id": "writer", "usage": {"tokens": "250000"},
        "credits_remaining": None, "balance": None,
    }  # fmt: skip
    assert customers["cus_img"]["credits_remaining"] == "80"  # 100 - 10 - 2 x 5
    assert customers["cus_dev"]["balance"] == "3.00"  # 5.00 - 2.00
    assert doc["rejected"] == [
        {"event_id": None, "reason": "undecodable"},
        {"event_id": "a6", "reason": "unknown_schema"},
        {"event_id": "u6", "reason": "token_breakdown"},
        {"event_id": "u7", "reason": "no_subscription"},
        {"event_id": "u8", "reason": "negative_quantity"},
    ]


def _other_catalog(
    tmp_path: Path,
    writer_rate: str = "0.02",
    pack_price: str = "10.00",
    rename: dict[str, str] | None = None,
) -> Path:
    """examples/catalog.yaml with the writer's overage rate, credits-100's price and
    plan ids changed: the other catalog of a back-test."""
    data = yaml.safe_load(EXAMPLE.read_text())
    for plan in data["plans"]:
        if plan["id"] == "writer":
            plan["version"] = 2
            plan["prices"]["tokens"]["unit_price"] = writer_rate
        plan["id"] = (rename or {}).get(plan["id"], plan["id"])
    for pack in data["credit_packs"]:
        if pack["id"] == "credits-100":
            pack["price"] = pack_price
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_simulate_compare_back_tests_a_price_change(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = run_json(capsys, "--compare", str(_other_catalog(tmp_path, writer_rate="0.03")))
    cmp = doc["comparison"]
    writer = next(c for c in cmp["customers"] if c["customer_id"] == "cus_writer")
    # 150,000 overage tokens: USD 3.00 -> 4.50
    assert (writer["revenue"], writer["other_revenue"], writer["difference"]) == (
        "22.00",
        "23.50",
        "1.50",
    )
    # Revenue is the period invoices; the purchases of cus_img (a credit pack, 10.00)
    # and cus_dev (a wallet deposit, 5.00) are prepayments, reported apart.
    assert cmp["totals"] == [
        {"currency": "USD", "revenue": "22.00", "other_revenue": "23.50", "difference": "1.50"}
    ]
    assert cmp["prepayments"]["totals"] == [
        {"currency": "USD", "prepaid": "15.00", "other_prepaid": "15.00", "difference": "0.00"}
    ]
    assert cmp["plan_map"] == {} and cmp["other_only_rejections"] == {}


def test_simulate_compare_refuses_plans_missing_from_the_other_catalog(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The other catalog has no image-credits or dev-api plan: their customers are not
    priced at 0.00 there (the defect), the comparison is refused naming both."""
    code = main([
        "simulate", "--catalog", str(EXAMPLE), "--events", str(FIX / "usage.jsonl"),
        "--accounts", str(FIX / "accounts.jsonl"), "--from", "2026-01-01", "--to", "2026-02-01",
        "--json", "--compare", str(FIX / "writer_price_rise.yaml"),
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert "missing from" in captured.err and "dev-api, image-credits" in captured.err
    assert "--map OLD_PLAN=NEW_PLAN" in captured.err


def test_simulate_compare_prices_mapped_plans_under_their_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = _other_catalog(
        tmp_path, pack_price="12.00", rename={"image-credits": "images", "dev-api": "wallet"}
    )
    doc = run_json(
        capsys, "--compare", str(other), "--map", "image-credits=images", "--map", "dev-api=wallet"
    )
    cmp = doc["comparison"]
    assert cmp["plan_map"] == {"dev-api": "wallet", "image-credits": "images"}
    assert cmp["totals"] == [
        {"currency": "USD", "revenue": "22.00", "other_revenue": "22.00", "difference": "0.00"}
    ]
    prepaid = {c["customer_id"]: c for c in cmp["prepayments"]["customers"]}
    assert (prepaid["cus_img"]["prepaid"], prepaid["cus_img"]["other_prepaid"]) == (
        "10.00",
        "12.00",
    )
    assert prepaid["cus_dev"]["difference"] == "0.00"
    assert cmp["other_only_rejections"] == {}


def test_simulate_compare_refuses_a_map_to_a_plan_also_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = _other_catalog(tmp_path, rename={"image-credits": "images", "dev-api": "wallet"})
    code = main([
        "simulate", "--catalog", str(EXAMPLE), "--events", str(FIX / "usage.jsonl"),
        "--accounts", str(FIX / "accounts.jsonl"), "--from", "2026-01-01", "--to", "2026-02-01",
        "--compare", str(other), "--map", "image-credits=imagez", "--map", "dev-api=wallet",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "--map target plan(s) missing from" in captured.err and "imagez" in captured.err


@pytest.mark.parametrize("bad", [["--map", "dev-api"], ["--map", "=x"], ["--map", "a=b"]])
def test_simulate_map_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: list[str]
) -> None:
    compare = [] if bad[-1] == "a=b" else ["--compare", str(_other_catalog(tmp_path))]
    code = main([
        "simulate", "--catalog", str(EXAMPLE), "--events", str(FIX / "usage.jsonl"),
        "--from", "2026-01-01", "--to", "2026-02-01", *compare, *bad,
    ])  # fmt: skip
    assert code == 2
    assert "--map" in capsys.readouterr().err


def test_simulate_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    other = _other_catalog(tmp_path, writer_rate="0.03", rename={"dev-api": "wallet"})
    code = main([
        "simulate", "--catalog", str(EXAMPLE), "--events", str(FIX / "usage.jsonl"),
        "--accounts", str(FIX / "accounts.jsonl"), "--from", "2026-01-01", "--to", "2026-02-01",
        "--compare", str(other), "--map", "dev-api=wallet",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Invoices (5)" in out and "USD 22.00" in out
    assert "Rejected (5)" in out and "negative_quantity" in out
    assert "plan mapped in" in out and "dev-api -> wallet" in out
    revenue, prepaid = out.split("Revenue compared with")[1].split("Prepayments compared with")
    assert "TOTAL" in revenue and "+1.50" in revenue and "22.00" in revenue
    assert "TOTAL" in prepaid and "15.00" in prepaid


def test_simulate_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["simulate", "--catalog", str(EXAMPLE), "--events", str(FIX / "usage.jsonl")]
    assert main([*base, "--from", "yesterday", "--to", "2026-02-01"]) == 2
    assert (
        main([*base, "--from", "2026-01-01", "--to", "2026-02-01", "--accounts", "/nonexistent"])
        == 2
    )
    bad = [
        "simulate",
        "--catalog",
        str(FIX / "bad_catalog.yaml"),
        "--events",
        str(FIX / "usage.jsonl"),
    ]
    assert main([*bad, "--from", "2026-01-01", "--to", "2026-02-01"]) == 1


def _jsonl(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


DEV_ACCOUNTS = (
    {"type": "subscription_started", "event_id": "a1", "customer_id": "cus_dev",
     "timestamp": "2026-01-01T00:00:00Z", "plan_id": "dev-api"},
    {"type": "wallet_deposited", "event_id": "a2", "customer_id": "cus_dev",
     "timestamp": "2026-01-01T00:00:00Z", "amount": "1.00", "currency": "USD"},
)  # fmt: skip


def _tokens(event_id: str, at: str, output: int) -> dict[str, Any]:
    return {
        "event_id": event_id, "customer_id": "cus_dev", "feature_id": "tokens", "quantity": output,
        "timestamp": at, "properties": {"model": "small", "input_tokens": "0",
                                        "output_tokens": str(output)},
    }  # fmt: skip


@pytest.mark.parametrize("february_event", [False, True])
@pytest.mark.parametrize("to", ["2026-02-01", "2026-03-01"])
def test_simulate_final_balance_after_a_period_that_closed_below_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, february_event: bool, to: str
) -> None:
    """January overdraws the wallet by 0.80 and its invoice bills it: as of --to the
    balance is zero, whether or not an event of February arrived (the defect: -0.80
    until one did)."""
    usage = [_tokens("u1", "2026-01-10T00:00:00Z", 1_200_000)]  # 1.80 at 1.50 per million
    if february_event:
        usage.append(_tokens("u2", "2026-02-10T00:00:00Z", 0))
    code = main([
        "simulate", "--catalog", str(EXAMPLE), "--from", "2026-01-01", "--to", to, "--json",
        "--events", str(_jsonl(tmp_path / "u.jsonl", *usage)),
        "--accounts", str(_jsonl(tmp_path / "a.jsonl", *DEV_ACCOUNTS)),
    ])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    january = next(i for i in doc["invoices"] if i["period_start"] == "2026-01-01T00:00:00Z"
                   and i["kind"] == "period")  # fmt: skip
    assert january["total"] == "0.80" and "owed" in january["lines"][-1]["description"]
    [customer] = doc["customers"]
    assert customer["balance"] == "0.00"
    jan_usage = {"tokens": "1200000"}
    feb_usage = {"tokens": "0"} if february_event else {}
    assert customer["usage"] == (jan_usage if to == "2026-02-01" else feb_usage)


def test_simulate_final_credits_are_as_of_the_end_of_the_range() -> None:
    """Credits are not settled by periods: a negative count stays negative; a grant
    expiring exactly at --to no longer counts, one expiring later still does."""
    catalog = load_catalog(EXAMPLE)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 3, 1, tzinfo=UTC)
    events: list[Event] = [
        SubscriptionStarted("s", "c", at, "image-credits"),
        UsageRecorded("u", "c", "image_generation", Decimal(3), at, {"complexity": "ultra"}),
        CreditsGranted("g1", "c", at + timedelta(days=1), Decimal(7), end),
        CreditsGranted("g2", "c", at + timedelta(days=1), Decimal(5), end + timedelta(days=1)),
    ]
    [customer] = simulate(catalog, events, at, end).customers
    assert customer.credits_remaining == Decimal(-25)  # -30 + 5 (the 7 expired at --to)
