"""The HTTP API: reads from the Redis read models only; admin writes go to Kafka
through the SDK. Built by `create_app(settings, read_models, sdk)`; there is no
module-level app. Every `ReadSideError` maps to HTTP in `_error_response`, the one
place where errors become status codes.
"""

# No `from __future__ import annotations`: FastAPI must see the route signatures
# evaluated, including the `Annotated` dependencies defined inside the factory.

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from projections.http import tokens, views
from projections.http.admin import AdminWriter, admin_router
from projections.http.auth import (
    ADMIN_HEADER,
    KEY_HEADER,
    Authenticator,
    Caller,
    Limits,
    bearer_token,
    presented_key,
    request_address,
)
from projections.http.gate import Gate, error_content, write_routes
from projections.http.keys import KeyFile
from projections.http.limits import RateLimiter
from projections.http.models import (
    AlertHistoryOut,
    AlertOut,
    BalanceOut,
    EntitlementOut,
    InvoiceOut,
    UpcomingInvoiceOut,
    UsageOut,
    error_responses,
)
from projections.http.plans import FixedPlans, PlanOffer, PlanSource
from projections.http.portal import portal_router
from projections.http.sessions import InMemorySessions, Sessions, SessionStore
from projections.read.errors import ReadSideError
from projections.read.store import ReadModelStore
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings

CustomerId = Annotated[str, Path(min_length=1, max_length=200)]
READ_ERRORS = error_responses(401, 403, 404, 422, 429, 503)
AUTH_HEADERS = [
    {"name": KEY_HEADER, "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": ADMIN_HEADER, "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "authorization", "in": "header", "required": False, "schema": {"type": "string"}},
]


def _error_response(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ReadSideError):  # pragma: no cover - registered for ReadSideError
        raise exc
    content, headers = error_content(exc)
    return JSONResponse(content, status_code=exc.status, headers=headers)


def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own validation errors in the API's one error shape, each field named."""
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for it
        raise exc
    fields = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    ]
    detail = "; ".join(fields) or "invalid request"
    return JSONResponse({"error": "invalid_request", "detail": detail}, status_code=422)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own errors in the API's error shape: a body that is
    not JSON (FastAPI's 400) is a permanent 422 naming the body; 404 and 405 of the
    router keep their status."""
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for it
        raise exc
    if exc.status_code == 400:
        return JSONResponse(
            {"error": "invalid_request", "detail": f"body: {exc.detail}"}, status_code=422
        )
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": code, "detail": str(exc.detail)},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


def create_app(
    settings: Settings,
    read_models: ReadModelStore,
    sdk: AdminWriter,
    *,
    clock: Callable[[], float] = time.time,
    sessions: SessionStore | None = None,
    plans: PlanSource | None = None,
) -> FastAPI:
    """The API over `read_models`, writing through `sdk`. `sessions` keeps the
    portal's sessions (`streambill api` passes Redis, `projections.wiring`); the
    default, a dict, serves tests and one process only. `plans` is the catalog the
    plan routes check against (`projections.wiring.build_plans`); the default reads
    `STREAMBILL_CATALOG_PATH` and is refused for the topic source, which needs one
    passed. `ValueError` naming the setting for a configuration that cannot serve
    (short secrets, a bad ttl, an unreadable keys file, no catalog); `CatalogError`
    for a catalog file that does not load."""
    if plans is None:
        if settings.catalog_source != "file":
            raise ValueError("STREAMBILL_CATALOG_SOURCE=topic: pass the topic's plans")
        plans = FixedPlans(PlanOffer(load_catalog(settings.catalog_path)))
    secret = settings.token_secret.get_secret_value() if settings.token_secret else None
    try:
        session_ttl = tokens.parse_ttl(settings.portal_session_ttl)
    except ValueError as exc:
        raise ValueError(f"STREAMBILL_PORTAL_SESSION_TTL: {exc}") from exc
    portal_sessions = Sessions(
        sessions if sessions is not None else InMemorySessions(),
        secret.encode("utf-8") if secret else None,
        session_ttl,
        clock,
    )
    auth = Authenticator(
        settings.admin_key.get_secret_value() if settings.admin_key else None,
        secret,
        clock,
        KeyFile(settings.api_keys_file) if settings.api_keys_file else None,
        Limits(
            keys=RateLimiter(settings.api_rate_limit, settings.api_rate_burst),
            customers=RateLimiter(
                settings.api_customer_rate_limit, settings.api_customer_rate_burst
            ),
            addresses=RateLimiter(
                settings.api_anonymous_rate_limit, settings.api_anonymous_rate_burst
            ),
        ),
    )
    app = FastAPI(
        title="streambill",
        version="1",
        description="Usage, allowance, credits, balance, invoices and entitlement checks, "
        "read from the projections; admin ingest and account commands.",
    )
    app.add_exception_handler(ReadSideError, _error_response)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    def check_reader(
        request: Request, customer_id: str, key: str | None, authorization: str | None
    ) -> Caller:
        """A key of scope `read` or the customer's own token, within the rates of the
        key, the customer, and the client address's failed authentications."""
        bearer = bearer_token(authorization)
        caller = auth.from_address(request_address(request.scope), lambda: auth.reader(key, bearer))
        caller.may_read(customer_id)
        return caller

    def reader(
        request: Request,
        customer_id: CustomerId,
        x_api_key: Annotated[str | None, Header(alias=KEY_HEADER)] = None,
        x_admin_key: Annotated[str | None, Header(alias=ADMIN_HEADER)] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Caller:
        return check_reader(
            request, customer_id, presented_key(x_api_key, x_admin_key), authorization
        )

    Reader = Annotated[Caller, Depends(reader)]

    @app.get("/v1/customers/{customer_id}/usage", response_model=UsageOut, responses=READ_ERRORS)
    def get_usage(customer_id: CustomerId, _: Reader) -> dict[str, Any]:
        """This period's usage per feature and the remaining allowance."""
        return views.usage(views.state_or_404(read_models, customer_id))

    @app.get(
        "/v1/customers/{customer_id}/balance", response_model=BalanceOut, responses=READ_ERRORS
    )
    def get_balance(customer_id: CustomerId, _: Reader) -> dict[str, Any]:
        """Credits (credits plans) or wallet balance (balance plans), the last top-up and
        the trend since it."""
        state = views.state_or_404(read_models, customer_id)
        return views.balance(state, views.trend(read_models, customer_id))

    @app.get(
        "/v1/customers/{customer_id}/upcoming-invoice",
        response_model=UpcomingInvoiceOut,
        responses=READ_ERRORS,
    )
    def get_upcoming(customer_id: CustomerId, _: Reader) -> dict[str, Any]:
        """The current period so far, priced by billing (a preview, not an invoice)."""
        return views.upcoming_invoice(views.state_or_404(read_models, customer_id))

    @app.get(
        "/v1/customers/{customer_id}/alerts",
        response_model=list[AlertOut],
        responses=READ_ERRORS,
    )
    def get_alerts(customer_id: CustomerId, _: Reader) -> list[dict[str, Any]]:
        """Active alerts, newest first (the history of raised and resolved alerts is at
        `/alerts/recent`)."""
        return views.alerts(read_models, customer_id)

    @app.get(
        "/v1/customers/{customer_id}/alerts/recent",
        response_model=AlertHistoryOut,
        responses=READ_ERRORS,
    )
    def get_recent_alerts(customer_id: CustomerId, _: Reader) -> dict[str, Any]:
        """The recent alert events, raised and resolved, newest first (at most `limit`)."""
        return views.recent_alerts(read_models, customer_id)

    @app.get(
        "/v1/customers/{customer_id}/invoices",
        response_model=list[InvoiceOut],
        responses=READ_ERRORS,
    )
    def get_invoices(customer_id: CustomerId, _: Reader) -> list[dict[str, Any]]:
        """Issued invoices and adjustments with their lines, newest first."""
        return views.invoices(read_models, customer_id)

    @app.get(
        "/v1/customers/{customer_id}/entitlements/{feature_id}",
        response_model=EntitlementOut,
        responses=READ_ERRORS,
        openapi_extra={"parameters": AUTH_HEADERS},
    )
    async def get_entitlement(
        request: Request,
        customer_id: CustomerId,
        feature_id: Annotated[str, Path(min_length=1, max_length=200)],
    ) -> JSONResponse:
        """May the customer use the feature now? With what remains and the offset the
        answer reflects (its freshness).

        The hot path: one HMGET, run on the event loop (a loopback Redis answers in
        well under a millisecond, far less than a thread hop costs; the client's socket
        timeout bounds a stall), and the body built directly, without a response-model
        pass (`EntitlementOut` documents it and a test checks it matches)."""
        headers = request.headers  # read directly: FastAPI's header params cost ~50 us each
        key = headers.get(KEY_HEADER)
        check_reader(
            request,
            customer_id,
            key if key is not None else headers.get(ADMIN_HEADER),
            headers.get("authorization"),
        )
        catalog = plans.held().catalog
        return JSONResponse(views.entitlement(read_models, customer_id, feature_id, catalog))

    policy = settings.admission_policy()
    writes = admin_router(
        sdk,
        auth,
        policy,
        lambda: int(clock() * 1000),
        plans,
        lambda customer_id: read_models.state(customer_id).get("plan_id") or None,
    )
    app.include_router(writes)
    app.include_router(portal_router(read_models, auth, portal_sessions))
    app.add_middleware(
        Gate,
        auth=auth,
        max_body_bytes=settings.api_max_body_bytes,
        writes=write_routes(writes.routes),  # the router's own: the app's are wrapped
    )
    return app
