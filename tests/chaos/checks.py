"""What must hold after every fault, once the system has caught up:

1. `reconcile` is clean: every input record accounted for (applied, deduplicated or
   dead-lettered), every customer's latest snapshot equal to the pure fold of the log,
   and, once the month is closed, the invoices on the topic equal to the close's pure
   recomputation at the watermarks it recorded;
2. the read models in Redis equal a rebuild from the log, key for key (the rebuild
   goes into an in-memory store through the projector's own `BatchApplier`), and the
   API serves what the read models hold;
3. the invoices of the month equal those of an uninterrupted run: the close's
   computation over the log (a dry run, or the recorded close) against
   `streambill simulate`'s fold of the events the load meant to publish, with no
   fault anywhere (no broker, no worker, no garbage).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import KafkaException

from billing.events import Event, Invoice
from processors.close.plan import Month
from processors.close.run import CloseDeps, CloseOptions, close_period
from processors.close.topics import CloseTopics
from processors.fold.admission import policy_from
from processors.reconcile.log import ReconcileReport
from processors.reconcile.run import reconcile, render
from processors.simulate.simulation import simulate
from projections.http import views
from projections.read.model import SOURCE_TOPICS
from projections.read.rebuild import rebuild
from projections.read.store import InMemoryStore, Keys
from projections.wiring import build_applier, build_rebuild_consumer, build_store
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.local.demo_watch import WorkerProgress
from streambill.local.procs import http_answers, wait_ready
from streambill.wire.codec import Codec
from streambill.wire.kafka_log import KafkaLog
from tests.kafka_helpers import high_watermarks, projector_behind


def wait_worker(settings: Settings, timeout: float) -> float:
    """Until the fold worker's group committed the end of both inputs; seconds taken."""
    started = time.monotonic()
    progress = WorkerProgress(settings)
    try:
        while True:
            try:
                behind, _ = progress.lag()
            except KafkaException as exc:  # coordinator moving or loading: ask again
                behind, last = -1, exc
            if behind == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                why = f"still {behind} events behind" if behind >= 0 else f"{last}"
                raise TimeoutError(f"the worker has not caught up after {timeout}s: {why}")
            time.sleep(0.5)
    finally:
        progress.close()


def wait_projector(settings: Settings, timeout: float) -> float:
    """Until the projector's positions in Redis reach the end of its three sources."""
    started = time.monotonic()
    ends = high_watermarks(settings, SOURCE_TOPICS)
    store = build_store(settings)
    while True:
        behind = projector_behind(store, ends)
        if not behind:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the projector has not reached {behind} in {timeout}s")
        time.sleep(0.3)


def check_reconcile(settings: Settings, month: Month | None) -> ReconcileReport:
    return reconcile(settings, month)


@dataclass(frozen=True)
class ReadModelCheck:
    keys: int
    differences: list[str]
    rebuild_seconds: float


def check_read_models(settings: Settings) -> ReadModelCheck:
    """Live Redis read models against a rebuild from the log, key for key."""
    live = build_store(settings).dump()
    rebuilt_store = InMemoryStore(Keys(prefix=settings.read_model_prefix))
    consumer = build_rebuild_consumer(settings)
    try:
        result = rebuild(consumer, build_applier(settings, rebuilt_store))
    finally:
        consumer.close()
    rebuilt = rebuilt_store.dump()
    differences = []
    for key in sorted(set(live) | set(rebuilt)):
        if live.get(key) != rebuilt.get(key):
            differences.append(
                f"{key}: live {_short(live.get(key))} rebuilt {_short(rebuilt.get(key))}"
            )
    return ReadModelCheck(len(rebuilt), differences, result.seconds)


def _short(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_api(settings: Settings, customer_ids: Sequence[str]) -> list[str]:
    """The API's balance answer for each customer equals the read model's view of it."""
    store = build_store(settings)
    key = settings.admin_key.get_secret_value() if settings.admin_key else ""
    base = f"http://{settings.api_host}:{settings.api_port}"
    differences = []
    for cid in customer_ids:
        request = urllib.request.Request(
            f"{base}/v1/customers/{cid}/balance", headers={"x-admin-key": key}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            served = json.loads(response.read())
        state, trend = store.state(cid), views.trend(store, cid)
        expected = json.loads(json.dumps(views.balance(state, trend)))
        if served != expected:
            differences.append(f"{cid}: API {served} read model {expected}")
    return differences


def wait_api(settings: Settings, timeout: float) -> float:
    url = f"http://{settings.api_host}:{settings.api_port}/openapi.json"
    return wait_ready(lambda: http_answers(url), timeout, url)


@dataclass(frozen=True)
class InvoiceCheck:
    computed: int
    expected: int
    differences: list[str]
    total: str


def check_invoices(settings: Settings, month: Month, intended: Sequence[Event]) -> InvoiceCheck:
    """The month's invoices computed by the close over the log (a dry run: for a month
    already closed it reads exactly to the recorded watermarks) against the pure fold
    of the events the load meant to publish, as an uninterrupted run would bill them."""
    catalog = load_catalog(settings.catalog_path)
    codec = Codec()
    log = KafkaLog(settings.kafka_config())
    try:
        deps = CloseDeps(
            log=log,
            codec=codec,
            catalog=catalog,
            topics=CloseTopics.of(settings),
            clock=_now,
            policy=policy_from(settings),
        )
        report = close_period(deps, CloseOptions(month, dry_run=True))
    finally:
        log.close()
    computed = {p.invoice.invoice_id: p.invoice for p, _ in report.invoices}
    pure = simulate(catalog, intended, month.start, month.end)
    expected = {i.invoice_id: i for i in pure.invoices if i.kind != "purchase"}
    differences = [
        f"{iid}: log {_brief(computed.get(iid))} uninterrupted {_brief(expected.get(iid))}"
        for iid in sorted(set(computed) | set(expected))
        if computed.get(iid) != expected.get(iid)
    ]
    totals = report.totals()
    total = ", ".join(f"{c} {t}" for c, t in sorted(totals.items())) or "nothing"
    return InvoiceCheck(len(computed), len(expected), differences, total)


def _brief(inv: Invoice | None) -> str:
    return "missing" if inv is None else f"{inv.customer_id} {inv.currency} {inv.total}"


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "InvoiceCheck",
    "ReadModelCheck",
    "check_api",
    "check_invoices",
    "check_read_models",
    "check_reconcile",
    "render",
    "wait_api",
    "wait_projector",
    "wait_worker",
]
