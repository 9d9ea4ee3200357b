"""The plan check of the subscription and plan-change routes: a command naming a plan
or version the catalog does not hold, or a plan retired for new subscriptions, is
refused with a 409 naming the known versions, before anything is written to Kafka.
409, not 422: the command is well-formed (the OpenAPI schema cannot enumerate a
catalog that changes while the API runs) and conflicts with the catalog as it is; a
version published later makes the same command succeed.

Without it such a command is accepted (202) and then dead-lettered by the worker
(`invalid_field`), which the caller never sees. The check holds the same catalog the
worker bills with (`streambill.wire.catalog_source`): the file, or the catalog topic,
whose retirements it keeps too (a file has none).

Rules:
- the plan must be in the catalog, and `plan_version` (when given) one of its
  versions; without it the command is on the plan's lowest version, as the worker
  reads it;
- a plan retired at `retired_at` takes no new subscription whose event time is at or
  after it (an earlier one records a subscription made before the retirement);
- a plan change to a retired plan is a new subscription to it unless the customer is
  on that plan already (as the read model shows it): its subscribers may still move
  between its versions (`streambill catalog migrate` does the same), others may not
  join it.

The catalog topic is looked at again at most every `refresh_seconds` (one metadata
request; the records are read only when they changed), when a plan route is called,
so a version published while the API runs is accepted within that time. A topic that
cannot be read then keeps the catalog held (logged): a publication is at worst seen
late, and the check never fails a request for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from billing.catalog import Catalog
from billing.errors import CatalogError
from projections.read.errors import RetiredPlan, UnknownPlan

MAX_LISTED_PLANS = 20
log = logging.getLogger("streambill.api")


@dataclass(frozen=True, slots=True)
class PlanOffer:
    """What new subscriptions may name: the catalog's plans and versions, less the
    retired plans (plan id -> retired from)."""

    catalog: Catalog
    retired: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))

    def check_subscription(self, plan_id: str, version: int | None, at: datetime) -> None:
        """`UnknownPlan` or `RetiredPlan` for a new subscription at `at`, else nothing."""
        self._check_exists(plan_id, version)
        since = self._retired_since(plan_id, at)
        if since is not None:
            raise RetiredPlan(
                f"plan_id: plan {plan_id!r} is retired since {since}: it takes no new"
                f" subscriptions (its subscribers keep their version;"
                f" versions {_listed(self.catalog.versions(plan_id))})"
            )

    def check_change(
        self,
        plan_id: str,
        version: int | None,
        at: datetime,
        current_plan: Callable[[], str | None],
    ) -> None:
        """As `check_subscription`, but a customer on `plan_id` already (`current_plan`,
        asked only for a retired plan) may move to another of its versions."""
        self._check_exists(plan_id, version)
        since = self._retired_since(plan_id, at)
        if since is None:
            return
        current = current_plan()
        if current != plan_id:
            on = f"is on {current!r}" if current else "has no subscription in the read model"
            raise RetiredPlan(
                f"plan_id: plan {plan_id!r} is retired since {since}: only its"
                f" subscribers may change to its versions"
                f" ({_listed(self.catalog.versions(plan_id))}), and this customer {on}"
            )

    def _check_exists(self, plan_id: str, version: int | None) -> None:
        known = self.catalog.versions(plan_id) if "@" not in plan_id else ()
        if not known:
            plans = sorted(self.catalog.plans)
            shown = ", ".join(plans[:MAX_LISTED_PLANS])
            more = len(plans) - MAX_LISTED_PLANS
            raise UnknownPlan(
                f"plan_id: no plan {plan_id!r} in the catalog (plans: {shown}"
                + (f" and {more} more)" if more > 0 else ")")
            )
        if version is not None and version not in known:
            raise UnknownPlan(
                f"plan_version: plan {plan_id!r} has no version {version}"
                f" (known versions: {_listed(known)}); publish it first"
            )

    def _retired_since(self, plan_id: str, at: datetime) -> str | None:
        retired = self.retired.get(plan_id)
        if retired is None or at < retired:
            return None
        return retired.isoformat(timespec="seconds")


def _listed(versions: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in versions)


class PlanSource(Protocol):
    """Where the routes take the offer from, per request."""

    def current(self) -> PlanOffer: ...

    def held(self) -> PlanOffer:
        """The offer as held, without looking at the topic (the entitlement check's hot
        path never waits on the broker)."""
        ...


@dataclass(frozen=True, slots=True)
class FixedPlans:
    """One offer for the process's life (a catalog file: read at start, like the
    worker's)."""

    offer: PlanOffer

    def current(self) -> PlanOffer:
        return self.offer

    def held(self) -> PlanOffer:
        return self.offer


class WatchedPlans:
    """The catalog topic's offer, looked at again at most every `refresh_seconds`
    (0: never) when asked (module docstring). `changed` is one cheap question (end
    offsets), `load` reads the topic; either may raise `CatalogError`. Two requests
    at once may both look; the offer is replaced whole, so each sees one offer."""

    def __init__(
        self,
        offer: PlanOffer,
        changed: Callable[[], bool],
        load: Callable[[], PlanOffer],
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._offer = offer
        self._changed = changed
        self._load = load
        self._refresh = refresh_seconds
        self._clock = clock
        self._checked = clock()

    def held(self) -> PlanOffer:
        return self._offer

    def current(self) -> PlanOffer:
        now = self._clock()
        if self._refresh > 0 and now - self._checked >= self._refresh:
            self._checked = now
            try:
                if self._changed():
                    self._offer = self._load()
            except CatalogError as exc:
                log.warning("catalog topic: keeping the catalog held: %s", exc)
        return self._offer
