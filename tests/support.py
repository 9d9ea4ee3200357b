"""Helpers shared by tests (imported, unlike conftest.py, which pytest loads itself)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when CI=true: in CI a missing service must fail the run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: integration services are required)", pytrace=False)
    pytest.skip(reason)
