"""`worker-rebuild`: the worker's state rebuilt from the latest close's checkpoints
plus the log after them equals what the worker published, also after the records
below the checkpoints were deleted (issue 17).

Generated histories of the differential test run through the closes (at their due
times) and the worker (random batches); then the inputs the next close does not
read are deleted as in tests/unit/processors/close/test_checkpoints_differential.py
and the rebuild runs on what is left.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from processors.close.plan import Month
from processors.close.run import read_history
from processors.reconcile.rebuild import RebuildReport, rebuild_worker
from tests.close_support import TOPICS as CT
from tests.unit.processors.close.test_checkpoints_differential import _run, _trim
from tests.unit.processors.test_differential import (
    CATALOG,
    POLICY,
    TOPICS,
    WORKER_NOW,
    Arrival,
    histories,
    run_worker,
)


def _window(seen: Mapping[str, Any], report: RebuildReport) -> dict[str, tuple[str, int]]:
    """The dedupe entries admission can still consult: those of each customer not more
    than the dedupe window behind its watermark, as (fingerprint, event time)."""
    out: dict[str, tuple[str, int]] = {}
    for key, value in seen.items():
        entry = value[1] if isinstance(value, tuple) else value
        record = report.records.get(entry.customer_id)
        if record is None or record[1].watermark_ms is None:
            continue
        if entry.event_ms >= record[1].watermark_ms - POLICY.dedupe_window_ms:
            out[key] = (entry.fingerprint, entry.event_ms)
    return out


@settings(
    max_examples=int(os.environ.get("STREAMBILL_DIFFERENTIAL_EXAMPLES", "200")) // 4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    history=histories(),
    cuts=st.data(),
    trim=st.booleans(),
    until=st.sampled_from(["2025-02", "2025-03", "2025-04"]),
)
def test_the_rebuild_equals_the_workers_state(
    history: list[Arrival], cuts: st.DataObject, trim: bool, until: str
) -> None:
    """Closes up to `until` only: what arrived after its close is folded on top of
    the checkpoints. The rebuilt dedupe window (what `--install` hands to a new worker)
    equals the worker's own seen table within the window."""
    h = _run(history, checkpoints=True, trim=False, until=until)
    tables, outputs = run_worker(h, h.arrived, cuts)  # type: ignore[attr-defined]
    for topic, key, value in outputs:
        h.log.produce(topic, key or b"", value, 0)
    if trim:
        history_ = read_history(h.log, CT.closes, h.codec)
        last = history_.last_closed
        assert last is not None
        _trim(h, dict(history_.closed[last].watermarks), Month(last.year, last.month))
    report = rebuild_worker(h.log, h.codec, CATALOG, TOPICS, CT, POLICY, lambda: WORKER_NOW)
    assert report.started_from == f"checkpoints of {until}"
    assert report.ok, report.differences
    assert report.equal == report.customers > 0
    assert _window(report.seen, report) == _window(tables.seen_ids, report)
    event(f"records folded after the checkpoints > 0: {report.records_folded > 0}")
