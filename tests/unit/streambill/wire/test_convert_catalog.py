"""Catalog-topic records through the codec: every record of every example catalog
comes back exactly, and a bad field is named with its path."""

from __future__ import annotations

import pytest

from billing.catalog_records import catalog_records
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import REPO_ROOT
from streambill.wire.codec import Codec
from streambill.wire.convert import (
    CATALOG_SCHEMAS,
    InvalidField,
    decode_value,
    encode_value,
    from_avro,
    to_avro,
)
from tests.unit.test_readme_catalogs import snippets


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


def test_every_example_record_survives_the_wire_to_the_digit(codec: Codec) -> None:
    catalogs = [load_catalog(REPO_ROOT / "examples" / "catalog.yaml"), *snippets()]
    records = [r for c in catalogs for r in catalog_records(c)]
    assert len(records) > 20
    names = set()
    for record in records:
        name, _ = to_avro(record)
        names.add(name)
        back = decode_value(codec, encode_value(codec, record))
        assert repr(back) == repr(record)
    assert names == CATALOG_SCHEMAS - {"streambill.catalog.v1.PlanRetired"}


def _scale_record() -> dict[str, object]:
    catalog = load_catalog(REPO_ROOT / "examples" / "catalog.yaml")
    record = next(r for r in catalog_records(catalog) if r.key == "plan/scale/1")
    return to_avro(record)[1]


def test_a_bad_tier_price_is_named_with_its_path() -> None:
    raw = _scale_record()
    raw["prices"][0]["tiers"][1]["unit_price"] = "1e3"  # type: ignore[index]
    with pytest.raises(InvalidField) as info:
        from_avro("streambill.catalog.v1.PlanVersionPublished", raw)
    assert info.value.field == "prices[0].tiers[1].unit_price"


def test_an_unknown_model_is_an_invalid_field() -> None:
    raw = _scale_record()
    raw["model"] = "prepaid"
    with pytest.raises(InvalidField) as info:
        from_avro("streambill.catalog.v1.PlanVersionPublished", raw)
    assert info.value.field == "model"
