"""The chaos suite's environment and its report.

The report (faults injected, what the load was, and `reconcile`'s table after each
fault) goes to three places: `test-artifacts/chaos-report.txt` as it happens, the
pytest terminal summary (so CI output shows it without `-s`), and each test's
`record_property` entries (so it is in a JUnit XML report too).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streambill.local.procs import ServiceError
from tests.chaos.harness import Cluster, Supervisor, chaos_settings
from tests.chaos.scenario import Chaos, ChaosReport, prepare
from tests.support import unavailable

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REPORT_KEY = pytest.StashKey[ChaosReport]()


def _report(config: pytest.Config) -> ChaosReport:
    if REPORT_KEY not in config.stash:
        config.stash[REPORT_KEY] = ChaosReport(ARTIFACTS / "chaos-report.txt")
    return config.stash[REPORT_KEY]


@pytest.fixture(scope="module")
def chaos(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chaos]:
    """A private Kafka + Redis, topics, a subscribed population, and the worker,
    projector and API running under the supervisor. Torn down whatever happens."""
    run_id = uuid.uuid4().hex[:6]
    seed = int(os.environ.get("STREAMBILL_CHAOS_SEED", str(random.randrange(1 << 30))))
    settings = chaos_settings(tmp_path_factory.mktemp("chaos"), run_id)
    report = _report(request.config)
    report.start(run_id, seed, settings)
    cluster = Cluster(settings)
    supervisor = Supervisor(settings, ARTIFACTS / f"chaos-{run_id}")
    try:
        try:
            cluster.up()
        except ServiceError as exc:
            unavailable(f"the chaos suite cannot start its own Kafka and Redis: {exc}")
        yield prepare(settings, cluster, supervisor, report, random.Random(seed))
    finally:
        supervisor.stop_all()
        cluster.down()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    if REPORT_KEY not in config.stash:
        return
    terminalreporter.section("chaos: faults injected and reconcile after each")
    for line in config.stash[REPORT_KEY].lines:
        terminalreporter.write_line(line)
