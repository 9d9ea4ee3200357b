from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from billing.catalog import Catalog
from streambill.config.catalog_file import load_catalog

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "catalog.yaml"


def t(*args: int) -> datetime:
    """A UTC datetime: t(2026, 1, 15, 10) -> 2026-01-15T10:00Z."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE)
