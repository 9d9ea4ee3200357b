"""The README's catalog snippets are executed: each ```yaml block parses with
`billing.catalog.parse_catalog`, together they show every pricing strategy and
consumption model, and a plan whose id is in examples/catalog.yaml equals it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from billing.catalog import Catalog, parse_catalog
from billing.catalog_parse import STRATEGIES
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import REPO_ROOT, Settings

README = REPO_ROOT / "README.md"


def snippets() -> list[Catalog]:
    text = Path(README).read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [parse_catalog(yaml.safe_load(block)) for block in blocks]


def test_every_snippet_parses_and_covers_every_strategy_and_model() -> None:
    catalogs = snippets()
    assert len(catalogs) >= 7
    plans = [plan for c in catalogs for plan in c.plans.values()]
    assert {plan.model for plan in plans} == {"metered", "credits", "balance"}
    strategies = {price.strategy for plan in plans for price in plan.prices.values()}
    assert strategies == set(STRATEGIES)


def test_snippets_named_like_example_plans_are_the_example_plans() -> None:
    examples = load_catalog(Settings().catalog_path)
    shared = 0
    for catalog in snippets():
        for plan_id, plan in catalog.plans.items():
            if plan_id in examples.plans:
                assert plan == examples.plans[plan_id], plan_id
                shared += 1
    assert shared >= 5
