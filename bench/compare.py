"""Compare two `bench/results.json` files (written by `bench/run`) figure by figure.

    python -m bench.compare BEFORE.json AFTER.json

Prints a Markdown table of the headline runs' rates and latencies: before, after and
the ratio after / before, with ">" where a rate fell or a latency grew by more than
10 %. The machines are shared and noisy: read a ratio with the load averages of the
two runs (bench/RESULTS.md's run log), not as a verdict on its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# metric -> True when higher is better
METRICS = {
    "events_per_s": True,
    "events_per_cpu_s": True,
    "cpu_us_per_event": False,
    "p50_ms": False,
    "p99_ms": False,
}


def figures(doc: Mapping[str, Any]) -> Iterator[tuple[tuple[str, str, str, str], float]]:
    """((bench, figure, params, metric), value) of every headline result."""
    for run in doc.get("runs", []):
        if run.get("axis") != "headline":
            continue
        for result in run.get("results") or []:
            params = ", ".join(f"{k} {v}" for k, v in sorted(result["params"].items()))
            for metric, value in result["metrics"].items():
                if metric in METRICS:
                    yield (run["bench"], result["figure"], params, metric), float(value)


def table(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    old, new = dict(figures(before)), dict(figures(after))
    lines = [
        "| bench | figure | measured at | metric | before | after | after / before |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(old.keys() & new.keys()):
        bench, figure, params, metric = key
        a, b = old[key], new[key]
        ratio = b / a if a else float("nan")
        worse = ratio < 0.9 if METRICS[metric] else ratio > 1.1
        lines.append(
            f"| {bench} | {figure} | {params} | {metric} | {a:,.1f} | {b:,.1f} |"
            f" {ratio:.2f}{' >' if worse else ''} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m bench.compare BEFORE.json AFTER.json\n")
        return 2
    docs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in argv]
    print(table(docs[0], docs[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
