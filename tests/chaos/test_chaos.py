"""The chaos suite: while the demo's load runs, one fault after the other, and after
each one `reconcile` is clean, the read models equal a rebuild and the invoices equal
an uninterrupted run (see `tests/chaos/checks.py`).

The tests run in file order on one environment (the `chaos` fixture): each phase
adds its slice of usage to the same log, so every check covers everything that
happened before it too. Faults happen at random moments drawn from the run's seed,
which the report prints. The report, with reconcile's table after every fault, is
in the terminal summary and in test-artifacts/chaos-report.txt.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable

import pytest

from streambill.config.settings import INVOICES, PERIOD_CLOSES, Settings
from streambill.local.procs import Child
from streambill.wire.kafka_log import KafkaLog
from tests.chaos.harness import chaos_child
from tests.chaos.load import LoadRun
from tests.chaos.scenario import PHASE_SECONDS, Chaos

pytestmark = pytest.mark.chaos

KILLS_PER_PROCESS = 2

Record = Callable[[str, object], None]


def _moments(chaos: Chaos, count: int, first: float = 0.5) -> list[float]:
    """`count` random instants within the phase's load, in order."""
    return sorted(chaos.rng.uniform(first, PHASE_SECONDS - 0.5) for _ in range(count))


def _until(t0: float, moment: float) -> None:
    delay = t0 + moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _kill_process(chaos: Chaos, name: str) -> Callable[[LoadRun, float], list[str]]:
    def fault(load: LoadRun, t0: float) -> list[str]:
        done = []
        for moment in _moments(chaos, KILLS_PER_PROCESS):
            _until(t0, moment)
            pid = chaos.supervisor.kill(name)
            done.append(
                f"t={time.monotonic() - t0:.1f}s SIGKILL {name} (pid {pid}) after "
                f"{load.sent:,} events published; restarted"
            )
        return done

    return fault


def test_sigkill_fold_worker(chaos: Chaos, record_property: Record) -> None:
    chaos.run_phase(
        "SIGKILL the fold worker at random moments",
        chaos.slices[0],
        _kill_process(chaos, "worker"),
        record_property,
    )


def test_sigkill_projector(chaos: Chaos, record_property: Record) -> None:
    chaos.run_phase(
        "SIGKILL the projector at random moments",
        chaos.slices[1],
        _kill_process(chaos, "projector"),
        record_property,
    )


class ApiPoller(threading.Thread):
    """Asks the API for balances all along, counting answers and failures."""

    def __init__(self, settings: Settings, customer_ids: list[str]) -> None:
        super().__init__(name="api-poller", daemon=True)
        self.settings, self.customer_ids = settings, customer_ids
        self.ok = self.failed = 0
        self.halt = threading.Event()

    def run(self) -> None:
        s = self.settings
        key = s.admin_key.get_secret_value() if s.admin_key else ""
        n = 0
        while not self.halt.wait(0.05):
            cid = self.customer_ids[n % len(self.customer_ids)]
            n += 1
            request = urllib.request.Request(
                f"http://{s.api_host}:{s.api_port}/v1/customers/{cid}/balance",
                headers={"x-admin-key": key},
            )
            try:
                with urllib.request.urlopen(request, timeout=2):
                    self.ok += 1
            except OSError:
                self.failed += 1


def test_sigkill_api(chaos: Chaos, record_property: Record) -> None:
    poller = ApiPoller(chaos.settings, chaos.watched())
    kill = _kill_process(chaos, "api")

    def fault(load: LoadRun, t0: float) -> list[str]:
        poller.start()
        done = kill(load, t0)
        _until(t0, PHASE_SECONDS)
        poller.halt.set()
        poller.join()
        return [*done, f"API polled during the phase: {poller.ok} answers, {poller.failed} failed"]

    chaos.run_phase("SIGKILL the API at random moments", chaos.slices[2], fault, record_property)
    assert poller.ok > 0


def test_sigkill_kafka_broker_and_restart_on_same_data(
    chaos: Chaos, record_property: Record
) -> None:
    def fault(load: LoadRun, t0: float) -> list[str]:
        (moment,) = _moments(chaos, 1, first=1.0)
        _until(t0, moment)
        chaos.cluster.kill_kafka()
        line = f"t={time.monotonic() - t0:.1f}s SIGKILL the Kafka broker ({load.sent:,} published)"
        time.sleep(2.0)
        seconds = chaos.cluster.start_kafka()
        return [f"{line}; restarted on the same data, answering after {seconds:.1f}s"]

    chaos.run_phase(
        "SIGKILL the Kafka broker, restart it on the same data",
        chaos.slices[3],
        fault,
        record_property,
    )


def test_redis_stopped_flushed_restarted(chaos: Chaos, record_property: Record) -> None:
    def fault(load: LoadRun, t0: float) -> list[str]:
        (moment,) = _moments(chaos, 1, first=1.0)
        _until(t0, moment)
        chaos.cluster.lose_redis()
        line = (
            f"t={time.monotonic() - t0:.1f}s Redis SIGKILLed, its data files deleted "
            f"({load.sent:,} published)"
        )
        time.sleep(1.0)
        chaos.cluster.start_redis()
        return [f"{line}; restarted empty"]

    chaos.run_phase("stop Redis, flush it, restart it", chaos.slices[4], fault, record_property)


def test_garbage_and_schema_invalid_events(chaos: Chaos, record_property: Record) -> None:
    def fault(load: LoadRun, t0: float) -> list[str]:
        return ["5 % of the records are bad input, mixed into the load (kinds below)"]

    chaos.run_phase(
        "inject 5 % garbage and schema-invalid events",
        chaos.slices[5],
        fault,
        record_property,
        garbage=chaos.garbage(),
    )


def test_rebalances_with_extra_workers(chaos: Chaos, record_property: Record) -> None:
    sup = chaos.supervisor

    def fault(load: LoadRun, t0: float) -> list[str]:
        # One moment in each quarter of the load, so each rebalance has time to finish.
        quarter = PHASE_SECONDS / 4
        a, b, c, d = (chaos.rng.uniform(i * quarter + 0.3, (i + 1) * quarter) for i in range(4))
        _until(t0, a)
        sup.add("worker-2", "worker", "--loglevel", "warning")
        done = [f"t={time.monotonic() - t0:.1f}s started a second worker"]
        _until(t0, b)
        sup.add("worker-3", "worker", "--loglevel", "warning")
        done.append(f"t={time.monotonic() - t0:.1f}s started a third worker")
        _until(t0, c)
        sup.remove("worker-2", kill=False)
        done.append(f"t={time.monotonic() - t0:.1f}s stopped the second worker (SIGTERM)")
        _until(t0, d)
        sup.remove("worker-3", kill=True)
        done.append(f"t={time.monotonic() - t0:.1f}s SIGKILLed the third worker")
        return done

    chaos.run_phase(
        "start and stop extra workers to force rebalances", chaos.slices[6], fault, record_property
    )


def _close_outputs(settings: Settings) -> tuple[int, int]:
    """(records on invoices, records on period-closes) right now."""
    log = KafkaLog(settings.kafka_config())
    try:
        invoices = sum(log.watermarks(settings.topic(INVOICES))[1].values())
        closes = sum(log.watermarks(settings.topic(PERIOD_CLOSES))[1].values())
    finally:
        log.close()
    return invoices, closes


def _describe(outputs: tuple[int, int]) -> str:
    return f"invoices topic {outputs[0]:,} records, period-closes {outputs[1]}"


def _kill_when(
    job: Child, settings: Settings, ready: Callable[[tuple[int, int]], bool], delay: float
) -> str:
    """SIGKILL the job `delay` seconds after `ready(outputs)` first holds (or when it
    has finished by itself); what happened, in words."""
    deadline = time.monotonic() + 120.0
    while not ready(_close_outputs(settings)) and job.alive():
        if time.monotonic() > deadline:
            raise TimeoutError("the close job never reached the kill moment")
        time.sleep(0.05)
    time.sleep(delay)
    code = job.exit_code()
    if code is not None:
        return f"the close job finished (exit {code}) before its kill moment"
    job.kill()
    return f"SIGKILL the close job (pid {job.pid}) and its fold processes"


def test_sigkill_close_job(chaos: Chaos, record_property: Record) -> None:
    """Closes the month while usage of the next month flows. The close is SIGKILLed
    (with its fold processes) three times: at a random moment of its start-up or read;
    a random moment after its plan record (the watermarks) is on period-closes, while
    it folds; and a random moment after its first invoices are on the topic, before or
    after PeriodClosed. Then it runs to completion."""
    settings = chaos.settings
    job = chaos_child(
        "close",
        ["close", "--period", str(chaos.month), "--grace", "1d"],
        chaos.supervisor.log_dir,
        chaos.supervisor.env(),
    )
    before = _close_outputs(settings)
    moments: list[tuple[str, Callable[[tuple[int, int]], bool], float]] = [
        ("at random", lambda out: True, chaos.rng.uniform(0.3, 2.0)),
        ("after the plan record", lambda out: out[1] > before[1], chaos.rng.uniform(0.0, 1.5)),
        ("while sending invoices", lambda out: out[0] > before[0], chaos.rng.uniform(0.0, 0.2)),
    ]

    def fault(load: LoadRun, t0: float) -> list[str]:
        done = []
        for name, ready, delay in moments:
            job.start()
            what = _kill_when(job, settings, ready, delay)
            outputs = _describe(_close_outputs(settings))
            done.append(f"t={time.monotonic() - t0:.1f}s ({name}) {what}; {outputs}")
        job.start()
        code = job.wait(timeout=300)
        done.append(
            f"t={time.monotonic() - t0:.1f}s close run to completion: exit {code}; "
            f"{_describe(_close_outputs(settings))}"
        )
        assert code == 0, f"the close failed; see {job.log}"
        chaos.closed = True
        return done

    chaos.run_phase(
        "SIGKILL the close job at random moments (closing the month during the load)",
        chaos.next_month_day,
        fault,
        record_property,
    )
