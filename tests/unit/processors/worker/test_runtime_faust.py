"""`FaustRuntime` without a broker: what it reads of Faust's state (nothing connects
until the app starts)."""

from __future__ import annotations

from processors.worker.runtime.app import FaustRuntime
from streambill.config.settings import Settings


def test_in_recovery_is_the_recovery_services_flag_and_rebalancing_the_apps() -> None:
    runtime = FaustRuntime(Settings(worker_store="memory://"), ("u", "a"), print)
    assert runtime.in_recovery is False  # no recovery service yet: nothing recovers
    recovery = runtime.app.tables.recovery  # type: ignore[attr-defined]
    recovery.in_recovery = True
    assert runtime.in_recovery is True
    recovery.in_recovery = False
    assert runtime.in_recovery is False
    assert runtime.rebalancing is False
    assert runtime.assigned() == frozenset()  # no consumer yet: none made from here
    assert runtime.customers.changelog.endswith("customers-changelog")
