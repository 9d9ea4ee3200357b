"""Every hand-written fast path is registered here with its reference and the
property tests that hold it to that reference, and every Avro schema a fast path
is bound to matches its layout.

A new fast path (a module that writes Avro or JSON by hand, or binds itself to a
schema's canonical form) fails `test_every_hand_written_form_is_registered` until
it is listed with its property tests; a schema change that leaves a fast path
behind fails `test_each_avro_fast_path_is_bound_to_its_current_schema` (the fast
path would otherwise switch itself off silently and the property tests would only
compare the general path with itself).
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastavro.schema import to_parsing_canonical_form
from hypothesis import given, settings

from processors.worker.commit import json_key
from streambill.wire import convert
from streambill.wire.codec import Codec
from streambill.wire.state_wire import StateEncoder
from streambill.wire.usage_decoder import UsageDecoder
from tests.unit.billing.strategies import wire_texts
from tests.unit.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("billing", "processors", "projections", "streambill")
# The reference itself and the primitives every fast path shares.
NOT_FAST_PATHS = {"streambill.wire.codec", "streambill.wire.avro_binary"}
# What marks a module as writing a wire form by hand.
MARKERS = re.compile(
    r"to_parsing_canonical_form|streambill\.wire\.avro_binary|encode_basestring|json_string"
)
CODEC = Codec()


@dataclass(frozen=True)
class FastPath:
    module: str
    reference: str  # what its output must equal
    schema: str | None  # the Avro schema its `LAYOUT` is bound to (None: a JSON form)
    factory: str | None  # the class built from a Codec, with `.direct`
    tests: tuple[str, ...]  # "module::function" property tests against the reference


USAGE = "streambill.usage.v1.UsageRecorded"
STATE = "streambill.state.v1.CustomerStateChanged"
WIRE = "tests.unit.streambill.wire"
FOLD = "tests.unit.processors.fold"
FAST_PATHS = (
    FastPath(
        "streambill.wire.usage_wire",
        "Codec.encode(*convert.to_avro(UsageRecorded))",
        USAGE,
        "UsageEncoder",
        (
            f"{WIRE}.test_usage_wire::test_direct_bytes_equal_fastavro_bytes",
            f"{WIRE}.test_usage_wire::test_direct_bytes_are_the_codec_bytes_of_the_event",
        ),
    ),
    FastPath(
        "streambill.wire.usage_decoder",
        "convert.decode_value (Codec.decode, then convert.from_avro), and its errors",
        USAGE,
        "UsageDecoder",
        (
            f"{WIRE}.test_usage_decoder::test_equal_to_fastavro_on_arbitrary_records",
            f"{WIRE}.test_usage_decoder::test_corrupted_records_agree_or_fall_back",
            f"{WIRE}.test_usage_decoder::test_edge_values_decode_like_the_general_path",
            f"{WIRE}.test_usage_decoder::"
            "test_the_doors_decide_the_same_with_and_without_the_fast_decoder",
        ),
    ),
    FastPath(
        "streambill.wire.state_wire",
        "Codec.encode(*convert.to_avro(CustomerStateChanged)), and its errors",
        STATE,
        "StateEncoder",
        (
            f"{WIRE}.test_state_wire::test_direct_bytes_equal_fastavro_bytes",
            f"{WIRE}.test_state_wire::test_edge_values_encode_like_the_codec",
            f"{WIRE}.test_state_wire::test_consecutive_snapshots_of_a_customer_encode_like_the_codec",
        ),
    ),
    FastPath(
        "processors.fold.record_json",
        "the JSON encoder on CustomerRecord.to_dict()",
        None,
        None,
        (
            f"{FOLD}.test_record_json::test_every_state_of_a_folded_history_is_written_exactly",
            f"{FOLD}.test_record_json::test_records_of_folded_batches_are_written_exactly",
            f"{FOLD}.test_record_json::test_hand_built_records_are_written_exactly",
        ),
    ),
    FastPath(
        "processors.fold.records",
        "the JSON encoder on SeenEntry.to_row()",
        None,
        None,
        (f"{FOLD}.test_fold_batch::test_seen_entry_json_is_exactly_the_encoders",),
    ),
    FastPath(
        "processors.worker.commit",
        "the JSON encoder on a table key (json_key)",
        None,
        None,
        ("tests.unit.test_fast_paths::test_table_keys_are_the_encoders",),
    ),
    FastPath(
        "billing.admission",
        "fingerprint's general branch (every field in schema order)",
        None,
        None,
        (
            "tests.unit.billing.test_admission_properties::"
            "test_the_usage_fingerprint_is_the_general_form_written_out",
        ),
    ),
)
REGISTERED = {f.module for f in FAST_PATHS}


def _modules() -> dict[str, str]:
    """Every project module's dotted name and source."""
    out = {}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path.read_text(encoding="utf-8")
    return out


def test_every_hand_written_form_is_registered() -> None:
    marked = {name for name, text in _modules().items() if MARKERS.search(text)}
    missing = sorted(marked - NOT_FAST_PATHS - REGISTERED)
    assert not missing, f"fast paths without a registered reference and property test: {missing}"
    gone = sorted(REGISTERED - set(_modules()))
    assert not gone, f"registered fast paths that no longer exist: {gone}"


def test_every_schema_a_fast_path_names_is_registered_with_it() -> None:
    """A fast-path module that names a current schema is registered for that schema."""
    modules = _modules()
    for schema in CODEC.names:
        naming = {
            name
            for name, text in modules.items()
            if name in REGISTERED and MARKERS.search(text) and f'"{schema}"' in text
        }
        bound = {f.module for f in FAST_PATHS if f.schema == schema}
        assert naming <= bound, f"{schema}: {sorted(naming - bound)} not registered for it"


@pytest.mark.parametrize("path", [f for f in FAST_PATHS if f.schema], ids=lambda f: f.module)
def test_each_avro_fast_path_is_bound_to_its_current_schema(path: FastPath) -> None:
    assert path.schema in CODEC.names
    module = importlib.import_module(path.module)
    assert to_parsing_canonical_form(CODEC.schema(path.schema)) == module.LAYOUT, (
        f"{path.schema} changed: update {path.module} (and its LAYOUT) with it"
    )
    assert path.factory is not None
    assert getattr(module, path.factory)(CODEC).direct


@pytest.mark.parametrize("path", FAST_PATHS, ids=lambda f: f.module)
def test_each_fast_path_has_property_tests_against_its_reference(path: FastPath) -> None:
    assert path.tests
    for ref in path.tests:
        module, _, name = ref.partition("::")
        test = getattr(importlib.import_module(module), name, None)
        assert test is not None, f"{ref} does not exist"
        assert getattr(test, "is_hypothesis_test", False), f"{ref} is not a property test"


def test_the_sample_of_every_bound_schema_takes_the_fast_path_exactly() -> None:
    state = SAMPLES[STATE]
    assert StateEncoder(CODEC).encode(state) == CODEC.encode(*convert.to_avro(state))  # type: ignore[arg-type]
    data = CODEC.encode(*convert.to_avro(SAMPLES[USAGE]))
    assert UsageDecoder(CODEC).decode(data) == convert.decode_value(CODEC, data)


@settings(max_examples=100, deadline=None)
@given(wire_texts(40))
def test_table_keys_are_the_encoders(key: str) -> None:
    assert json_key(key) == json.dumps(key, ensure_ascii=False).encode()
