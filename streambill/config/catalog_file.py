"""Reading a catalog file at the edge: YAML -> plain data -> `billing.catalog`.

The core validates; this module only parses YAML and reports unreadable files as
`CatalogError` too, so callers handle one error type.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from billing.catalog import Catalog, parse_catalog
from billing.errors import CatalogError


def load_catalog(path: str | Path) -> Catalog:
    """The validated catalog in the YAML file `path`; `CatalogError` otherwise."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError([f"cannot read {p}: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise CatalogError([f"{p} is not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise CatalogError([f"{p}: a catalog must be a YAML mapping"])
    return parse_catalog(data)
