"""The benchmark report: parsed `RESULT {json}` lines in, `bench/RESULTS.md` text out.

Pure (no broker, no clock, no files): `bench/run_all.py` gathers a `Report` and calls
`render`; the unit test renders a fixed `Report`. Every benchmark script prints, next to
its human output, one line per figure:

    RESULT {"bench": "fold", "figure": "latency", "params": {"rate": 1000, ...},
            "metrics": {"p50_ms": 12.0, "p99_ms": 40.0, ...}}

A run is one invocation of a script; its `axis` says why it was run: "headline" (the
size the targets are stated at) or the parameter varied for scaling ("events", ...),
the others held at the headline size. A scaling table's rows are the headline run plus
that axis's runs, keyed by the varied parameter of each result.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.figures import BENCH_TITLES, TARGETS, VIEWS, Column, number

RESULT_PREFIX = "RESULT "
HEADLINE = "headline"


@dataclass(frozen=True)
class Result:
    """One figure a benchmark printed."""

    bench: str
    figure: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float]

    def matches(self, figure: str, where: Mapping[str, Any]) -> bool:
        return self.figure == figure and all(self.params.get(k) == v for k, v in where.items())


@dataclass(frozen=True)
class Run:
    """One invocation of a benchmark script and what the harness measured around it."""

    bench: str
    axis: str
    argv: tuple[str, ...]
    started: str  # ISO date-time, UTC
    seconds: float
    cpu_seconds: float  # the script's process tree (children waited for), user + system
    service_cpu_seconds: float | None  # Kafka + Redis during the run
    load_before: float  # 1-minute load average when it started
    results: tuple[Result, ...]
    error: str | None = None


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu_model: str
    memory_gib: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    versions: Mapping[str, str]  # "Python", "Kafka", "Java", "Redis", "librdkafka", ...
    date: str
    commit: str


@dataclass(frozen=True)
class Report:
    machine: Machine
    runs: tuple[Run, ...]
    quick: bool
    total_seconds: float
    notes: tuple[str, ...] = ()


def parse_results(output: str) -> list[Result]:
    """Every `RESULT {json}` line of a script's output; other lines are human output."""
    found = []
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            metrics = {k: float(v) for k, v in data["metrics"].items()}
            found.append(Result(data["bench"], data["figure"], data["params"], metrics))
    return found


# --- rendering ---------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _params(params: Mapping[str, Any], skip: str = "") -> str:
    def show(v: Any) -> str:
        return number(float(v)) if isinstance(v, int | float) else str(v)

    return ", ".join(f"{k} {show(v)}" for k, v in params.items() if k != skip) or "-"


def _find(runs: Sequence[Run], bench: str, figure: str, where: Mapping[str, Any]) -> Result | None:
    for run in runs:
        if run.bench == bench and run.axis == HEADLINE:
            for result in run.results:
                if result.matches(figure, where):
                    return result
    return None


def _headline(runs: Sequence[Run], quick: bool = False) -> list[str]:
    rows = []
    for t in TARGETS:
        result = _find(runs, t.bench, t.figure, t.where)
        if result is None or t.metric not in result.metrics:
            rows.append([t.label, "not measured", t.describe(), "-", "-"])
            continue
        value = result.metrics[t.metric]
        met = t.met(value)
        verdict = "n/a" if met is None else ("yes" if met else "**NO**")
        if quick and met is not None:
            verdict += " (quick sizes)"
        rows.append([t.label, f"{number(value)} {t.unit}", t.describe(), verdict,
                     _params(result.params)])  # fmt: skip
    return _table(["figure", "measured", "target", "met?", "measured at"], rows)


def headline_table(runs: Sequence[Run]) -> str:
    """The headline table alone (the README quotes it)."""
    return "\n".join(_headline(runs))


def _axis_key(axis: str, value: Any) -> str:
    if axis == "rate" and value == 0:
        return "0 (closed loop)"
    return number(float(value)) if isinstance(value, int | float) else str(value)


def _cell(column: Column, result: Result) -> str:
    value = result.metrics.get(column.metric)
    if value is None:
        return "-"
    if column.metric == "observed":
        return f"{number(value)} / {number(result.metrics.get('published', float('nan')))}"
    return number(value)


def _scaling_view(
    runs: Sequence[Run], bench: str, axis: str, columns: Sequence[Column]
) -> list[str]:
    chosen = [r for r in runs if r.bench == bench and r.axis in (HEADLINE, axis)]
    figures = {c.figure for c in columns}
    dims = {k for c in columns for k in c.where}  # told apart by columns, not held
    keyed: dict[Any, dict[str, str]] = {}
    held: Mapping[str, Any] = {}
    for run in chosen:
        for result in run.results:
            if result.figure not in figures or axis not in result.params:
                continue
            if run.axis == HEADLINE:
                held = {k: v for k, v in result.params.items() if k not in dims}
            row = keyed.setdefault(result.params[axis], {})
            for col in columns:
                if result.matches(col.figure, col.where):
                    row[col.header] = _cell(col, result)
    if len(keyed) < 2:
        return []
    rows = [
        [_axis_key(axis, key)] + [keyed[key].get(c.header, "-") for c in columns]
        for key in sorted(keyed)
    ]
    title = f"#### by {axis}" + (
        f" (others as the headline run: {_params(held, axis)})" if held else ""
    )
    return [title, "", *_table([axis, *(c.header for c in columns)], rows), ""]


def _scaling(runs: Sequence[Run]) -> list[str]:
    out: list[str] = []
    for bench, title in BENCH_TITLES.items():
        body: list[str] = []
        for view_bench, axis, columns in VIEWS:
            if view_bench == bench:
                body += _scaling_view(runs, bench, axis, columns)
        if body:
            out += [f"### {title}", "", *body]
    return out


def _run_rows(runs: Sequence[Run]) -> list[str]:
    rows = []
    for run in runs:
        events = next((r.params.get("events") for r in run.results if "events" in r.params), None)
        per_event = (
            f"{run.cpu_seconds / float(events) * 1e6:.1f}"
            if isinstance(events, int | float) and events
            else "-"
        )
        service = "-" if run.service_cpu_seconds is None else f"{run.service_cpu_seconds:.1f}"
        status = "ok" if run.error is None else f"**failed**: {run.error}"
        rows.append([run.bench, run.axis, "`" + shlex.join(run.argv) + "`", f"{run.seconds:.1f}",
                     f"{run.cpu_seconds:.1f}", per_event, service, f"{run.load_before:.2f}",
                     status])  # fmt: skip
    headers = ["bench", "axis", "arguments", "wall s", "CPU s (script tree)",
               "script CPU µs/event", "CPU s (Kafka+Redis)", "load before", "status"]  # fmt: skip
    return _table(headers, rows)


def _machine(m: Machine) -> list[str]:
    load = "{:.2f} {:.2f} {:.2f}"
    rows = [
        ["date", m.date],
        ["commit", m.commit],
        ["cores (nproc)", str(m.cores)],
        ["CPU", m.cpu_model],
        ["memory", f"{m.memory_gib:.1f} GiB"],
        ["load average before (1, 5, 15 min)", load.format(*m.load_before)],
        ["load average after (1, 5, 15 min)", load.format(*m.load_after)],
        *([name, version] for name, version in m.versions.items()),
    ]
    return _table(["", ""], rows)


NOTES = (
    "The machine is a shared 2-core VM: other work may run during a benchmark, and Kafka, "
    "Redis, the script and (for fold) the worker all compete for the same two cores. The "
    "figures are noisy; compare the load averages and the per-run load in the run log.",
    "Throughput figures are wall-clock rates unless they say CPU-s (rating is stated per "
    "CPU second of one core, as its target is). `CPU µs/event` in the scaling tables is what "
    "the script measured around the timed part; the run log's `script CPU µs/event` is the "
    "whole script's process tree (input generation, publishing, the worker) per event, so "
    "it overstates the timed part, and `CPU s (Kafka+Redis)` is the services' CPU during "
    "the run.",
    "Latencies are open loop: a request or event counts from when it was due, so queueing "
    "behind a slow answer is not hidden.",
    "Kafka is one KRaft broker with its log on the VM's disk, started by "
    "`streambill services up` in a state directory of its own for this report.",
)


def render(report: Report) -> str:
    lines = ["# streambill benchmark results", ""]
    if report.quick:
        lines += [
            "> **QUICK MODE**: tiny sizes and short durations, made to check the harness "
            "(`bench/run --quick`). These figures do not say whether a target is met; "
            "`bench/run` without `--quick` makes the real report.",
            "",
        ]
    minutes = report.total_seconds / 60
    lines += [
        f"Written by `bench/run{' --quick' if report.quick else ''}` on {report.machine.date}"
        f" in {minutes:.1f} minutes. Every figure comes from a `RESULT` line a script under "
        "`bench/` printed; the run log at the end lists every invocation.",
        "",
        "## Machine",
        "",
        *_machine(report.machine),
        "",
        "## Headline figures",
        "",
        *_headline(report.runs, report.quick),
        "",
        "## Scaling",
        "",
        "Each table varies one parameter; the others stay at the headline run's values "
        "(that run is one of the rows).",
        "",
        *_scaling(report.runs),
        "## Run log",
        "",
        *_run_rows(report.runs),
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in (*NOTES, *report.notes)),
        "",
    ]
    return "\n".join(lines)
