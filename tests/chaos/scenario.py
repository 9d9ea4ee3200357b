"""One chaos run: the population, the usage it publishes phase by phase, and what a
phase does (load + fault, then catch up and check everything).

Sizes from the environment, small by default so CI stays within its budget:
  STREAMBILL_CHAOS_CUSTOMERS        (default 300)
  STREAMBILL_CHAOS_EVENTS_PER_PHASE (default 2500 usage events per fault)
  STREAMBILL_CHAOS_PHASE_SECONDS    (default 10: how long each phase's load runs)
  STREAMBILL_CHAOS_SEED             (default random; printed, so a run can be repeated)

Time layout: customers subscribe at the start of the most recent closable month M;
the first seven phases publish consecutive slices of M's last day (in time order),
so nothing is ever late. The close phase closes M while it publishes usage of the
first day of the next month (already past), which M's invoices must not include.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.events import AccountEvent, Event, UsageRecorded
from processors.close.plan import Month
from streambill.config.settings import Settings
from streambill.config.topics import create_topics
from streambill.local.demo_load import DemoCustomer, population, usage_day
from streambill.local.demo_steps import (
    closable_month,
    send_account,
    usage_day_start,
    watched_customers,
)
from streambill.sdk.client import UsageClient
from streambill.wire.codec import Codec
from tests.chaos import checks
from tests.chaos.harness import Cluster, Supervisor
from tests.chaos.load import Garbage, LoadRun

CUSTOMERS = int(os.environ.get("STREAMBILL_CHAOS_CUSTOMERS", "300"))
EVENTS_PER_PHASE = int(os.environ.get("STREAMBILL_CHAOS_EVENTS_PER_PHASE", "2500"))
PHASE_SECONDS = float(os.environ.get("STREAMBILL_CHAOS_PHASE_SECONDS", "10"))
SLICES = 7  # phases that publish usage of month M
CATCH_UP_TIMEOUT = 120.0


@dataclass
class ChaosReport:
    """Lines of the report, appended to the artifact file as they are made."""

    path: Path
    lines: list[str] = field(default_factory=list)

    def start(self, run_id: str, seed: int, settings: Settings) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        self.say(
            f"chaos run {run_id}: seed {seed} (STREAMBILL_CHAOS_SEED={seed} repeats it); "
            f"own Kafka {settings.bootstrap_servers}, Redis {settings.redis_url}, "
            f"{settings.partitions} partitions, {CUSTOMERS} customers, "
            f"{EVENTS_PER_PHASE} usage events per fault over {PHASE_SECONDS:.0f}s"
        )

    def say(self, text: str) -> None:
        self.lines.extend(text.splitlines())
        with self.path.open("a") as out:
            out.write(text + "\n")


@dataclass
class Chaos:
    settings: Settings
    cluster: Cluster
    supervisor: Supervisor
    report: ChaosReport
    rng: random.Random
    month: Month
    customers: list[DemoCustomer]
    account: list[AccountEvent]
    slices: list[list[UsageRecorded]]
    next_month_day: list[UsageRecorded]
    intended: list[Event] = field(default_factory=list)
    phases: int = 0
    closed: bool = False
    broken: str | None = None  # why later phases cannot run (a process stopped working)

    def watched(self) -> list[str]:
        return [*watched_customers(self.customers), self.customers[0].customer_id]

    def garbage(self) -> Garbage:
        return Garbage(self.settings, Codec(), random.Random(self.rng.random()))

    def run_phase(
        self,
        title: str,
        events: Sequence[UsageRecorded],
        fault: Callable[[LoadRun, float], list[str]],
        record: Callable[[str, object], None],
        *,
        garbage: Garbage | None = None,
    ) -> None:
        """Publish `events` while `fault(load, t0)` injects its faults (it returns what
        it did, one line each), then wait for everything to catch up and check."""
        self.phases += 1
        self.report.say(f"\n== fault {self.phases}: {title}")
        if self.broken is not None:
            self.report.say(f"  NOT RUN: {self.broken}")
            pytest.fail(f"not run: {self.broken}")
        earlier = [e for e in self.intended if isinstance(e, UsageRecorded)]
        load = LoadRun(self.settings, events, PHASE_SECONDS, garbage=garbage, earlier=earlier)
        t0 = time.monotonic()
        load.start()
        injected = fault(load, t0)
        load.finish()
        self.intended.extend(events)
        for line in injected:
            self.report.say(f"  injected: {line}")
        extra = f" + {load.garbage_sent:,} bad records" if garbage is not None else ""
        self.report.say(
            f"  load: {load.sent:,} usage events{extra} published in {time.monotonic() - t0:.1f}s"
        )
        if garbage is not None:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(garbage.made.items()))
            self.report.say(f"  bad records by kind: {kinds}")
        self.settle_and_check(record)

    def settle_and_check(self, record: Callable[[str, object], None]) -> None:
        s = self.settings
        try:
            worker_s = checks.wait_worker(s, CATCH_UP_TIMEOUT)
            projector_s = checks.wait_projector(s, CATCH_UP_TIMEOUT)
        except TimeoutError as exc:
            # A process that is alive but no longer makes progress: the supervisor cannot
            # see it, so every later phase would time out the same way.
            self.broken = f"fault {self.phases} left the system stuck: {exc}"
            for name in ("worker", "projector"):
                self.supervisor.dump(name)  # stacks into its log
            time.sleep(2)
            self.report.say(f"  STUCK: {exc} (logs in {self.supervisor.log_dir})")
            raise
        checks.wait_api(s, 60.0)
        exits = self.supervisor.take_unexpected()
        self.report.say(
            f"  caught up: worker {worker_s:.1f}s, projector {projector_s:.1f}s after the load;"
            f" exits nobody injected: {'; '.join(exits) or 'none'}"
        )
        rec = checks.check_reconcile(s, self.month if self.closed else None)
        table = checks.render(rec)
        self.report.say("  reconcile" + (f" --period {self.month}" if self.closed else "") + ":")
        self.report.say("\n".join("    " + line for line in table.splitlines()))
        models = checks.check_read_models(s)
        self.report.say(
            f"  read models: {models.keys:,} keys in Redis vs a rebuild from the log: "
            + ("equal" if not models.differences else f"{len(models.differences)} differ")
        )
        api = checks.check_api(s, self.watched())
        self.report.say(
            f"  API: balances of {len(self.watched())} customers "
            + ("equal the read models" if not api else f"DIFFER: {api[:3]}")
        )
        inv = checks.check_invoices(s, self.month, self.intended)
        how = "closed" if self.closed else "dry-run close"
        self.report.say(
            f"  invoices {self.month} ({how}): {inv.computed:,} from the log ({inv.total}), "
            f"{inv.expected:,} from an uninterrupted run: "
            + ("identical" if not inv.differences else f"{len(inv.differences)} differ")
        )
        record("reconcile", table)
        assert rec.ok, table
        assert not models.differences, "\n".join(models.differences[:20])
        assert not api, api
        assert not inv.differences, "\n".join(inv.differences[:20])


def prepare(
    settings: Settings,
    cluster: Cluster,
    supervisor: Supervisor,
    report: ChaosReport,
    rng: random.Random,
) -> Chaos:
    """Topics, the subscribed population, the worker / projector / API started."""
    started = time.monotonic()
    create_topics(settings)
    month = closable_month(datetime.now(UTC), timedelta(days=1))
    run_id = settings.topic_prefix.split("-")[1].rstrip(".")
    seed = rng.randrange(1 << 30)
    pop = population(CUSTOMERS, month.start, seed, run_id)
    with UsageClient(settings) as client:
        for event in pop.account_events:
            send_account(client, event)
    supervisor.add("worker", "worker", "--loglevel", "warning")
    supervisor.add("projector", "projector")
    supervisor.add("api", "api", "--port", str(settings.api_port))
    supervisor.watch()
    day = list(
        usage_day(pop.customers, EVENTS_PER_PHASE * SLICES, usage_day_start(month), seed, run_id)
    )
    slices = [day[i * EVENTS_PER_PHASE : (i + 1) * EVENTS_PER_PHASE] for i in range(SLICES)]
    next_day = list(usage_day(pop.customers, EVENTS_PER_PHASE, month.end, seed + 1, run_id + "n"))
    checks.wait_worker(settings, CATCH_UP_TIMEOUT)
    checks.wait_api(settings, 60.0)
    report.say(
        f"set-up in {time.monotonic() - started:.1f}s: {len(pop.account_events):,} account "
        f"events applied; month {month}; logs in {supervisor.log_dir}"
    )
    chaos = Chaos(
        settings,
        cluster,
        supervisor,
        report,
        rng,
        month,
        list(pop.customers),
        list(pop.account_events),
        slices,
        next_day,
    )
    chaos.intended.extend(pop.account_events)
    if not all(p.alive() for p in supervisor.procs.values()):
        pytest.fail(f"a process died during set-up; see {supervisor.log_dir}")
    return chaos
