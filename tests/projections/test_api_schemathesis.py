"""Schemathesis against a live API: the app served by uvicorn on a local port, over
HTTP, its spec read from the served /openapi.json, with every default
check: no server error, every status code, body and content type as documented,
schema-valid requests accepted and schema-invalid ones rejected, undeclared methods
answered 405 (issue 22: "the contract is the test").

Runs once with the admin key (every route reachable, writes recorded) and once with a
customer token (reads of its own and other customers, the portal).

One bound is not a JSON Schema constraint: an event time must not be past admission's
future rule (`STREAMBILL_FUTURE_TOLERANCE` after the API's clock; the field's
description says so). Event times are generated inside it, from 1970 to the app's
clock, with any offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection

from projections.http import tokens
from projections.http.app import create_app
from projections.read.store import InMemoryStore
from tests.projections.apphelpers import ADMIN_KEY, NOW, SECRET, RecordingWriter, fill, serve
from tests.projections.apphelpers import settings as app_settings

_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_EVENT_TIMES = st.builds(
    lambda at, tz: at.astimezone(tz).isoformat(),
    st.datetimes(
        min_value=datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        max_value=datetime.fromtimestamp(NOW, UTC).replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    _OFFSETS,
)
schemathesis.openapi.format("date-time", _EVENT_TIMES)


def _schema() -> schemathesis.schemas.BaseSchema:
    store = InMemoryStore()
    fill(store)
    # The customer and address rates off: one customer and one client address make
    # every request here, and the routes, not 429s, are what is tested
    # (test_limits.py tests the limits).
    unlimited = app_settings().model_copy(
        update={"api_customer_rate_limit": 0, "api_anonymous_rate_limit": 0}
    )
    app = create_app(unlimited, store, RecordingWriter(), clock=lambda: NOW + 1)
    return schemathesis.openapi.from_url(f"{serve(app)}/openapi.json")


# Built at import: schemathesis parametrizes at collection time (test code only); the
# server thread lives as long as the test process.
schema = _schema()
CUSTOMER_TOKEN = tokens.issue(SECRET.encode(), "cus_a", now=NOW, ttl_seconds=3600)


def _excluded(case: schemathesis.Case[Any]) -> list[Any]:
    """Ingest takes a batch item by item (202 with the refused items' errors): a list
    with one schema-invalid item among valid ones is accepted in part by design, which
    the negative-data check would count as a schema-violating request accepted. Every
    other check still runs on such batches, and single events keep every check."""
    partial = case.operation.path == "/v1/usage" and isinstance(case.body, list)
    return [negative_data_rejection] if partial else []


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_admin_every_check(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"x-admin-key": ADMIN_KEY}, excluded_checks=_excluded(case))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_customer_every_check(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"authorization": f"Bearer {CUSTOMER_TOKEN}"})
