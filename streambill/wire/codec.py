"""Avro single-object encoding of every topic value, with fastavro.

Wire form (Avro specification, "Single object encoding"):

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
          | Parsing Canonical Form | Avro binary body

The writer schema is found by its fingerprint among the `.avsc` files of `schemas/`
(current schemas, plus every version kept under `schemas/published/`, so data written
with an older compatible version is resolved into the current schema). No registry server.

Invariant: `decode` either returns a complete record of a known schema or raises
`DecodeError`; it never crashes on input and never returns a half-decoded record.
Records are plain dicts as fastavro gives them: times are timezone-aware UTC `datetime`s
(millisecond precision), money and quantities decimal strings (see `streambill.wire.convert`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streambill.config.settings import REPO_ROOT

DEFAULT_SCHEMA_DIR = REPO_ROOT / "schemas"
MAGIC = b"\xc3\x01"
HEADER_SIZE = 10  # magic (2) + fingerprint (8)

DecodeReason = Literal["undecodable", "unknown_schema"]


class DecodeError(Exception):
    """Bytes that are not a complete value of a known schema.

    `reason` is "undecodable" (not single-object encoded, truncated, garbage, trailing
    bytes) or "unknown_schema" (well-formed header, fingerprint of no known schema);
    both are reject reasons of `billing.events.RejectReason`.
    """

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DecodeReason = reason
        self.detail = detail


class EncodeError(ValueError):
    """A record that does not fit the schema it is encoded with (a programming error)."""


class SchemaError(Exception):
    """The `schemas/` directory is inconsistent (bad JSON, file named after another schema)."""


@dataclass(frozen=True, slots=True)
class _WriterSchema:
    """A writer schema known by fingerprint, and how to read it into the current one."""

    name: str
    writer: Any  # fastavro parsed schema
    reader: Any  # parsed current schema when it differs from `writer`, else None


def schema_fingerprint(schema: Any) -> bytes:
    """The 8 bytes of the CRC-64-AVRO fingerprint of `schema` (JSON data), little-endian."""
    canonical = to_parsing_canonical_form(schema)
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def full_name(schema: Any) -> str:
    """`namespace.name` of a record schema given as JSON data."""
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _read_schema(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: {exc}") from exc


class Codec:
    """Encodes records with the current schemas of `schema_dir`; decodes any known version.

    Build one per process in the composition root and pass it down; it holds the parsed
    schemas and is read-only afterwards (safe to share between threads).
    """

    def __init__(self, schema_dir: Path = DEFAULT_SCHEMA_DIR) -> None:
        self._raw: dict[str, Any] = {}
        self._parsed: dict[str, Any] = {}
        self._headers: dict[str, bytes] = {}
        self._by_fingerprint: dict[bytes, _WriterSchema] = {}
        for path in sorted(schema_dir.glob("*.avsc")):
            self._add_current(path)
        if not self._raw:
            raise SchemaError(f"no .avsc schema in {schema_dir}")
        for path in sorted(schema_dir.glob("published/*/*.avsc")):
            self._add_published(path)

    def _add_current(self, path: Path) -> None:
        raw = _read_schema(path)
        name = full_name(raw)
        if path.stem != name:
            raise SchemaError(f"{path}: holds schema {name}; the file must be named {name}.avsc")
        parsed = parse_schema(raw)
        fp = schema_fingerprint(raw)
        self._raw[name] = raw
        self._parsed[name] = parsed
        self._headers[name] = MAGIC + fp
        self._by_fingerprint[fp] = _WriterSchema(name, parsed, None)

    def _add_published(self, path: Path) -> None:
        raw = _read_schema(path)
        name = full_name(raw)
        if path.parent.name != name:
            raise SchemaError(f"{path}: holds schema {name}, not {path.parent.name}")
        fp = schema_fingerprint(raw)
        if fp in self._by_fingerprint:
            return  # identical to a current schema (or another published copy)
        reader = self._parsed.get(name)  # None: a retired schema, read as written
        self._by_fingerprint[fp] = _WriterSchema(name, parse_schema(raw), reader)

    @property
    def names(self) -> tuple[str, ...]:
        """Full names of the current schemas, sorted."""
        return tuple(sorted(self._raw))

    def schema(self, name: str) -> Any:
        """The current schema `name` as JSON data (do not mutate)."""
        return self._raw[name]

    def fingerprint(self, name: str) -> bytes:
        """The 8-byte fingerprint of the current schema `name`."""
        return self._headers[name][2:]

    def fingerprints(self) -> Iterable[tuple[bytes, str]]:
        """Every fingerprint the codec decodes, with its schema's full name."""
        return ((fp, ws.name) for fp, ws in self._by_fingerprint.items())

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        """Single-object encoding of `record` with the current schema `name`.

        Raises `EncodeError` for an unknown name or a record that does not fit.
        """
        try:
            header = self._headers[name]
        except KeyError:
            raise EncodeError(f"unknown schema {name!r}") from None
        out = BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, self._parsed[name], record)
        except Exception as exc:  # fastavro raises many types for a misfit record
            raise EncodeError(f"{name}: {type(exc).__name__}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes | bytearray | memoryview | None) -> tuple[str, dict[str, Any]]:
        """(full schema name, record) of a single-object encoded value.

        Raises `DecodeError` for anything else: no value, no `C3 01` header, an unknown
        fingerprint, a body that is truncated, malformed or followed by trailing bytes.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("undecodable", f"expected bytes, got {type(data).__name__}")
        size = len(data)
        if size < HEADER_SIZE or data[:2] != MAGIC:
            raise DecodeError("undecodable", f"not Avro single-object encoded ({size} bytes)")
        fp = bytes(data[2:HEADER_SIZE])
        known = self._by_fingerprint.get(fp)
        if known is None:
            raise DecodeError("unknown_schema", f"no schema with fingerprint {fp.hex()}")
        stream = BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(stream, known.writer, known.reader)
        except Exception as exc:  # truncated or garbage body: fastavro raises many types
            raise DecodeError("undecodable", f"{known.name}: {type(exc).__name__}: {exc}") from exc
        if stream.tell() != size:
            raise DecodeError(
                "undecodable", f"{known.name}: {size - stream.tell()} trailing bytes after the body"
            )
        if not isinstance(record, dict):
            raise DecodeError("undecodable", f"{known.name}: body is not a record")
        return known.name, record
