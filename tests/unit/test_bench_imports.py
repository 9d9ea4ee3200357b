"""Every benchmark script imports: a moved or renamed function fails here, in the
unit suite, instead of in the next `bench/run` (each script's work is behind
`if __name__ == "__main__"`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")


def test_the_bench_folder_was_found() -> None:
    assert {"fold", "close", "close_cpu", "rating", "produce", "api"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_script_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__file__ is not None and Path(module.__file__).parent == BENCH
