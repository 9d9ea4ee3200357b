"""Admin routes: HTTP ingest of usage and account commands, written to Kafka through
the SDK (`streambill.sdk.client.UsageClient`). Ingest needs a key of scope `ingest`,
the account commands one of scope `admin` (`projections.http.keys`).

Ingest validates each item on its own: valid items are produced, invalid ones come
back with their errors (202 if anything was accepted, 422 if nothing was). The
`event_id` makes a retry harmless: the fold worker applies an id once. Within one
batch an identical repeat is sent once; the same id with another payload is refused.
Every route flushes the producer before answering, so 202 means "in Kafka".
"""

# No `from __future__ import annotations`: FastAPI must see the route signatures
# evaluated, including the `Annotated` dependencies defined inside the factory.

import json
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Protocol

from confluent_kafka import KafkaException
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.types import DecoratedCallable
from pydantic import ValidationError

from billing.admission import AdmissionPolicy, decide, to_ms
from projections.http.auth import Authenticator, Caller, key_dependency
from projections.http.models import (
    MAX_BATCH,
    AcceptedOut,
    CreditPurchaseIn,
    DepositIn,
    ErrorOut,
    IngestOut,
    IngestUnavailableOut,
    ItemError,
    PlanChangeIn,
    SeatsIn,
    SubscriptionIn,
    UsageIn,
    error_responses,
)
from projections.http.plans import PlanSource
from projections.read.errors import InvalidRequest, Unavailable
from streambill.sdk.client import DeliveryError


class Command(Protocol):
    """What every account command's body carries."""

    @property
    def event_id(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...


class AdminWriter(Protocol):
    """What the API needs of `streambill.sdk.client.UsageClient`."""

    def report(
        self,
        customer_id: str,
        feature_id: str,
        quantity: Decimal,
        *,
        event_id: str,
        timestamp: datetime,
        properties: Mapping[str, str],
    ) -> str: ...

    def subscribe(
        self,
        customer_id: str,
        plan_id: str,
        *,
        seats: int,
        plan_version: int | None,
        event_id: str,
        timestamp: datetime,
    ) -> str: ...

    def change_plan(
        self,
        customer_id: str,
        plan_id: str,
        *,
        plan_version: int | None,
        event_id: str,
        timestamp: datetime,
    ) -> str: ...

    def change_seats(
        self, customer_id: str, seats: int, *, event_id: str, timestamp: datetime
    ) -> str: ...

    def purchase_credits(
        self, customer_id: str, pack_id: str, *, quantity: int, event_id: str, timestamp: datetime
    ) -> str: ...

    def deposit(
        self,
        customer_id: str,
        amount: Decimal,
        currency: str,
        *,
        event_id: str,
        timestamp: datetime,
    ) -> str: ...

    def flush(self, timeout: float | None = None) -> None:
        """Raises (the SDK's `DeliveryError`) unless every queued event reached Kafka."""
        ...


WRITE_ERRORS = error_responses(401, 403, 413, 422, 429, 503)
# The plan routes add 409: a well-formed command the catalog refuses (projections.http.plans).
PLAN_ERRORS = error_responses(401, 403, 409, 413, 422, 429, 503)
# The documented body of ingest: one event or 1..MAX_BATCH of them, the event's schema
# inlined (no route names UsageIn as its body, so it is not among the components). The
# route takes any JSON object or list and validates each item on its own.
_USAGE_SCHEMA = UsageIn.model_json_schema()
_USAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        _USAGE_SCHEMA,
                        {
                            "type": "array",
                            "items": _USAGE_SCHEMA,
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                        },
                    ]
                }
            }
        },
    }
}
CustomerId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@\-]+$")]


def _validate_items(
    raw: list[Any], future: Callable[[datetime], str | None]
) -> tuple[list[tuple[int, UsageIn]], list[ItemError]]:
    """(index in the batch, event) of the valid, first-seen events, and the errors.
    `future` says why an event time is past admission's future rule (or None)."""
    valid: dict[str, tuple[int, UsageIn]] = {}
    errors: list[ItemError] = []
    for index, item in enumerate(raw):
        event_id = item.get("event_id") if isinstance(item, dict) else None
        event_id = event_id if isinstance(event_id, str) else None
        try:
            usage = UsageIn.model_validate(item)
        except ValidationError as exc:
            messages = [
                f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}" for e in exc.errors()
            ]
            errors.append(ItemError(index=index, event_id=event_id, errors=messages))
            continue
        late = future(usage.timestamp)
        if late is not None:
            errors.append(ItemError(index=index, event_id=event_id, errors=[f"timestamp: {late}"]))
            continue
        seen = valid.get(usage.event_id)
        if seen is not None and seen[1] != usage:
            errors.append(
                ItemError(
                    index=index,
                    event_id=usage.event_id,
                    errors=["event_id: duplicate_conflict (same id, other payload in this batch)"],
                )
            )
            continue
        valid.setdefault(usage.event_id, (index, usage))
    return list(valid.values()), errors


def exact_json(body: bytes) -> Any:
    """JSON with every number exact: a number with a fraction or an exponent is a
    `Decimal`, never a float, so `1.0000000000000001` is not silently 1 (the models
    take an integral Decimal as an integer and refuse any other)."""
    return json.loads(body, parse_float=Decimal)


class _ExactRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = exact_json(await self.body())
        return self._json


class ExactRoute(APIRoute):
    """A route whose JSON body is parsed by `exact_json` (FastAPI asks `request.json()`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(_ExactRequest(request.scope, request.receive))

        return exact


async def _json_body(request: Request) -> Any:
    """The JSON body as it came (ingest validates its items one by one); invalid
    JSON is a 422 naming the body. Behind the gate the body is already bounded."""
    try:
        return exact_json(await request.body())
    except ValueError as exc:  # JSONDecodeError and bad UTF-8
        raise InvalidRequest(f"body: not valid JSON ({exc})") from exc


def _unavailable(
    detail: str, queued: list[str], failed: list[str], errors: list[ItemError]
) -> JSONResponse:
    """503 for a broker that is not there: which events were queued (handed to the
    producer; delivered unless listed in `not_delivered` or the flush timed out), so
    the caller resends the rest, or the whole batch (the event ids make that safe)."""
    body = IngestUnavailableOut(
        detail=f"{detail}; resend the events not confirmed (event ids make a resend safe)",
        queued=queued,
        not_delivered=failed,
        errors=errors,
    )
    return JSONResponse(body.model_dump(), status_code=503)


def admin_router(
    sdk: AdminWriter,
    auth: Authenticator,
    policy: AdmissionPolicy,
    now_ms: Callable[[], int],
    plans: PlanSource,
    current_plan: Callable[[str], str | None],
) -> APIRouter:
    """The write routes. An event time past admission's future rule (`policy`, at
    `now_ms`: what the worker would refuse as `timestamp_in_future`, and the broker
    beyond its own limit) is a 422 naming `timestamp`, never queued; a plan or version
    the catalog lacks, or a retired plan, is a 409 (`plans`, `projections.http.plans`;
    `current_plan` is the customer's plan as the read model shows it)."""
    router = APIRouter(tags=["admin"], route_class=ExactRoute)

    def future(timestamp: datetime) -> str | None:
        _, refusal = decide(policy, False, to_ms(timestamp), None, None, now_ms())
        return None if refusal is None else f"{refusal.reason}: {refusal.detail}"

    Admin = Annotated[Caller, Depends(key_dependency(auth, "admin"))]
    Ingest = Annotated[Caller, Depends(key_dependency(auth, "ingest"))]

    def flush() -> None:
        try:
            sdk.flush(10.0)
        except Exception as exc:  # DeliveryError and producer failures: the caller may retry
            raise Unavailable(f"not all events reached Kafka, retry: {exc}") from exc

    def send(body: Command, command: Callable[..., str], *args: Any, **kwargs: Any) -> AcceptedOut:
        """Run one SDK command with the body's event id and time, then flush; the SDK's
        own validation (ValueError) and an event time past the future rule are a 422."""
        late = future(body.timestamp)
        if late is not None:
            raise InvalidRequest(f"timestamp: {late}")
        try:
            command(*args, **kwargs, event_id=body.event_id, timestamp=body.timestamp)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        except (BufferError, KafkaException) as exc:
            raise Unavailable(f"could not queue the event: {exc}") from exc
        flush()
        return AcceptedOut(event_id=body.event_id)

    def command_route(
        path: str, responses: Mapping[int | str, dict[str, Any]] = WRITE_ERRORS
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """The route of one account command: 202 and its event id once it is in Kafka."""
        return router.post(
            path, status_code=202, response_model=AcceptedOut, responses=dict(responses)
        )

    @router.post(
        "/v1/usage",
        status_code=202,
        response_model=IngestOut,
        responses={
            **WRITE_ERRORS,
            422: {"model": IngestOut | ErrorOut},
            503: {"model": IngestUnavailableOut},
        },
        openapi_extra=_USAGE_BODY,
    )
    def post_usage(_: Ingest, payload: Annotated[Any, Depends(_json_body)]) -> Any:
        """One usage event (`UsageIn`) or a list of up to `MAX_BATCH`; each item is
        validated on its own: 202 with the accepted ids and the refused items'
        errors, 422 when none was accepted."""
        if not isinstance(payload, dict | list):
            raise InvalidRequest("body: expected one usage event (an object) or a list of them")
        items = payload if isinstance(payload, list) else [payload]
        if not items or len(items) > MAX_BATCH:
            raise InvalidRequest(f"send between 1 and {MAX_BATCH} events")
        valid, errors = _validate_items(items, future)
        accepted: list[str] = []
        for index, usage in valid:
            try:
                sdk.report(
                    usage.customer_id,
                    usage.feature_id,
                    Decimal(str(usage.quantity)),
                    event_id=usage.event_id,
                    timestamp=usage.timestamp,
                    properties=usage.properties,
                )
            except ValueError as exc:  # the SDK's own validation
                errors.append(ItemError(index=index, event_id=usage.event_id, errors=[str(exc)]))
            except (BufferError, KafkaException) as exc:
                return _unavailable(f"could not queue events: {exc}", accepted, [], errors)
            else:
                accepted.append(usage.event_id)
        if accepted:
            try:
                sdk.flush(10.0)
            except Exception as exc:  # DeliveryError and producer failures
                failed = exc.event_ids if isinstance(exc, DeliveryError) else []
                return _unavailable(
                    f"not all events reached Kafka: {exc}", accepted, failed, errors
                )
        body = IngestOut(accepted=accepted, errors=errors)
        return JSONResponse(body.model_dump(), status_code=202 if accepted else 422)

    @command_route("/v1/customers/{customer_id}/subscription", PLAN_ERRORS)
    def post_subscription(customer_id: CustomerId, body: SubscriptionIn, _: Admin) -> AcceptedOut:
        """Start a subscription to `plan_id` (at `plan_version`, else its lowest); periods
        are anchored at `timestamp`. A plan or version not in the catalog, or a plan
        retired by `timestamp`, is a 409 naming the known versions."""
        plans.current().check_subscription(body.plan_id, body.plan_version, body.timestamp)
        return send(
            body, sdk.subscribe, customer_id, body.plan_id, seats=body.seats,
            plan_version=body.plan_version,
        )  # fmt: skip

    @command_route("/v1/customers/{customer_id}/plan-change", PLAN_ERRORS)
    def post_plan_change(customer_id: CustomerId, body: PlanChangeIn, _: Admin) -> AcceptedOut:
        """Move to `plan_id` at `plan_version` from the customer's next renewal: another
        version of the customer's own plan migrates them to it (grandfathering ends).
        A plan or version not in the catalog is a 409 naming the known versions, as is a
        retired plan the customer is not on."""
        plans.current().check_change(
            body.plan_id, body.plan_version, body.timestamp, lambda: current_plan(customer_id)
        )
        return send(
            body, sdk.change_plan, customer_id, body.plan_id, plan_version=body.plan_version
        )

    @command_route("/v1/customers/{customer_id}/seats")
    def post_seats(customer_id: CustomerId, body: SeatsIn, _: Admin) -> AcceptedOut:
        """Change the seat count from `timestamp` on (prorated)."""
        return send(body, sdk.change_seats, customer_id, body.seats)

    @command_route("/v1/customers/{customer_id}/credit-purchases")
    def post_credit_purchase(
        customer_id: CustomerId, body: CreditPurchaseIn, _: Admin
    ) -> AcceptedOut:
        """Buy `quantity` credit packs (adds credits, issues a purchase invoice)."""
        return send(body, sdk.purchase_credits, customer_id, body.pack_id, quantity=body.quantity)

    @command_route("/v1/customers/{customer_id}/deposits")
    def post_deposit(customer_id: CustomerId, body: DepositIn, _: Admin) -> AcceptedOut:
        """Add money to a balance plan's wallet (issues a purchase invoice)."""
        return send(body, sdk.deposit, customer_id, Decimal(body.amount), body.currency)

    return router
