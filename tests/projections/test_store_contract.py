"""One contract for every `ReadModelStore` adapter (in-memory and Redis)."""

from __future__ import annotations

import json

from projections.model import Source, Write, to_write
from projections.store import InMemoryStore, Keys, ReadModelStore
from streambill.settings import BILLING_ALERTS, CUSTOMER_STATE, INVOICES
from tests.projections import samples


def at(topic: str, offset: int, partition: int = 0) -> Source:
    return Source(topic, partition, offset)


def state_write(customer: str, offset: int, **kw: object) -> Write:
    return to_write(samples.metered_state(customer, **kw), at(CUSTOMER_STATE, offset))  # type: ignore[arg-type]


def test_generation_is_absent_until_ensured_then_stable(store: ReadModelStore) -> None:
    assert store.generation() is None
    gen = store.ensure_generation()
    assert store.ensure_generation() == gen == store.generation()


def test_snapshot_replaces_state_wholesale(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    assert store.apply(gen, [state_write("c1", 5, used="600")]) == [True]
    first = store.state("c1")
    assert first["usage:tokens"] == "600"
    assert first["remaining:tokens"] == "400"
    assert first["offset"] == "customer-state/0/5"
    credits = to_write(samples.credits_state("c1"), at(CUSTOMER_STATE, 6))
    assert store.apply(gen, [credits]) == [True]
    second = store.state("c1")
    assert "remaining:tokens" not in second  # the old snapshot's fields are gone
    assert second["credits_remaining"] == "640"
    assert store.state_fields("c1", ["allowed", "nope"]) == ["1", None]


def test_writes_at_or_below_stored_offset_change_nothing(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    store.apply(gen, [state_write("c1", 7, used="700")])
    before = store.dump()
    assert store.apply(gen, [state_write("c1", 7, used="1"), state_write("c1", 3, used="2")]) == [
        False,
        False,
    ]
    assert store.dump() == before
    # Another partition of the same topic has its own offset.
    other = to_write(samples.metered_state("c1", used="9"), at(CUSTOMER_STATE, 1, partition=1))
    assert store.apply(gen, [other]) == [True]
    assert store.state("c1")["usage:tokens"] == "9"


def test_alerts_raise_and_resolve(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    writes = [
        to_write(samples.alert("c1", "a1"), at(BILLING_ALERTS, 0)),
        to_write(samples.alert("c1", "a2", percent=100), at(BILLING_ALERTS, 1)),
        to_write(samples.resolved("c1", "a1"), at(BILLING_ALERTS, 2)),
    ]
    assert store.apply(gen, writes) == [True, True, True]
    alerts = store.alerts("c1")
    assert list(alerts) == ["a2"]
    assert json.loads(alerts["a2"])["threshold_percent"] == 100
    store.apply(gen, [to_write(samples.resolved("c1", "a2"), at(BILLING_ALERTS, 3))])
    assert store.alerts("c1") == {}
    # A redelivered raise (offset already applied) does not resurrect the alert.
    assert store.apply(gen, [writes[1]]) == [False]
    assert store.alerts("c1") == {}


def test_invoices_keep_their_lines(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    store.apply(gen, [to_write(samples.invoice("c1", "inv-1"), at(INVOICES, 0))])
    store.apply(gen, [to_write(samples.invoice("c1", "inv-2", total="20.01"), at(INVOICES, 1))])
    invoices = store.invoices("c1")
    assert sorted(invoices) == ["inv-1", "inv-2"]
    data = json.loads(invoices["inv-2"])
    assert data["total"] == "20.01"
    assert [line["amount"] for line in data["lines"]] == ["10.00", "10.01"]


def test_positions_move_forward_within_a_generation(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    store.advance(gen, CUSTOMER_STATE, 0, 10)
    store.advance(gen, CUSTOMER_STATE, 0, 4)
    store.advance(gen, CUSTOMER_STATE, 2, 3)
    assert store.positions(gen, CUSTOMER_STATE, [0, 1, 2]) == {0: 10, 2: 3}
    assert store.positions("other-gen", CUSTOMER_STATE, [0, 1, 2]) == {}


def test_clear_empties_everything_and_starts_a_new_generation(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    store.apply(gen, [state_write("c1", 1)])
    store.advance(gen, CUSTOMER_STATE, 0, 2)
    new = store.clear()
    assert new != gen and store.generation() == new
    assert store.dump() == {}
    assert store.positions(new, CUSTOMER_STATE, [0]) == {}


def test_data_of_a_stale_generation_is_wiped_on_first_touch(store: ReadModelStore) -> None:
    # Writes that landed under an old generation (e.g. after a FLUSHALL, before the
    # projector noticed) must not block the replay of older offsets.
    store.apply("old", [to_write(samples.alert("c1", "late"), at(BILLING_ALERTS, 50))])
    store.apply("old", [state_write("c1", 40)])
    new = store.ensure_generation()
    assert store.apply(new, [to_write(samples.alert("c1", "early"), at(BILLING_ALERTS, 3))]) == [
        True
    ]
    assert list(store.alerts("c1")) == ["early"]
    assert store.state("c1") == {}


def test_dump_is_the_same_on_every_adapter(store: ReadModelStore, key_prefix: str) -> None:
    reference = InMemoryStore(Keys(prefix=key_prefix))
    writes = [
        state_write("c1", 1),
        state_write("c2", 2, used="5"),
        to_write(samples.alert("c1", "a1"), at(BILLING_ALERTS, 0)),
        to_write(samples.invoice("c2", "inv-9"), at(INVOICES, 0)),
    ]
    for target in (store, reference):
        gen = target.ensure_generation()
        target.apply(gen, writes)
        target.advance(gen, CUSTOMER_STATE, 0, 3)
    dump = store.dump()
    assert dump == reference.dump()
    assert f"{key_prefix}:{{c1}}:state" in dump
    assert dump[f"{key_prefix}:{{c1}}:offsets"] == {
        "customer-state/0": "1",
        "billing-alerts/0": "0",
    }
    assert dump[f"{key_prefix}:{{@customer-state/0}}:position"] == {"next": "3"}
