"""docs/grafana/streambill.json names only metrics the processes export: every metric
in every panel target's PromQL is a sample name of the registries the worker, the
period close and the projector create (the API exports no metrics). A renamed or
removed metric fails here instead of leaving an empty panel in production."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from processors.close.progress import CloseMetrics
from processors.worker.metrics import WorkerMetrics
from projections.read.metrics import ProjectorMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "streambill.json"

# What a PromQL expression may name besides metrics (those the dashboard could use).
FUNCTIONS = {
    "abs", "absent", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "count_over_time", "delta", "deriv", "floor", "histogram_quantile", "idelta",
    "increase", "irate", "label_replace", "last_over_time", "max_over_time",
    "min_over_time", "predict_linear", "rate", "resets", "round", "scalar", "sort",
    "sort_desc", "sum_over_time", "time", "timestamp", "vector",
}  # fmt: skip
AGGREGATIONS = {"avg", "count", "max", "min", "quantile", "stddev", "sum", "topk", "bottomk"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}  # fmt: skip
NOT_METRICS = FUNCTIONS | AGGREGATIONS | KEYWORDS

# Sample names prometheus_client exposes for a metric family of each type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
# A whole identifier: not the tail of a number (`5m`, `1e3`), whatever follows it
# (`{`, `[`, a paren, a space, but also `,` or an operator: a name is never missed).
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])")


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects: the identifiers left once strings, label
    matchers, ranges, label lists (`by (...)`, `on (...)`, ...) and Grafana variables
    are removed, that are no PromQL function, aggregation or keyword."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in NOT_METRICS}


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in (collapsed) rows included."""
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def used_metrics(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """Panel title -> the metric names its targets' `expr` select."""
    used: dict[str, set[str]] = {}
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            used.setdefault(panel["title"], set()).update(metric_names(target["expr"]))
    return used


def exported_samples() -> set[str]:
    """Sample names of the processes' registries, each metrics class on a fresh one:
    those collected, plus those a labelled family shows once it has a child (a fresh
    labelled metric has no samples yet)."""
    names: set[str] = set()
    for metrics in (WorkerMetrics, CloseMetrics, ProjectorMetrics):
        registry = CollectorRegistry()
        metrics(registry)
        for family in registry.collect():
            names |= {sample.name for sample in family.samples}
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def unknown_metrics(dashboard: dict[str, Any], exported: set[str]) -> dict[str, set[str]]:
    """Panel title -> the names it uses that no registry exports (empty: all known)."""
    used = used_metrics(dashboard)
    return {title: names - exported for title, names in used.items() if names - exported}


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_every_metric_a_panel_uses_is_exported_by_a_process() -> None:
    used = used_metrics(load())
    assert len(used) >= 15  # the walk found the panels
    assert all(used.values()), [title for title, names in used.items() if not names]
    assert unknown_metrics(load(), exported_samples()) == {}


def test_the_dashboard_covers_the_worker_the_close_and_the_projector() -> None:
    names = set().union(*used_metrics(load()).values())
    for prefix in ("streambill_worker_", "streambill_close_", "streambill_projector_"):
        assert any(n.startswith(prefix) for n in names), prefix
    for wanted in (
        "streambill_worker_events_rejected_total",
        "streambill_worker_consumer_lag",
        "streambill_worker_batch_duration_seconds_bucket",
        "streambill_close_duration_seconds",
        "streambill_close_last_closed_month",
        "streambill_close_invoices_total",
        "streambill_projector_consumer_lag",
        "streambill_projector_records_applied_total",
    ):
        assert wanted in names


def test_the_dashboard_is_importable_with_a_prometheus_input() -> None:
    dashboard = load()
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    found = list(panels(dashboard))
    assert len({p["id"] for p in found}) == len(found)  # Grafana needs unique ids
    for panel in found:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_the_extractor_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, topic) (rate(a_seconds_bucket{job="x", le!="1"}'
        "[$__rate_interval]))) / ignoring (le) group_left count(b_total offset 5m) "
        "+ time() - max without (instance) (c) and on (job) "
        'label_replace(d, "x", "$1", "y", "(.*)") > bool 1e3 + e_total/f'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c", "d", "e_total", "f"}
    assert metric_names("sum(rate(streambill_x_total[5m]))") == {"streambill_x_total"}


def test_a_panel_naming_a_metric_no_process_exports_is_reported() -> None:
    dashboard = {
        "panels": [
            {
                "type": "row",
                "title": "collapsed",
                "panels": [
                    {
                        "title": "typo",
                        "targets": [
                            {"expr": "sum(rate(streambill_worker_events_aplied_total[5m]))"},
                            {"expr": "sum(streambill_worker_consumer_lag)"},
                        ],
                    }
                ],
            },
            {
                "title": "counter without _total",
                "targets": [{"expr": "streambill_worker_events_in"}],
            },
        ]
    }
    assert unknown_metrics(dashboard, exported_samples()) == {
        "typo": {"streambill_worker_events_aplied_total"},
        "counter without _total": {"streambill_worker_events_in"},
    }


def test_the_suffixes_match_what_prometheus_client_collects() -> None:
    """The derived names of `exported_samples` are those prometheus_client exposes once
    a family has samples (checked on every family that has some when fresh)."""
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    checked = 0
    for family in registry.collect():
        if family.samples:
            checked += 1
            derived = {family.name + suffix for suffix in SUFFIXES[family.type]}
            assert {s.name for s in family.samples} <= derived, family.name
    assert checked >= 5
