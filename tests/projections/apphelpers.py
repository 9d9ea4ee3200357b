"""Building the API for tests over a filled store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from projections.read.model import Source, to_write
from projections.read.store import ReadModelStore
from streambill.config.settings import BILLING_ALERTS, CUSTOMER_STATE, INVOICES, Settings
from tests.projections import samples

ADMIN_KEY = "admin-key-for-tests-0123456789"
SECRET = "token-secret-for-tests-0123456789"
NOW = 1_800_000_000


def settings() -> Settings:
    return Settings(admin_key=SecretStr(ADMIN_KEY), token_secret=SecretStr(SECRET))


@dataclass
class RecordingWriter:
    """Records the SDK calls the admin routes make (the real SDK is exercised by the
    integration test against the broker)."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    pending_after_flush: int = 0

    def _record(self, name: str, *args: Any, **kwargs: Any) -> str:
        self.calls.append((name, args, kwargs))
        return str(kwargs.get("event_id", ""))

    def report(
        self,
        customer_id: str,
        feature_id: str,
        quantity: Decimal,
        *,
        event_id: str,
        timestamp: datetime,
        properties: Mapping[str, str],
    ) -> str:
        return self._record(
            "report",
            customer_id,
            feature_id,
            quantity,
            event_id=event_id,
            timestamp=timestamp,
            properties=properties,
        )

    def subscribe(
        self,
        customer_id: str,
        plan_id: str,
        *,
        seats: int,
        plan_version: int | None,
        event_id: str,
        timestamp: datetime,
    ) -> str:
        return self._record(
            "subscribe", customer_id, plan_id, seats=seats, plan_version=plan_version,
            event_id=event_id, timestamp=timestamp,
        )  # fmt: skip

    def change_plan(
        self,
        customer_id: str,
        plan_id: str,
        *,
        plan_version: int | None,
        event_id: str,
        timestamp: datetime,
    ) -> str:
        return self._record(
            "change_plan", customer_id, plan_id, plan_version=plan_version,
            event_id=event_id, timestamp=timestamp,
        )  # fmt: skip

    def change_seats(
        self, customer_id: str, seats: int, *, event_id: str, timestamp: datetime
    ) -> str:
        return self._record(
            "change_seats", customer_id, seats, event_id=event_id, timestamp=timestamp
        )

    def purchase_credits(
        self, customer_id: str, pack_id: str, *, quantity: int, event_id: str, timestamp: datetime
    ) -> str:
        return self._record(
            "purchase_credits",
            customer_id,
            pack_id,
            quantity=quantity,
            event_id=event_id,
            timestamp=timestamp,
        )

    def deposit(
        self,
        customer_id: str,
        amount: Decimal,
        currency: str,
        *,
        event_id: str,
        timestamp: datetime,
    ) -> str:
        return self._record(
            "deposit", customer_id, amount, currency, event_id=event_id, timestamp=timestamp
        )

    def flush(self, timeout: float | None = None) -> None:
        if self.pending_after_flush:  # what the SDK's DeliveryError reports
            raise RuntimeError(f"{self.pending_after_flush} event(s) still pending")


TREND_B = [("1000", -2), ("800", -1), ("640", 0)]  # cus_b's credits, hours from T0


def fill(store: ReadModelStore) -> None:
    """cus_a: metered with an active alert (al-1), a resolved one (al-0) and an invoice;
    cus_b: credits plan whose trend since the top-up is `TREND_B`."""
    gen = store.ensure_generation()
    credits = [
        samples.credits_state("cus_b", remaining=v, at=samples.T0 + timedelta(hours=h))
        for v, h in TREND_B
    ]
    store.apply(
        gen,
        [
            to_write(samples.metered_state("cus_a"), Source(CUSTOMER_STATE, 0, 4)),
            *(to_write(c, Source(CUSTOMER_STATE, 1, 7 + n)) for n, c in enumerate(credits)),
            to_write(samples.alert("cus_a", "al-0", percent=100), Source(BILLING_ALERTS, 0, 0)),
            to_write(samples.resolved("cus_a", "al-0"), Source(BILLING_ALERTS, 0, 1)),
            to_write(samples.alert("cus_a", "al-1"), Source(BILLING_ALERTS, 0, 2)),
            to_write(samples.invoice("cus_a", "inv-1"), Source(INVOICES, 0, 0)),
        ],
    )


def serve(app: Any) -> str:
    """Serve `app` with uvicorn on a free local port in a daemon thread (the process's
    lifetime); returns its base URL once it accepts connections."""
    import threading
    import time

    import uvicorn

    from streambill.local.procs import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, name=f"api-{port}", daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start on port {port}")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"
