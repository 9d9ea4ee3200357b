"""`bench/RESULTS.md` rendering from fixed parsed results, no broker; and the plan's sizes."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from bench import report as rep
from bench.figures import TARGETS
from bench.plan import NAMES, plan
from bench.run_all import README_END, README_START, load, save, update_readme

MACHINE = rep.Machine(
    cores=2, cpu_model="Test CPU @ 2.0GHz", memory_gib=23.5,
    load_before=(0.5, 0.4, 0.3), load_after=(1.5, 1.0, 0.5),
    versions={"Python": "3.11.7", "Kafka": "4.1.1", "Redis": "7.0.15", "Java": "17"},
    date="2026-11-27 00:00:00 UTC", commit="abc1234",
)  # fmt: skip


def _run(bench: str, axis: str, results: list[rep.Result], error: str | None = None) -> rep.Run:
    return rep.Run(
        bench=bench, axis=axis, argv=(f"bench/{bench}.py", "--events", "10"),
        started="2026-11-27 00:00:00 UTC", seconds=12.5, cpu_seconds=2.0,
        service_cpu_seconds=1.25, load_before=0.75, results=tuple(results), error=error,
    )  # fmt: skip


def _produce(events: int, many: float, single: float) -> list[rep.Result]:
    params = {"events": events, "customers": 100, "partitions": 6}
    return [
        rep.Result("produce", "report_many", params,
                   {"events_per_s": many, "cpu_us_per_event": 4.5, "seconds": 1.0}),
        rep.Result("produce", "report", params,
                   {"events_per_s": single, "cpu_us_per_event": 20.0, "seconds": 1.0}),
    ]  # fmt: skip


def _latency(rate: int, p50: float, p99: float) -> rep.Result:
    params = {"rate": rate, "seconds": 20.0, "customers": 1000, "partitions": 3}
    metrics = {"p50_ms": p50, "p99_ms": p99, "max_ms": 250.0, "observed": rate * 20.0,
               "published": rate * 20.0}  # fmt: skip
    return rep.Result("fold", "latency", params, metrics)


REPORT = rep.Report(
    machine=MACHINE,
    runs=(
        _run("produce", "headline", _produce(200_000, 150_000.0, 25_000.0)),
        _run("produce", "events", _produce(50_000, 120_000.0, 24_000.0)),
        _run("produce", "events", _produce(100_000, 140_000.0, 26_000.0)),
        _run("fold", "headline", [_latency(1000, 12.0, 45.5), _latency(5000, 20.0, 150.0)]),
        _run("fold", "rate", [_latency(500, 10.0, 30.0)]),
        _run("close", "headline", [], error="timed out after 1800s"),
    ),
    quick=False,
    total_seconds=90.0,
    notes=("An extra note.",),
)


def _section(text: str, title: str) -> list[str]:
    """The lines of one `## title` section."""
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return body.strip().splitlines()


def test_parse_results_reads_only_result_lines() -> None:
    output = (
        "report_many + flush    150,000 events/s\n"
        'RESULT {"bench": "produce", "figure": "report_many", "params": {"events": 5}, '
        '"metrics": {"events_per_s": 150000, "cpu_us_per_event": 4.5}}\n'
        "done\n"
    )
    assert rep.parse_results(output) == [
        rep.Result("produce", "report_many", {"events": 5},
                   {"events_per_s": 150000.0, "cpu_us_per_event": 4.5})
    ]  # fmt: skip


def test_machine_section_lists_cores_memory_load_and_versions() -> None:
    lines = _section(rep.render(REPORT), "Machine")
    assert "| cores (nproc) | 2 |" in lines
    assert "| memory | 23.5 GiB |" in lines
    assert "| load average before (1, 5, 15 min) | 0.50 0.40 0.30 |" in lines
    assert "| load average after (1, 5, 15 min) | 1.50 1.00 0.50 |" in lines
    assert {"| Kafka | 4.1.1 |", "| Redis | 7.0.15 |", "| Java | 17 |"} <= set(lines)


def test_headline_rows_give_measured_target_and_verdict() -> None:
    lines = _section(rep.render(REPORT), "Headline figures")
    at = "events 200,000, customers 100, partitions 6"
    assert (
        f"| SDK `report_many` + flush | 150,000 events/s | >= 100,000 events/s | yes | {at} |"
        in lines
    )
    assert (
        "| SDK `report` (one call per event) + flush | 25,000 events/s | >= 30,000 events/s"
        f" | **NO** | {at} |" in lines
    )
    at = "rate 1,000, seconds 20, customers 1,000, partitions 3"
    assert (
        f"| publish -> snapshot p99 at 1,000 events/s | 45.5 ms | < 100 ms | yes | {at} |" in lines
    )
    assert f"| publish -> snapshot p50 at 1,000 events/s | 12 ms | - | n/a | {at} |" in lines
    assert any(line.startswith("| publish -> snapshot p99 at 5,000 events/s | 150 ms") and
               "**NO**" in line for line in lines)  # fmt: skip
    assert "| period close | not measured | >= 100,000 events/s | - | - |" in lines
    assert len([line for line in lines if line.startswith("| ")]) == len(TARGETS) + 1


def test_scaling_tables_have_a_row_per_size_in_order() -> None:
    lines = _section(rep.render(REPORT), "Scaling")
    start = lines.index("#### by events (others as the headline run: customers 100, partitions 6)")
    table = lines[start + 2 : start + 7]
    assert table[0].startswith("| events | `report_many` events/s | `report` events/s |")
    assert [row.split(" | ")[:3] for row in table[2:]] == [
        ["| 50,000", "120,000", "24,000"],
        ["| 100,000", "140,000", "26,000"],
        ["| 200,000", "150,000", "25,000"],
    ]
    start = lines.index(
        "#### by rate (others as the headline run: seconds 20, customers 1,000, partitions 3)"
    )
    rows = lines[start + 4 : start + 7]
    assert rows == [
        "| 500 | 10 | 30 | 250 | 10,000 / 10,000 |",
        "| 1,000 | 12 | 45.5 | 250 | 20,000 / 20,000 |",
        "| 5,000 | 20 | 150 | 250 | 100,000 / 100,000 |",
    ]
    # one size only (close failed, no axis runs): no table for it
    assert not any("Period close" in line for line in lines)


def test_run_log_shows_every_run_with_cpu_and_failures() -> None:
    lines = _section(rep.render(REPORT), "Run log")
    assert len(lines) == 2 + len(REPORT.runs)
    assert lines[2] == (
        "| produce | headline | `bench/produce.py --events 10` | 12.5 | 2.0 | 10.0 | 1.2 | 0.75"
        " | ok |"
    )
    assert lines[-1].endswith("| **failed**: timed out after 1800s |")


def test_quick_report_is_labelled_and_full_report_is_not() -> None:
    full = rep.render(REPORT)
    quick = rep.render(rep.Report(MACHINE, REPORT.runs, True, 60.0))
    assert "QUICK MODE" not in full and "- An extra note." in full
    assert quick.splitlines()[2].startswith("> **QUICK MODE**")
    assert "| yes (quick sizes) |" in quick


def test_saved_results_load_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    save(REPORT, path)
    assert load(path) == REPORT


def test_plan_varies_each_axis_over_at_least_three_sizes() -> None:
    for quick in (True, False):
        invocations = plan(quick=quick)
        assert {inv.bench for inv in invocations} == set(NAMES)
        sizes: dict[tuple[str, str], set[str]] = defaultdict(set)
        headline = {inv.bench: inv.flags for inv in invocations if inv.axis == rep.HEADLINE}
        for inv in invocations:
            if inv.axis != rep.HEADLINE:
                flag = "--rates" if inv.axis == "rate" and inv.bench == "fold" else f"--{inv.axis}"
                sizes[(inv.bench, inv.axis)] |= {
                    str(inv.flags[flag]),
                    str(headline[inv.bench][flag]),
                }
        for (bench, axis), values in sizes.items():
            distinct = {v for value in values for v in value.split(",")}
            assert len(distinct) >= 3, (quick, bench, axis, distinct)
        for bench in ("produce", "fold", "close"):
            assert {"events", "customers", "partitions"} <= {a for b, a in sizes if b == bench}


def test_plan_only_filters_and_rejects_unknown_names() -> None:
    assert {inv.bench for inv in plan(quick=True, only=("api",))} == {"api"}
    assert [inv.axis for inv in plan(quick=True, only=("close",), headline_only=True)] == [
        rep.HEADLINE
    ]
    try:
        plan(quick=True, only=("nope",))
    except ValueError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("unknown benchmark accepted")


def test_readme_block_is_replaced_with_the_headline_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nSTALE-TABLE\n{README_END}\n\n## next\n")
    assert update_readme(REPORT, readme)
    text = readme.read_text()
    assert "STALE-TABLE" not in text and text.endswith(f"{README_END}\n\n## next\n")
    assert rep.headline_table(REPORT.runs) in text and "(bench/RESULTS.md)" in text
    readme.write_text("no markers")
    assert not update_readme(REPORT, readme) and readme.read_text() == "no markers"
