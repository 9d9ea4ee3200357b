"""Schemathesis against the served OpenAPI spec, in-process (ASGI): no server error.

Runs once with the admin key (every route reachable, writes recorded) and once with a
customer token (reads of its own and other customers, the portal)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from projections.http import tokens
from projections.http.app import create_app
from projections.read.store import InMemoryStore
from tests.projections.apphelpers import ADMIN_KEY, NOW, SECRET, RecordingWriter, fill
from tests.projections.apphelpers import settings as app_settings


def _schema() -> schemathesis.schemas.BaseSchema:
    store = InMemoryStore()
    fill(store)
    app = create_app(app_settings(), store, RecordingWriter(), clock=lambda: NOW + 1)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Built at import: schemathesis parametrizes at collection time (test code only).
schema = _schema()
CUSTOMER_TOKEN = tokens.issue(SECRET.encode(), "cus_a", now=NOW, ttl_seconds=3600)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_admin_no_server_error(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"x-admin-key": ADMIN_KEY}, checks=[not_a_server_error])


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_customer_no_server_error(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(
        headers={"authorization": f"Bearer {CUSTOMER_TOKEN}"}, checks=[not_a_server_error]
    )
