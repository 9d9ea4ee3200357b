"""The entitlement check denies a feature the customer's plan version does not bill
(issue 18: it answered `allowed: true` for a feature whose usage the worker then
dead-lettered `unknown_feature`, unbilled), and names why whenever it denies."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from projections.http.app import create_app
from projections.http.models import EntitlementOut
from projections.http.plans import FixedPlans, PlanOffer
from projections.read.model import Source, to_write
from projections.read.store import InMemoryStore
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import CUSTOMER_STATE, REPO_ROOT
from tests.projections import samples
from tests.projections.apphelpers import ADMIN_KEY, NOW, RecordingWriter, settings

ADMIN = {"x-admin-key": ADMIN_KEY}

CATALOG = load_catalog(REPO_ROOT / "examples" / "catalog.yaml")


@pytest.fixture
def client() -> Iterator[TestClient]:
    store = InMemoryStore()
    writer = dataclasses.replace(samples.metered_state("cus_w"), plan_id="writer")
    credits = dataclasses.replace(
        samples.credits_state("cus_i", remaining="0", at=samples.T0),
        plan_id="image-credits", allowed=False,
    )  # fmt: skip
    ended = dataclasses.replace(writer, customer_id="cus_x", status="cancelled", allowed=False)
    unknown_version = dataclasses.replace(writer, customer_id="cus_u", plan_version=9)
    store.apply(
        store.ensure_generation(),
        [
            to_write(s, Source(CUSTOMER_STATE, 0, n))
            for n, s in enumerate([writer, credits, ended, unknown_version])
        ],
    )
    app = create_app(
        settings(), store, RecordingWriter(), clock=lambda: NOW + 1,
        plans=FixedPlans(PlanOffer(CATALOG)),
    )  # fmt: skip
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _check(client: TestClient, customer: str, feature: str) -> dict[str, object]:
    r = client.get(f"/v1/customers/{customer}/entitlements/{feature}", headers=ADMIN)
    assert r.status_code == 200
    body: dict[str, object] = r.json()
    EntitlementOut.model_validate(body)
    return body


def test_a_feature_the_plan_prices_is_allowed(client: TestClient) -> None:
    body = _check(client, "cus_w", "tokens")
    assert (body["allowed"], body["reason"]) == (True, None)


def test_a_feature_the_plan_does_not_bill_is_denied_with_a_reason(client: TestClient) -> None:
    assert "image_generation" not in CATALOG.version("writer", 1).prices  # type: ignore[union-attr]
    body = _check(client, "cus_w", "image_generation")
    assert (body["allowed"], body["reason"]) == (False, "feature_not_in_plan")


def test_denials_name_their_reason(client: TestClient) -> None:
    credits = _check(client, "cus_i", "image_generation")
    assert (credits["allowed"], credits["reason"], credits["remaining"]) == (
        False, "credits_exhausted", "0",
    )  # fmt: skip
    ended = _check(client, "cus_x", "tokens")
    assert (ended["allowed"], ended["reason"]) == (False, "subscription_ended")


def test_a_version_the_api_does_not_hold_yet_keeps_the_snapshots_answer(
    client: TestClient,
) -> None:
    """A customer pinned to a version published after the API last looked: the check
    cannot tell which features it bills, and does not deny on a guess."""
    body = _check(client, "cus_u", "image_generation")
    assert (body["allowed"], body["reason"]) == (True, None)
    tokens = _check(client, "cus_u", "tokens")
    assert Decimal(str(tokens["remaining"])) == Decimal(400)  # the snapshot's allowance
