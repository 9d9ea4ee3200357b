"""Fixtures of the fold-worker tests: their own topic prefix (see fold_support.isolated)."""

from __future__ import annotations

import os
import uuid

import pytest

from streambill.codec import Codec
from streambill.settings import Settings


@pytest.fixture(scope="module")
def base() -> Settings:
    return Settings(
        bootstrap_servers=os.environ.get("STREAMBILL_BOOTSTRAP_SERVERS", "127.0.0.1:29092"),
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}.",
        partitions=3,
    )


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()
