"""`streambill demo`: the whole product in one run.

    streambill demo [--customers 3000] [--events 200000] [--keep] [--api-port N]

1. Creates a fresh set of topics (prefix `<STREAMBILL_TOPIC_PREFIX>demo-<run>.`,
   so the worker's consumer group, changelogs and the read models are fresh too) and
   loads the catalog (`STREAMBILL_CATALOG_PATH`, default examples/catalog.yaml).
2. Subscribes the customers across every plan, anchored at the first instant of the
   most recent month whose end + grace has passed, buys credit packs and funds wallets.
3. Starts `streambill worker`, `projector` and `api` as child processes and waits
   until the worker applied the account events and the API serves a balance.
4. Publishes a day of usage with the SDK (progress on stderr), paced so the worker
   stays within a window behind, showing a few balances draining (through the API)
   and the low-balance alerts raised (read from billing-alerts). Then reads a handful
   of the published events back from Kafka with a consumer of its own, prints them
   decoded (one JSON line each) and fails unless they equal what was sent.
5. Waits until the worker's committed offsets reach the end of both inputs, closes
   the month with the period-close job, prints the invoices per plan and the portal
   address with a token for one customer.
6. Runs `streambill reconcile --period <month>` over the run (unless
   `--no-reconcile`), stops its children (unless `--keep`) and exits; 1 if reconcile
   found a difference. The topics stay, so the run can be inspected afterwards with
   `STREAMBILL_TOPIC_PREFIX=<prefix> streambill ...`.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TextIO

from billing.events import (
    AccountEvent,
    UsageRecorded,
)
from processors.close.plan import Month
from processors.close.run import CloseDeps, CloseOptions, CloseReport, close_period
from processors.close.topics import CloseTopics
from processors.fold.admission import policy_from
from projections.commands import settings_secret_problems
from projections.http import tokens
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import ACCOUNT_EVENTS, USAGE_EVENTS, Settings
from streambill.config.topics import create_topics
from streambill.local.demo_load import DemoCustomer, population, usage_day
from streambill.local.demo_procs import Children, DemoError, get_json, wait_http
from streambill.local.demo_readback import read_back
from streambill.local.demo_steps import (
    PlanSummary,
    closable_month,
    demo_settings,
    publish_catalog,
    send_account,
    summarize,
    usage_day_start,
    watched_customers,
)
from streambill.local.demo_watch import AlertCounter, StatusLine, WorkerProgress, balance_line, bar
from streambill.local.procs import Child
from streambill.sdk.client import UsageClient
from streambill.wire.catalog_source import process_catalog
from streambill.wire.codec import Codec
from streambill.wire.kafka_log import KafkaLog

CHUNK = 5000  # usage events per SDK call between two looks at the worker


@dataclass(frozen=True, slots=True)
class DemoOptions:
    customers: int = 3000
    events: int = 200_000
    seed: int = 7
    grace: timedelta = timedelta(days=1)
    api_port: int = 0
    window: int = 60_000
    keep: bool = False
    reconcile: bool = True
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))


@dataclass
class DemoResult:
    settings: Settings
    month: Month
    anchor: datetime
    customers: list[DemoCustomer]
    account_events: list[AccountEvent]
    usage_events: int
    summary: dict[str, PlanSummary]
    alerts_raised: int
    portal_url: str
    phases: dict[str, float]
    children: list[Child]
    reconciled: bool | None  # None: not run (--no-reconcile)


class Demo:
    """One run; `run()` returns the result, `stop()` stops the children."""

    def __init__(
        self,
        base: Settings,
        opts: DemoOptions,
        out: TextIO,
        err: TextIO,
        clock: Callable[[], datetime],
    ) -> None:
        self.opts = opts
        self.settings = demo_settings(base, opts.run_id, opts.api_port)
        problems = settings_secret_problems(self.settings)
        if problems:  # refused before anything starts, as `streambill api` refuses
            raise DemoError("; ".join(problems))
        self.out, self.err = out, err
        self.clock = clock
        self.codec = Codec()
        self.catalog = load_catalog(self.settings.catalog_path)
        log_dir = base.state_dir / "demo" / opts.run_id
        self.children = Children(self.settings, log_dir)
        self.status = StatusLine(err)
        self.phases: dict[str, float] = {}
        s = self.settings
        self.api = f"http://{s.api_host}:{s.api_port}"
        self.admin_key = s.admin_key.get_secret_value() if s.admin_key else ""

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _phase(self, name: str, started: float) -> None:
        self.phases[name] = time.monotonic() - started

    def run(self) -> DemoResult:
        t0 = time.monotonic()
        s, opts = self.settings, self.opts
        month = closable_month(self.clock(), opts.grace)
        anchor = month.start
        created, _ = create_topics(s)
        self.say(
            f"topics: {len(created)} created under prefix {s.topic_prefix!r} "
            f"({s.partitions} partitions each, the catalog 1)"
        )
        published, revision = publish_catalog(s, self.codec)
        self.catalog = process_catalog(s, self.codec, self.say)  # what every process reads
        self.say(f"catalog: {published} records published on the topic, revision {revision[:12]}")
        pop = population(opts.customers, anchor, opts.seed, opts.run_id)
        customers, account = list(pop.customers), list(pop.account_events)
        with UsageClient(s) as client:
            for event in account:
                send_account(client, event)
            client.flush()
        plans = sorted({c.plan_id for c in customers})
        self.say(
            f"{len(customers):,} customers subscribed at {anchor:%Y-%m-%d %H:%M} UTC on "
            f"{len(plans)} plans ({', '.join(plans)}); {len(account):,} account events "
            "(subscriptions, credit packs, wallet deposits)"
        )
        self._phase("subscribe", t0)
        t1 = time.monotonic()
        worker = self.children.start("worker", "worker", "--loglevel", "warning")
        self.children.start("projector", "projector")
        api = self.children.start("api", "api", "--port", str(s.api_port))
        self.say(
            f"started worker (pid {worker.pid}), projector, API on {self.api}; "
            f"logs in {worker.log.parent}"
        )
        progress = WorkerProgress(s)
        alerts = AlertCounter(s, self.codec)
        try:
            wait_http(f"{self.api}/openapi.json", api)
            self._wait_applied(progress, ACCOUNT_EVENTS, "account events", 180.0)
            watched = watched_customers(customers)
            self._wait_served(watched)
            self._phase("start", t1)
            t2 = time.monotonic()
            day = usage_day_start(month)
            self.say(
                f"publishing {opts.events:,} usage events of {day:%Y-%m-%d} "
                f"(watching {', '.join(watched)})"
            )
            events = usage_day(customers, opts.events, day, opts.seed, opts.run_id)
            first_chunk = self._publish(events, progress, alerts, watched)
            self._phase("publish", t2)
            for line in read_back(s, self.codec, first_chunk, customers, limit=opts.events):
                self.say(line)
            self._wait_applied(progress, None, "usage", 900.0, alerts, watched)
            self._phase("publish+apply", t2)
        finally:
            progress.close()
        alerts.poll()
        alerts.close()
        raised = sum(alerts.raised.values())
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(alerts.raised.items()))
        self.say(f"alerts raised: {raised:,} ({kinds or 'none'}); resolved: {alerts.resolved}")
        t3 = time.monotonic()
        report = self._close(month)
        self._phase("close", t3)
        summary = summarize(report)
        self._print_summary(month, report, summary)
        reconciled = self._reconcile(month) if opts.reconcile else None
        portal = self._portal(customers)
        self.say(f"customer portal of {self._portal_customer(customers)}: {portal}")
        self._phase("total", t0)
        return DemoResult(
            s,
            month,
            anchor,
            customers,
            account,
            opts.events,
            summary,
            raised,
            portal,
            self.phases,
            self.children.started,
            reconciled,
        )

    # ---------------------------------------------------------------- steps

    def _wait_applied(
        self,
        progress: WorkerProgress,
        logical: str | None,
        what: str,
        timeout: float,
        alerts: AlertCounter | None = None,
        watched: list[str] | None = None,
    ) -> None:
        """Until the worker committed every message of `logical` (None: both inputs)."""
        deadline = time.monotonic() + timeout
        while True:
            self.children.check()
            behind, total = progress.lag(logical)
            if alerts is not None and watched is not None:
                self._show(total - behind, total, "applied", alerts, watched)
            if behind == 0:
                if alerts is not None:
                    self.status.show(f"worker applied all {total:,} input events", final=True)
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the worker still has {behind:,} {what} to apply after "
                    f"{timeout:.0f}s; see {self.children.started[0].log}"
                )
            time.sleep(0.5)

    def _wait_served(self, watched: list[str], timeout: float = 60.0) -> None:
        """Until the API serves the watched customers' balances (projector caught up)."""
        deadline = time.monotonic() + timeout
        headers = {"x-admin-key": self.admin_key}
        for cid in watched:
            while get_json(f"{self.api}/v1/customers/{cid}/balance", headers) is None:
                self.children.check()
                if time.monotonic() > deadline:
                    raise DemoError(f"the API did not serve {cid}'s balance in {timeout:.0f}s")
                time.sleep(0.3)

    def _publish(
        self,
        events: Iterable[UsageRecorded],
        progress: WorkerProgress,
        alerts: AlertCounter,
        watched: list[str],
    ) -> list[UsageRecorded]:
        """Publish in chunks; hold back while the worker is more than `window` behind.
        Returns the first chunk (delivered: the client flushed on exit)."""
        it = iter(events)
        total, sent, next_show = self.opts.events, 0, 0.0
        first: list[UsageRecorded] = []
        with UsageClient(self.settings) as client:
            while chunk := list(islice(it, CHUNK)):
                client.report_many(chunk)
                first = first or chunk
                sent += len(chunk)
                while True:  # hold back while the worker is more than `window` behind
                    self.children.check()
                    behind, _ = progress.lag(USAGE_EVENTS)
                    if time.monotonic() >= next_show or sent >= total:
                        next_show = time.monotonic() + 1.0
                        self._show(sent, total, "published", alerts, watched, behind)
                    if behind <= self.opts.window:
                        break
                    time.sleep(0.5)
            client.flush()
        self.status.show(f"published {sent:,} usage events", final=True)
        return first

    def _show(
        self,
        done: int,
        total: int,
        verb: str,
        alerts: AlertCounter,
        watched: list[str],
        behind: int | None = None,
    ) -> None:
        alerts.poll()
        lag = "" if behind is None else f" worker {behind:,} behind"
        balances = balance_line(self.api, self.admin_key, watched)
        self.status.show(
            f"{bar(done, total)} {verb} {done:,}/{total:,}{lag} | alerts "
            f"{sum(alerts.raised.values()):,} | {balances}"
        )

    def _close(self, month: Month) -> CloseReport:
        s = self.settings
        log = KafkaLog(s.kafka_config())
        topics = CloseTopics.of(s)
        deps = CloseDeps(
            log=log,
            codec=self.codec,
            catalog=self.catalog,
            topics=topics,
            clock=self.clock,
            policy=policy_from(s),
            progress_out=self.err,
        )
        try:
            return close_period(deps, CloseOptions(month, self.opts.grace))
        finally:
            log.close()

    def _reconcile(self, month: Month) -> bool:
        """`streambill reconcile --period`: every input record accounted for, state and
        invoices equal to the pure re-computation. Prints the totals and the verdict."""
        from processors.reconcile.run import reconcile, render

        t = time.monotonic()
        report = reconcile(self.settings, month, catalog=self.catalog, codec=self.codec)
        self._phase("reconcile", t)
        lines = render(report).splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("total"))
        self.say("reconcile: " + lines[0])
        for line in lines[start:]:
            self.say("reconcile: " + line)
        return report.ok

    def _print_summary(
        self, month: Month, report: CloseReport, summary: dict[str, PlanSummary]
    ) -> None:
        f = report.fold
        self.say(
            f"closed {month}: {len(report.invoices):,} invoices ({report.sent:,} sent) "
            f"from {f.events_read:,} events in {report.seconds:.1f}s"
        )
        self.say(f"{'plan':<16}{'invoices':>10}  total")
        for plan, ps in sorted(summary.items()):
            totals = ", ".join(f"{cur} {amount:,.2f}" for cur, amount in sorted(ps.totals.items()))
            self.say(f"{plan:<16}{ps.invoices:>10}  {totals}")

    def _portal_customer(self, customers: list[DemoCustomer]) -> str:
        return (
            watched_customers(customers)[0]
            if watched_customers(customers)
            else customers[0].customer_id
        )

    def _portal(self, customers: list[DemoCustomer]) -> str:
        secret = self.settings.token_secret
        if secret is None:  # demo_settings always sets one
            raise DemoError("no token secret")
        token = tokens.issue(
            secret.get_secret_value().encode(),
            self._portal_customer(customers),
            now=int(time.time()),
            ttl_seconds=24 * 3600,
        )
        return f"{self.api}/portal?token={token}"

    def stop(self) -> None:
        self.children.stop_all()


def run_demo(
    base: Settings,
    opts: DemoOptions,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    clock: Callable[[], datetime] | None = None,
) -> DemoResult:
    """Run the demo; children are stopped at the end unless `opts.keep`."""
    demo = Demo(base, opts, out, err, clock or (lambda: datetime.now(UTC)))
    ok = False
    try:
        result = demo.run()
        ok = True
        return result
    finally:
        if not (opts.keep and ok):
            demo.stop()
