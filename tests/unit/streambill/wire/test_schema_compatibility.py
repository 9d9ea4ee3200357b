"""Every current schema stays fully compatible with each version already published.

- backward: the current schema, as reader, reads data written with a published version
  (new consumers read old data still on the topics);
- forward: a published version, as reader, reads data written with the current schema
  (consumers deployed before a producer upgrade keep working).
An incompatible change therefore fails here; it needs a new namespace (v2) instead.
Checked with the `avro` package's ReaderWriterCompatibilityChecker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import Schema, parse

SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"
CURRENT = sorted(SCHEMAS.glob("*.avsc"))
PUBLISHED = sorted(SCHEMAS.glob("published/*/*.avsc"))


def _compatible(reader: Schema, writer: Schema) -> bool:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


def test_every_current_schema_is_published() -> None:
    published_names = {p.parent.name for p in PUBLISHED}
    assert {p.stem for p in CURRENT} <= published_names


@pytest.mark.parametrize("published", PUBLISHED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_current_schema_is_compatible_with_published_version(published: Path) -> None:
    current_path = SCHEMAS / f"{published.parent.name}.avsc"
    if not current_path.exists():
        pytest.fail(f"{published.parent.name} was published but its schema was removed")
    current = parse(current_path.read_text())
    old = parse(published.read_text())
    assert _compatible(reader=current, writer=old), "backward: new reader, old data"
    assert _compatible(reader=old, writer=current), "forward: old reader, new data"


def _usage_v1() -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (SCHEMAS / "published" / "streambill.usage.v1.UsageRecorded" / "v1.avsc").read_text()
    )
    return data


def _fields(schema: dict[str, object]) -> list[dict[str, object]]:
    fields = schema["fields"]
    assert isinstance(fields, list)
    return fields


def test_checker_catches_a_new_required_field() -> None:
    changed = _usage_v1()
    _fields(changed).append({"name": "region", "type": "string"})
    assert not _compatible(reader=parse(json.dumps(changed)), writer=parse(json.dumps(_usage_v1())))


def test_checker_catches_a_changed_type() -> None:
    changed = _usage_v1()
    for field in _fields(changed):
        if field["name"] == "quantity":
            field["type"] = "double"
    assert not _compatible(reader=parse(json.dumps(changed)), writer=parse(json.dumps(_usage_v1())))


def test_checker_catches_a_removed_field_without_default_both_ways() -> None:
    changed = _usage_v1()
    changed["fields"] = [f for f in _fields(changed) if f["name"] != "feature_id"]
    # New reader fine (ignores the field), old reader cannot fill feature_id: not forward.
    assert _compatible(reader=parse(json.dumps(changed)), writer=parse(json.dumps(_usage_v1())))
    assert not _compatible(reader=parse(json.dumps(_usage_v1())), writer=parse(json.dumps(changed)))


def test_checker_accepts_an_optional_field_with_default() -> None:
    changed = _usage_v1()
    _fields(changed).append({"name": "region", "type": ["null", "string"], "default": None})
    new, old = parse(json.dumps(changed)), parse(json.dumps(_usage_v1()))
    assert _compatible(reader=new, writer=old)
    assert _compatible(reader=old, writer=new)
