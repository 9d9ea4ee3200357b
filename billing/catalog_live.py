"""The live catalog (the latest record of each key on the catalog topic), its
revision, and the diff of a catalog file against it.

Rules (issue 17):
- a published plan version is immutable: the same `(plan id, version)` with other
  content is refused, with every differing field (path, live value, new value);
  features and credit packs are immutable the same way (a pack's credits and price
  are read again by every replay of a purchase);
- content is compared by value: `0.020` and `0.02` are the same price;
- what is live but not in the file is not deleted: it "stays live" (subscribers
  keep their version); only `PlanRetired` retires a plan, and retiring stops new
  subscriptions only;
- the **catalog revision** is the SHA-256 of the live content (every key with its
  canonical content, decimals without trailing zeros), so it does not depend on
  offsets, compaction or the order of publication: equal catalogs have equal
  revisions on every cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from billing.admission import canonical_decimal
from billing.catalog import Catalog
from billing.catalog_records import (
    CatalogRecord,
    CreditPackPublished,
    FeaturePublished,
    PlanRetired,
    PlanVersionPublished,
    catalog_records,
    record_tree,
    records_catalog,
)


@dataclass(frozen=True, slots=True)
class LiveCatalog:
    """The latest record of each key; what `catalog list` shows."""

    records: Mapping[str, CatalogRecord]

    @property
    def revision(self) -> str:
        return revision(self.records.values())

    def plan_versions(self) -> dict[str, tuple[int, ...]]:
        """Plan id -> its live versions, ascending."""
        out: dict[str, list[int]] = {}
        for r in self.records.values():
            if isinstance(r, PlanVersionPublished):
                out.setdefault(r.plan_id, []).append(r.version)
        return {p: tuple(sorted(v)) for p, v in sorted(out.items())}

    def plan(self, plan_id: str, version: int) -> PlanVersionPublished | None:
        r = self.records.get(f"plan/{plan_id}/{version}")
        return r if isinstance(r, PlanVersionPublished) else None

    def retired(self) -> dict[str, datetime]:
        """Retired plan id -> when it was retired."""
        return {
            r.plan_id: r.retired_at for r in self.records.values() if isinstance(r, PlanRetired)
        }

    def features(self) -> list[FeaturePublished]:
        found = [r for r in self.records.values() if isinstance(r, FeaturePublished)]
        return sorted(found, key=lambda r: r.feature_id)

    def packs(self) -> list[CreditPackPublished]:
        found = [r for r in self.records.values() if isinstance(r, CreditPackPublished)]
        return sorted(found, key=lambda r: r.pack_id)

    def catalog(self) -> Catalog:
        """Every feature and pack, each plan at its highest live version (retired
        plans included: their subscribers are still billed). `CatalogError` if the
        live records do not make a valid catalog."""
        return records_catalog(self.records.values())


def live_catalog(entries: Iterable[tuple[str, CatalogRecord | None]]) -> LiveCatalog:
    """Fold (key, record) pairs in log order the way compaction does: the latest
    record of a key wins; None (a tombstone) removes the key."""
    records: dict[str, CatalogRecord] = {}
    for key, record in entries:
        if record is None:
            records.pop(key, None)
        else:
            records[key] = record
    return LiveCatalog(MappingProxyType(records))


def with_records(live: LiveCatalog, added: Iterable[CatalogRecord]) -> LiveCatalog:
    """`live` after `added` were published."""
    return live_catalog([*live.records.items(), *((r.key, r) for r in added)])


# ------------------------------------------------------------------ canonical form


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return canonical_decimal(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def canonical_content(record: CatalogRecord) -> Any:
    """JSON-ready content of a record, equal for records that price alike."""
    return _canonical(record_tree(record))


def revision(records: Iterable[CatalogRecord]) -> str:
    """SHA-256 (hex) of the canonical content of `records`, keyed and sorted."""
    content = sorted([r.key, canonical_content(r)] for r in records)
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def catalog_revision(catalog: Catalog) -> str:
    """The revision of what `catalog` prices with (features, credit packs, every plan
    version; no retirements): what PeriodClosed records. Equal to `catalog list`'s
    revision when no plan was retired."""
    return revision(catalog_records(catalog))


# ------------------------------------------------------------------------- diff


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs: its path in catalog-file terms
    (`prices.tokens.unit_price`, `prices.tokens.tiers[1].up_to`), and the live and
    new values as text (None: the field is absent on that side)."""

    path: str
    live: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record whose publication is refused: its key is live with other content, or
    (a new plan version) it is below a live version or changes the model."""

    key: str
    differences: tuple[Difference, ...]
    why: str = "live with other content (publish a new version)"


@dataclass(frozen=True, slots=True)
class CatalogDiff:
    added: tuple[CatalogRecord, ...]  # to publish, in publication order
    unchanged: tuple[str, ...]  # keys live with the same content
    refused: tuple[Refusal, ...]
    staying: tuple[str, ...]  # live keys the file does not have: they stay live

    @property
    def ok(self) -> bool:
        return not self.refused


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{path}[{i}]", out)
    else:
        out[path] = value


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def differences(live: CatalogRecord, new: CatalogRecord) -> tuple[Difference, ...]:
    """Every field whose value differs between two records of one key, by path."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(record_tree(live), "", a)
    _flatten(record_tree(new), "", b)
    out = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            out.append(Difference(path, _show(a[path]), None))
        elif path not in a:
            out.append(Difference(path, None, _show(b[path])))
        elif _canonical(a[path]) != _canonical(b[path]):
            out.append(Difference(path, _show(a[path]), _show(b[path])))
    return tuple(out)


def _new_version_problem(live: LiveCatalog, record: CatalogRecord) -> Difference | None:
    """Why a plan version not yet live may not be published: it must be above every
    live version of its plan (an unpinned subscription is on the lowest version, so a
    lower one would move it) and keep the plan's model (credits and wallets carry
    over between versions)."""
    if not isinstance(record, PlanVersionPublished):
        return None
    others = [
        r for r in live.records.values()
        if isinstance(r, PlanVersionPublished) and r.plan_id == record.plan_id
    ]  # fmt: skip
    if not others:
        return None
    top = max(others, key=lambda r: r.version)
    if record.version < top.version:
        return Difference("version", f"{top.version} (live)", f"{record.version}: lower")
    if record.model != top.model:
        return Difference("model", top.model, record.model)
    return None


def diff(live: LiveCatalog, new: Catalog) -> CatalogDiff:
    """What publishing `new` over `live` would do: the records to add, the keys
    already live unchanged, the refusals (a key live with other content, or a new
    plan version below a live one or with another model), and the
    live keys `new` does not have (they stay live). Pure; publishes nothing."""
    added: list[CatalogRecord] = []
    unchanged: list[str] = []
    refused: list[Refusal] = []
    keys = set()
    for record in catalog_records(new):
        keys.add(record.key)
        current = live.records.get(record.key)
        if current is None:
            problem = _new_version_problem(live, record)
            if problem is not None:
                why = "a new version must be above the live ones and keep the plan's model"
                refused.append(Refusal(record.key, (problem,), why))
            else:
                added.append(record)
            continue
        found = differences(current, record)
        if found:
            refused.append(Refusal(record.key, found))
        else:
            unchanged.append(record.key)
    staying = sorted(
        key for key, r in live.records.items() if key not in keys and not isinstance(r, PlanRetired)
    )
    return CatalogDiff(tuple(added), tuple(unchanged), tuple(refused), tuple(staying))
