"""billing/ imports only the standard library and itself (ground rule 6)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

BILLING = Path(__file__).resolve().parents[3] / "billing"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside billing by construction
                continue
            found.append(node.module or "")
    return found


def test_billing_imports_only_stdlib_and_itself() -> None:
    modules = sorted(BILLING.rglob("*.py"))
    assert len(modules) > 10  # the walk really found the package
    offenders = []
    for path in modules:
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "billing" or top == "__future__" or top in sys.stdlib_module_names:
                continue
            offenders.append(f"{path.relative_to(BILLING.parent)} imports {name}")
    assert offenders == []


def test_the_check_catches_a_third_party_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import yaml\nfrom pydantic import BaseModel\nfrom billing import money\n")
    tops = {n.split(".")[0] for n in _imports(bad)}
    assert tops - set(sys.stdlib_module_names) - {"billing"} == {"yaml", "pydantic"}
