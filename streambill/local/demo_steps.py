"""The demo's small pieces: its settings, the month it closes, the SDK command of an
account event, the customers it watches and the invoice summary per plan."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import SecretStr

from billing.catalog_live import diff
from billing.events import (
    AccountEvent,
    CreditsPurchased,
    Invoice,
    SubscriptionStarted,
    WalletDeposited,
)
from processors.close.plan import Month
from processors.close.run import CloseReport
from streambill.config.settings import CATALOG, Settings
from streambill.local.demo_load import DemoCustomer
from streambill.local.demo_procs import DemoError
from streambill.local.procs import free_port
from streambill.sdk.client import UsageClient
from streambill.wire.codec import Codec


@dataclass
class PlanSummary:
    invoices: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)


def closable_month(now: datetime, grace: timedelta) -> Month:
    """The most recent month whose end + grace has passed at `now`."""
    month = Month.of(now).shift(-1)
    return month if now >= month.end + grace else month.shift(-1)


def usage_day_start(month: Month) -> datetime:
    """The day of usage the demo publishes: the month's last day (UTC)."""
    return month.end - timedelta(days=1)


def summarize(report: CloseReport) -> dict[str, PlanSummary]:
    """Period invoices per plan: how many and their total per currency."""
    return summarize_invoices(priced.invoice for priced, _ in report.invoices)


def summarize_invoices(invoices: Iterable[Invoice]) -> dict[str, PlanSummary]:
    """`summarize` of invoices however they were made (the close's, a pure fold's)."""
    out: dict[str, PlanSummary] = {}
    for inv in invoices:
        if inv.kind != "period":
            continue
        s = out.setdefault(inv.plan_id, PlanSummary())
        s.invoices += 1
        s.totals[inv.currency] = s.totals.get(inv.currency, Decimal(0)) + inv.total
    return out


def send_account(client: UsageClient, event: AccountEvent) -> None:
    """The SDK command that publishes `event` (same id and event time)."""
    eid, at, cid = event.event_id, event.timestamp, event.customer_id
    if isinstance(event, SubscriptionStarted):
        client.subscribe(cid, event.plan_id, seats=event.seats, event_id=eid, timestamp=at)
    elif isinstance(event, CreditsPurchased):
        client.purchase_credits(cid, event.pack_id, event.quantity, event_id=eid, timestamp=at)
    elif isinstance(event, WalletDeposited):
        client.deposit(cid, event.amount, event.currency, event_id=eid, timestamp=at)
    else:
        raise DemoError(f"the demo does not send {type(event).__name__}")


def demo_settings(base: Settings, run_id: str, api_port: int) -> Settings:
    """Fresh topics, consumer groups and read models for this run; secrets made up
    for the run unless configured."""
    update: dict[str, object] = {
        "topic_prefix": f"{base.topic_prefix}demo-{run_id}.",
        "read_model_prefix": f"{base.read_model_prefix}demo-{run_id}",
        "api_port": api_port or free_port(base.api_host),
        "catalog_source": "topic",  # published by `publish_catalog`, read by every process
        "admin_key": base.admin_key or SecretStr(secrets.token_urlsafe(18)),
        "token_secret": base.token_secret or SecretStr(secrets.token_urlsafe(32)),
    }
    return base.model_copy(update=update)


def watched_customers(customers: list[DemoCustomer]) -> list[str]:
    """The most active credits and balance customers: the ones that drain first."""
    kinds = ("image-credits", "dev-api", "query-credits")
    picked = []
    for plan in kinds:
        mine = [c for c in customers if c.plan_id == plan]
        if mine:
            picked.append(max(mine, key=lambda c: c.activity).customer_id)
    return picked


def publish_catalog(settings: Settings, codec: Codec) -> tuple[int, str]:
    """`streambill catalog publish STREAMBILL_CATALOG_PATH` for the demo's fresh topics:
    (records published, the live revision). The demo's processes then read the
    catalog from the topic (`demo_settings` sets the source), as production would."""
    from streambill.config.catalog_file import load_catalog
    from streambill.wire.catalog_topic import publish, read_catalog
    from streambill.wire.kafka_log import KafkaLog

    catalog = load_catalog(settings.catalog_path)
    log = KafkaLog(settings.kafka_config(), timeout_s=15.0)
    topic = settings.topic(CATALOG)
    try:
        changes = diff(read_catalog(log, topic, codec).live, catalog)
        if changes.refused:
            raise DemoError(f"the catalog topic {topic} holds other content: {changes.refused}")
        count = publish(log, topic, codec, changes.added)
        return count, read_catalog(log, topic, codec).live.revision
    finally:
        log.close()
