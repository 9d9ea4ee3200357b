"""Every import points down (docs/ARCHITECTURE.md, Layers): a module may import its
own package, a package of a lower layer, or anything outside the project; never a
peer of its own layer, never a layer above. billing/test_purity.py adds that billing/
imports the standard library only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Bottom to top; the packages of one layer are peers and do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("billing",),
    ("streambill.config",),
    ("streambill.wire",),
    ("streambill.sdk", "processors.fold"),
    ("streambill",),  # the package's `__init__` re-exports the SDK
    ("processors.worker", "processors.close", "processors.simulate", "projections.read"),
    ("processors.reconcile",),
    ("projections.http",),
    ("projections",),  # commands and wiring: compose the projector and the API
    ("streambill.local",),
    ("streambill.cli",),
)
PROJECT = {"billing", "processors", "projections", "streambill"}


def project_modules() -> list[tuple[Path, str]]:
    """(file, dotted module name) of every Python file of the project's packages."""
    found = []
    for top in sorted(PROJECT):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return found


def imported(path: Path) -> list[str]:
    """The modules a file imports absolutely (`import a.b`, `from a.b import c`: a.b)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def home(module: str) -> tuple[int, str] | None:
    """(layer, package) of the longest package in LAYERS that holds `module`, or None."""
    best: tuple[int, str] | None = None
    for rank, packages in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > len(best[1])
            ):
                best = (rank, package)
    return best


def upward_imports(path: Path, module: str) -> list[str]:
    mine = home(module) or (-1, module)  # in no layer (`processors/__init__`): imports none
    found = []
    for name in imported(path):
        theirs = home(name) if name.split(".")[0] in PROJECT else None
        if theirs and theirs[1] != mine[1] and theirs[0] >= mine[0]:
            found.append(f"{module} imports {name} ({mine[1]} -> {theirs[1]})")
    return found


def test_every_import_points_down() -> None:
    modules = project_modules()
    assert len(modules) > 100  # the walk really found the packages
    assert [o for path, module in modules for o in upward_imports(path, module)] == []


def test_the_check_catches_an_upward_and_a_sideways_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from processors.close.plan import Month\nimport processors.worker.cli\n"
        "from billing import money\nimport yaml\n"
    )
    assert upward_imports(bad, "processors.worker.pipeline") == [
        "processors.worker.pipeline imports processors.close.plan"
        " (processors.worker -> processors.close)",
    ]
    assert len(upward_imports(bad, "streambill.wire.codec")) == 2
    assert upward_imports(bad, "streambill.cli.main") == []


FRAMEWORKS = {"faust", "mode", "aiokafka"}
RUNTIME = "processors.worker.runtime"


def framework_imports(path: Path, module: str) -> list[str]:
    """Imports of Faust, mode or aiokafka by `module`, unless it is in the worker's
    runtime package (docs/decisions/0001-faust-runtime.md)."""
    if module == RUNTIME or module.startswith(RUNTIME + "."):
        return []
    return [f"{module} imports {n}" for n in imported(path) if n.split(".")[0] in FRAMEWORKS]


def test_only_the_worker_runtime_imports_faust_mode_or_aiokafka() -> None:
    assert [o for path, module in project_modules() for o in framework_imports(path, module)] == []


def test_the_framework_check_catches_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import faust\nfrom aiokafka import TopicPartition\nfrom mode import Service\n")
    assert len(framework_imports(bad, "processors.worker.pipeline")) == 3
    assert framework_imports(bad, "processors.worker.runtime.app") == []
