"""`streambill catalog migrate`'s pure parts: which customers move, what is refused
before anything is written, and the event ids that make a re-run a duplicate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from billing.events import CustomerStateChanged
from streambill.cli.migrate import Migration, refusal, select
from tests.unit.processors.close.test_plan_versions import V1, V1_V2
from tests.unit.samples import SAMPLES

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
M = Migration("writer", 1, 2, AT)
SNAP = SAMPLES["streambill.state.v1.CustomerStateChanged"]
assert isinstance(SNAP, CustomerStateChanged)


def _states() -> dict[str, CustomerStateChanged]:
    on = replace(SNAP, status="active", plan_id="writer", plan_version=1)
    return {
        "cus_a": replace(on, customer_id="cus_a"),
        "cus_b": replace(on, customer_id="cus_b"),
        "cus_v2": replace(on, customer_id="cus_v2", plan_version=2),
        "cus_gone": replace(on, customer_id="cus_gone", status="cancelled"),
        "cus_other": replace(on, customer_id="cus_other", plan_id="scale"),
    }


def test_everyone_active_on_the_from_version_moves() -> None:
    assert select(_states(), M, None) == (["cus_a", "cus_b"], [])


def test_named_customers_move_only_if_on_the_from_version() -> None:
    moving, skipped = select(_states(), M, ["cus_b", "cus_v2", "nobody", "cus_b"])
    assert (moving, skipped) == (["cus_b"], ["cus_v2", "nobody"])


def test_a_version_not_in_the_catalog_is_refused_before_writing() -> None:
    assert refusal(V1_V2, M) is None
    assert "no v2" in (refusal(V1, M) or "")
    assert "not in the catalog" in (refusal(V1, replace(M, plan_id="nope")) or "")
    assert "the same" in (refusal(V1_V2, replace(M, to_version=1)) or "")


def test_the_event_id_is_deterministic_for_a_customer_and_time() -> None:
    assert M.event_id("cus_a") == "migrate:writer:v1-v2:cus_a:2026-12-01T09:30:00Z"
    assert M.event_id("cus_a") != replace(M, at=AT.replace(minute=31)).event_id("cus_a")
