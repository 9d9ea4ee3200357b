"""Issue 22: the ingest body under Hypothesis never gets a 5xx. Any JSON value, any
item near a valid one (each field replaced by an arbitrary JSON value or string),
and any bytes answer 202 or 422 (and 401 without a key) with the API's shapes; the
OpenAPI document declares every error status with its body model."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from projections.http.app import create_app
from projections.read.store import InMemoryStore
from tests.projections.apphelpers import ADMIN_KEY, NOW, RecordingWriter, settings

ADMIN = {"x-admin-key": ADMIN_KEY}
VALID = {
    "event_id": "e-1",
    "customer_id": "cus_a",
    "feature_id": "api_calls",
    "quantity": "3",
    "timestamp": "2027-01-15T00:00:00Z",
    "properties": {"model": "m"},
}
# The address rate off: the keyless requests below would block the one test address
# (test_limits.py tests that); here only the answers to the bodies matter.
_unlimited = settings().model_copy(update={"api_anonymous_rate_limit": 0})
_client = TestClient(
    create_app(_unlimited, InMemoryStore(), RecordingWriter(), clock=lambda: NOW + 1)
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=20,
)
awkward_text = st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59.999999-14:00",
        "１２",
        "1e400",
        "-0",
        "NaN",
        "\x00",
        "é" * 300,
        "2027-02-30T00:00:00Z",
        "",
    ]
) | st.text(max_size=50)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = dict(VALID)
    for field in draw(st.sets(st.sampled_from([*VALID, "extra"]), max_size=3)):
        if draw(st.booleans()):
            item.pop(field, None)
        else:
            item[field] = draw(json_values | awkward_text)
    return item


def _check(r: Any) -> None:
    assert r.status_code in (202, 422), (r.status_code, r.text)
    body = r.json()
    assert set(body) in ({"accepted", "errors"}, {"error", "detail"})


@given(json_values)
@hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_json_body_is_202_or_422(body: Any) -> None:
    _check(_client.post("/v1/usage", json=body, headers=ADMIN))


@given(st.lists(near_valid(), min_size=1, max_size=4) | near_valid())
@hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_items_near_a_valid_one_are_202_or_422(body: Any) -> None:
    _check(_client.post("/v1/usage", json=body, headers=ADMIN))


@given(st.binary(max_size=200))
@hsettings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_bytes_are_4xx(raw: bytes) -> None:
    r = _client.post(
        "/v1/usage", content=raw, headers={**ADMIN, "content-type": "application/json"}
    )
    assert r.status_code in (202, 422), (r.status_code, r.text)
    assert _client.post("/v1/usage", content=raw).status_code == 401


def test_the_openapi_document_declares_every_error_with_its_model() -> None:
    spec = _client.get("/openapi.json").json()
    writes = {
        "/v1/usage",
        *(
            p
            for p in spec["paths"]
            if p.startswith("/v1/customers/") and "post" in spec["paths"][p]
        ),
    }
    for path in writes:
        responses = spec["paths"][path]["post"]["responses"]
        for code in ("401", "403", "413", "422", "429", "503"):
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema, (path, code)
    read = spec["paths"]["/v1/customers/{customer_id}/usage"]["get"]["responses"]
    for code in ("401", "403", "404", "422", "429", "503"):
        assert read[code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    body = spec["paths"]["/v1/usage"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["anyOf"][1]["maxItems"] == 1000
