"""The plan check of the subscription and plan-change routes (`projections.http.plans`):
a well-formed command naming a plan or version the catalog lacks, or a plan retired
for new subscriptions, is a 409 naming the known versions, and nothing is written;
the API takes its catalog from the file or from the catalog topic (on the real
broker, watched for new versions and retirements)."""

from __future__ import annotations

import argparse
import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from billing.catalog import Catalog
from billing.errors import CatalogError
from projections.commands import run_api
from projections.http.app import create_app
from projections.http.plans import FixedPlans, PlanOffer, WatchedPlans
from projections.read.model import Source, to_write
from projections.read.store import InMemoryStore
from projections.wiring import build_plans
from streambill.cli.main import main
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import CUSTOMER_STATE, REPO_ROOT, Settings
from streambill.config.topics import create_topics
from tests.integration.fold_support import delete_topics_with_prefix
from tests.projections import samples
from tests.projections.apphelpers import ADMIN_KEY, NOW, RecordingWriter, fill, settings

ADMIN = {"x-admin-key": ADMIN_KEY}
EXAMPLE = REPO_ROOT / "examples" / "catalog.yaml"
RETIRED_AT = datetime(2026, 11, 1, tzinfo=UTC)
BEFORE, AFTER = "2026-10-31T23:59:59Z", "2026-11-02T10:00:00Z"
SUBSCRIBE = "/v1/customers/cus_a/subscription"
CHANGE = "/v1/customers/cus_a/plan-change"


def _versions_catalog() -> Catalog:
    """The example catalog with `writer` at versions 1, 2 and 3."""
    base = load_catalog(EXAMPLE)
    v1 = base.plans["writer"]
    return Catalog(
        features=base.features,
        plans={**base.plans, "writer": dataclasses.replace(v1, version=3)},
        credit_packs=base.credit_packs,
        older=(*base.older, v1, dataclasses.replace(v1, version=2)),
    )


OFFER = PlanOffer(_versions_catalog(), {"voice": RETIRED_AT})


@pytest.fixture
def writer() -> RecordingWriter:
    return RecordingWriter()


@pytest.fixture
def client(writer: RecordingWriter) -> Iterator[TestClient]:
    store = InMemoryStore()
    fill(store)
    on_voice = dataclasses.replace(samples.metered_state("cus_v"), plan_id="voice")
    store.apply(store.ensure_generation(), [to_write(on_voice, Source(CUSTOMER_STATE, 2, 1))])
    app = create_app(settings(), store, writer, clock=lambda: NOW + 1, plans=FixedPlans(OFFER))
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _body(plan: str, version: int | None = None, at: str = AFTER) -> dict[str, object]:
    body: dict[str, object] = {"event_id": "e-1", "plan_id": plan, "timestamp": at}
    if version is not None:
        body["plan_version"] = version
    return body


@pytest.mark.parametrize("route", [SUBSCRIBE, CHANGE])
def test_an_unknown_version_is_409_naming_the_known_ones(
    client: TestClient, writer: RecordingWriter, route: str
) -> None:
    r = client.post(route, json=_body("writer", 4), headers=ADMIN)
    assert r.status_code == 409
    assert r.json() == {
        "error": "unknown_plan",
        "detail": "plan_version: plan 'writer' has no version 4 (known versions: 1, 2, 3);"
        " publish it first",
    }
    assert writer.calls == []  # nothing reached the SDK, so nothing Kafka


@pytest.mark.parametrize("route", [SUBSCRIBE, CHANGE])
@pytest.mark.parametrize("plan", ["nope", "writer@2"])
def test_an_unknown_plan_is_409_naming_the_plans(
    client: TestClient, writer: RecordingWriter, route: str, plan: str
) -> None:
    r = client.post(route, json=_body(plan), headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"] == "unknown_plan"
    detail = r.json()["detail"]
    assert detail.startswith(f"plan_id: no plan {plan!r} in the catalog (plans: dev-api, ")
    assert "writer" in detail and writer.calls == []


def test_known_versions_pinned_or_not_are_written(
    client: TestClient, writer: RecordingWriter
) -> None:
    assert client.post(SUBSCRIBE, json=_body("writer", 2), headers=ADMIN).status_code == 202
    assert client.post(SUBSCRIBE, json=_body("starter"), headers=ADMIN).status_code == 202
    assert client.post(CHANGE, json=_body("writer", 3), headers=ADMIN).status_code == 202
    assert client.post(CHANGE, json=_body("writer", 3)).status_code == 401  # admin scope only
    bad = client.post(CHANGE, json=_body("writer", 0), headers=ADMIN)  # not a version at all
    assert bad.status_code == 422 and "plan_version" in bad.text
    assert [(c[0], c[1][1], c[2]["plan_version"]) for c in writer.calls] == [
        ("subscribe", "writer", 2),
        ("subscribe", "starter", None),
        ("change_plan", "writer", 3),
    ]


def test_a_retired_plan_takes_no_new_subscription(
    client: TestClient, writer: RecordingWriter
) -> None:
    r = client.post(SUBSCRIBE, json=_body("voice", 1), headers=ADMIN)
    assert r.status_code == 409
    assert r.json() == {
        "error": "plan_retired",
        "detail": "plan_id: plan 'voice' is retired since 2026-11-01T00:00:00+00:00: it takes"
        " no new subscriptions (its subscribers keep their version; versions 1)",
    }
    # a subscription dated before the retirement records one made before it
    before = client.post(SUBSCRIBE, json=_body("voice", at=BEFORE), headers=ADMIN)
    assert before.status_code == 202
    assert [c[1][1] for c in writer.calls] == ["voice"]


def test_a_change_to_a_retired_plan_is_for_its_subscribers_only(
    client: TestClient, writer: RecordingWriter
) -> None:
    r = client.post(CHANGE, json=_body("voice", 1), headers=ADMIN)  # cus_a is on "pro"
    assert r.status_code == 409 and r.json()["error"] == "plan_retired"
    assert "this customer is on 'pro'" in r.json()["detail"]
    unknown = client.post("/v1/customers/cus_x/plan-change", json=_body("voice"), headers=ADMIN)
    assert "has no subscription in the read model" in unknown.json()["detail"]
    own = client.post("/v1/customers/cus_v/plan-change", json=_body("voice", 1), headers=ADMIN)
    assert own.status_code == 202  # a subscriber moves between its plan's versions
    assert [(c[0], c[1][0]) for c in writer.calls] == [("change_plan", "cus_v")]


def test_the_watched_catalog_refreshes_only_when_due_and_changed() -> None:
    now = [0.0]
    v3_only = PlanOffer(_versions_catalog())
    calls: list[str] = []
    answers = [False, True, CatalogError(["broker gone"])]

    def changed() -> bool:
        calls.append("changed")
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def load() -> PlanOffer:
        calls.append("load")
        return v3_only

    plans = WatchedPlans(OFFER, changed, load, refresh_seconds=10, clock=lambda: now[0])
    assert plans.current() is OFFER and calls == []  # not due
    now[0] = 10
    assert plans.current() is OFFER and calls == ["changed"]  # due, unchanged
    now[0] = 15
    assert plans.current() is OFFER and calls == ["changed"]  # looked 5 s ago
    now[0] = 20
    assert plans.current() is v3_only and calls == ["changed", "changed", "load"]
    now[0] = 30
    assert plans.current() is v3_only  # the topic cannot be read: the catalog held stays


def test_the_topic_source_needs_its_plans_passed() -> None:
    topic = settings().model_copy(update={"catalog_source": "topic"})
    with pytest.raises(ValueError, match="STREAMBILL_CATALOG_SOURCE=topic"):
        create_app(topic, InMemoryStore(), RecordingWriter())


def test_the_api_refuses_to_start_without_its_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = settings().model_copy(update={"catalog_path": tmp_path / "none.yaml"})
    assert run_api(argparse.Namespace(host=None, port=None, workers=1), missing) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.fixture
def topic_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Topics of their own, the catalog read from the topic, looked at every 0.2 s."""
    mine = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}plans-{uuid.uuid4().hex[:8]}.",
            "catalog_source": "topic",
            "api_catalog_refresh": 0.2,
            "admin_key": SecretStr(ADMIN_KEY),
        }
    )
    create_topics(mine)
    monkeypatch.setenv("STREAMBILL_BOOTSTRAP_SERVERS", mine.bootstrap_servers)
    monkeypatch.setenv("STREAMBILL_TOPIC_PREFIX", mine.topic_prefix)
    yield mine
    delete_topics_with_prefix(mine, mine.topic_prefix)


@pytest.mark.integration
def test_the_topic_catalog_with_retirements_and_new_versions(
    topic_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = topic_settings
    assert main(["catalog", "publish", str(EXAMPLE)]) == 0
    assert main(["catalog", "retire", "voice"]) == 0
    capsys.readouterr()
    writer = RecordingWriter()
    app = create_app(mine, InMemoryStore(), writer, plans=build_plans(mine))
    with TestClient(app, base_url="https://testserver") as c:
        # the retirement's time is the broker run's: any event time from now on is after it
        now = datetime.now(UTC).isoformat()
        retired = c.post(SUBSCRIBE, json=_body("voice", at=now), headers=ADMIN)
        assert retired.status_code == 409 and retired.json()["error"] == "plan_retired"
        v2 = c.post(SUBSCRIBE, json=_body("writer", 2, at=now), headers=ADMIN)
        assert v2.status_code == 409 and "known versions: 1)" in v2.json()["detail"]
        text = EXAMPLE.read_text()
        start = text.index("  - id: writer\n    version: 1\n")
        end = text.index("\n\n", start)
        bumped = (
            text[start:end].replace("version: 1", "version: 2", 1).replace('"19.00"', '"29.00"')
        )
        path = tmp_path / "catalog-v2.yaml"
        path.write_text(text[:end] + "\n" + bumped + text[end:])
        assert main(["catalog", "publish", str(path)]) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # published while the API runs: seen within 0.2 s
            v2 = c.post(SUBSCRIBE, json=_body("writer", 2, at=now), headers=ADMIN)
            if v2.status_code == 202:
                break
            time.sleep(0.1)
        assert v2.status_code == 202
    assert [(c[1][1], c[2]["plan_version"]) for c in writer.calls] == [("writer", 2)]
