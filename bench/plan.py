"""Which benchmark invocations `bench/run` makes: the headline size of each script and,
for scaling, runs that vary one parameter with the others held at the headline size.

Full sizes are the issues' stated sizes (the scripts' defaults); quick sizes are tiny,
for checking the harness. Only the scripts' command lines are used here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.report import HEADLINE

Value = str | int | float | bool
NAMES = ("produce", "rating", "fold", "close", "api")


@dataclass(frozen=True)
class Invocation:
    bench: str
    axis: str
    flags: Mapping[str, Value]

    def argv(self) -> tuple[str, ...]:
        """`bench/<name>.py` and its flags; True is a bare switch, False leaves it out."""
        out = [f"bench/{self.bench}.py"]
        for flag, value in self.flags.items():
            if value is True:
                out.append(flag)
            elif value is not False:
                out += [flag, str(value)]
        return tuple(out)


@dataclass(frozen=True)
class Axis:
    """Scaling runs: `flag` takes each of `values`; `extra` flags go with every run."""

    name: str
    flag: str
    values: tuple[Value, ...]
    extra: Mapping[str, Value] | None = None


def _bench(
    name: str, base: Mapping[str, Value], axes: tuple[Axis, ...], headline_only: bool
) -> list[Invocation]:
    runs = [Invocation(name, HEADLINE, dict(base))]
    if headline_only:
        return runs
    for axis in axes:
        for value in axis.values:
            runs.append(
                Invocation(name, axis.name, {**base, **(axis.extra or {}), axis.flag: value})
            )
    return runs


def _full() -> dict[str, tuple[dict[str, Value], tuple[Axis, ...]]]:
    no_latency: dict[str, Value] = {"--rates": ""}
    latency_only: dict[str, Value] = {"--skip-throughput": True}
    return {
        "produce": (
            {"--events": 200_000, "--customers": 10_000, "--partitions": 6},
            (
                Axis("events", "--events", (50_000, 100_000)),
                Axis("customers", "--customers", (100, 1_000)),
                Axis("partitions", "--partitions", (1, 3, 12)),
            ),
        ),
        "rating": (
            {"--events": 200_000, "--customers": 100},
            (
                Axis("events", "--events", (50_000, 1_000_000)),
                Axis("customers", "--customers", (10_000, 100_000)),
            ),
        ),
        "fold": (
            {
                "--events": 500_000,
                "--customers": 1_000,
                "--partitions": 3,
                "--rates": "1000,5000",
                "--latency-seconds": 20,
            },
            (
                Axis("events", "--events", (100_000, 250_000), no_latency),
                Axis("customers", "--customers", (100, 10_000), no_latency),
                Axis("partitions", "--partitions", (1, 6), no_latency),
                Axis("rate", "--rates", ("500,2000",), latency_only),
            ),
        ),
        "close": (
            {"--events": 1_000_000, "--customers": 10_000, "--partitions": 4, "--workers": 2},
            (
                Axis("events", "--events", (250_000, 500_000)),
                Axis("customers", "--customers", (1_000, 100_000)),
                Axis("partitions", "--partitions", (1, 2, 8)),
                Axis("workers", "--workers", (1, 4)),
            ),
        ),
        "api": (
            {"--rate": 1000, "--duration": 10, "--customers": 1_000},
            (
                Axis("rate", "--rate", (500, 2000, 0)),
                Axis("customers", "--customers", (100, 10_000)),
            ),
        ),
    }


def _quick() -> dict[str, tuple[dict[str, Value], tuple[Axis, ...]]]:
    no_latency: dict[str, Value] = {"--rates": ""}
    latency_only: dict[str, Value] = {"--skip-throughput": True}
    return {
        "produce": (
            {"--events": 5_000, "--customers": 1_000, "--partitions": 2},
            (
                Axis("events", "--events", (2_000, 10_000)),
                Axis("customers", "--customers", (100, 10_000)),
                Axis("partitions", "--partitions", (1, 4)),
            ),
        ),
        "rating": (
            {"--events": 5_000, "--customers": 100, "--repeat": 1},
            (
                Axis("events", "--events", (2_000, 20_000)),
                Axis("customers", "--customers", (10, 1_000)),
            ),
        ),
        "fold": (
            {
                "--events": 5_000,
                "--customers": 50,
                "--partitions": 2,
                "--rates": "1000,5000",
                "--latency-seconds": 3,
            },
            (
                Axis("events", "--events", (2_000, 10_000), no_latency),
                Axis("customers", "--customers", (20, 200), no_latency),
                Axis("partitions", "--partitions", (1, 3), no_latency),
                Axis("rate", "--rates", ("500,2000",), latency_only),
            ),
        ),
        "close": (
            {"--events": 5_000, "--customers": 200, "--partitions": 2, "--workers": 2},
            (
                Axis("events", "--events", (2_000, 20_000)),
                Axis("customers", "--customers", (50, 1_000)),
                Axis("partitions", "--partitions", (1, 4)),
                Axis("workers", "--workers", (1, 3)),
            ),
        ),
        "api": (
            {"--rate": 1000, "--duration": 2, "--customers": 200, "--warmup": 0.5},
            (
                Axis("rate", "--rate", (500, 2000, 0)),
                Axis("customers", "--customers", (50, 1_000)),
            ),
        ),
    }


def plan(
    *, quick: bool, only: tuple[str, ...] = (), headline_only: bool = False
) -> list[Invocation]:
    """Every invocation, benchmark by benchmark, headline run first."""
    unknown = set(only) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
    table = _quick() if quick else _full()
    runs: list[Invocation] = []
    for name in NAMES:
        if not only or name in only:
            base, axes = table[name]
            runs += _bench(name, base, axes, headline_only)
    return runs
