"""One contract for every `ReadModelStore` adapter (in-memory and Redis)."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal

from projections.read.model import Source, Write, to_write
from projections.read.series import ALERT_HISTORY_LIMIT, TREND_LIMIT
from projections.read.store import InMemoryStore, Keys, ReadModelStore
from streambill.config.settings import BILLING_ALERTS, CUSTOMER_STATE, INVOICES
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


def two_raised_one_resolved() -> list[Write]:
    """c1's alerts a1 (80 %) and a2 (100 %) raised, then a1 resolved: offsets 0 to 2."""
    return [
        to_write(samples.alert("c1", "a1"), at(BILLING_ALERTS, 0)),
        to_write(samples.alert("c1", "a2", percent=100), at(BILLING_ALERTS, 1)),
        to_write(samples.resolved("c1", "a1"), at(BILLING_ALERTS, 2)),
    ]


def test_alerts_raise_and_resolve(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    writes = two_raised_one_resolved()
    assert store.apply(gen, writes) == [True, True, True]
    alerts = store.alerts("c1")
    assert list(alerts) == ["a2"]
    assert json.loads(alerts["a2"])["threshold_percent"] == 100
    store.apply(gen, [to_write(samples.resolved("c1", "a2"), at(BILLING_ALERTS, 3))])
    assert store.alerts("c1") == {}
    # A redelivered raise (offset already applied) does not resurrect the alert.
    assert store.apply(gen, [writes[1]]) == [False]
    assert store.alerts("c1") == {}


def test_alert_history_keeps_raised_and_resolved_newest_first(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    writes = two_raised_one_resolved()
    store.apply(gen, writes)
    history = [json.loads(e) for e in store.alert_history("c1")]
    assert [(e["event"], e["alert_id"], e["raised_alert_id"]) for e in history] == [
        ("resolved", "res-a1", "a1"),
        ("raised", "a2", "a2"),
        ("raised", "a1", "a1"),
    ]
    assert history[1]["threshold_percent"] == 100 and history[1]["reference"] == "1000"
    assert history[0]["reference"] is None and history[0]["timestamp"] == samples.T1.isoformat()
    assert list(store.alerts("c1")) == ["a2"]  # the active alerts are unchanged
    # Redelivery (offsets already applied) adds nothing to the history.
    before = store.dump()
    assert store.apply(gen, writes) == [False, False, False]
    assert store.dump() == before


def test_alert_history_is_capped_keeping_the_newest(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    count = ALERT_HISTORY_LIMIT + 5
    store.apply(
        gen,
        [to_write(samples.alert("c1", f"a{n}"), at(BILLING_ALERTS, n)) for n in range(count)],
    )
    ids = [json.loads(e)["alert_id"] for e in store.alert_history("c1")]
    assert ids == [f"a{n}" for n in reversed(range(5, count))]
    assert len(store.alerts("c1")) == count  # the cap is on the history only


def credits_at(customer: str, offset: int, remaining: str, topup: str | None = "1000") -> Write:
    when = samples.T0 + timedelta(hours=offset)
    snap = samples.credits_state(
        customer, version=offset, remaining=remaining, topup=topup, at=when
    )
    return to_write(snap, at(CUSTOMER_STATE, offset))


def balance_at(customer: str, offset: int, balance: str, topup: str | None = "20.00") -> Write:
    when = samples.T0 + timedelta(hours=offset)
    snap = samples.balance_state(customer, version=offset, balance=balance, topup=topup, at=when)
    return to_write(snap, at(CUSTOMER_STATE, offset))


def trend(store: ReadModelStore, customer: str) -> list[str]:
    return [json.loads(point)["value"] for point in store.trend(customer)]


def test_trend_follows_the_value_and_restarts_at_a_top_up(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    store.apply(gen, [credits_at("c1", 1, "1000"), credits_at("c1", 2, "900")])
    store.apply(gen, [credits_at("c1", 3, "900"), credits_at("c1", 4, "850")])
    points = [json.loads(p) for p in store.trend("c1")]
    assert points == [  # an unchanged value (offset 3) adds no point
        {"at": (samples.T0 + timedelta(hours=h)).isoformat(), "value": v}
        for h, v in [(1, "1000"), (2, "900"), (4, "850")]
    ]
    # A redelivered snapshot changes nothing.
    assert store.apply(gen, [credits_at("c1", 4, "850"), credits_at("c1", 2, "1")]) == [
        False,
        False,
    ]
    assert trend(store, "c1") == ["1000", "900", "850"]
    # A top-up of the same size: the value rises, a new series starts.
    store.apply(gen, [credits_at("c1", 5, "1850"), credits_at("c1", 6, "1700")])
    assert trend(store, "c1") == ["1850", "1700"]
    # A top-up of another size starts one even if the value did not rise.
    store.apply(gen, [credits_at("c1", 7, "1600", topup="500")])
    assert trend(store, "c1") == ["1600"]
    # A balance plan (another model) starts its own series; metered deletes it.
    store.apply(gen, [balance_at("c1", 8, "3.00"), balance_at("c1", 9, "-1.25")])
    assert trend(store, "c1") == ["3.00", "-1.25"]
    store.apply(gen, [state_write("c1", 10)])
    assert store.trend("c1") == []
    assert not [key for key in store.dump() if key.endswith(":{c1}:trend")]


def test_trend_compares_decimals_exactly(store: ReadModelStore) -> None:
    gen = store.ensure_generation()
    # Beyond a double's precision: 10.000000000000000002 > ...001 (a rise restarts).
    store.apply(gen, [balance_at("c1", 1, "10.000000000000000001")])
    store.apply(gen, [balance_at("c1", 2, "10.000000000000000002")])
    assert trend(store, "c1") == ["10.000000000000000002"]
    store.apply(gen, [balance_at("c1", 3, "10.000000000000000001")])
    store.apply(gen, [balance_at("c1", 4, "10.0000000000000000010")])  # equal: no point
    store.apply(gen, [balance_at("c1", 5, "9.99")])
    assert trend(store, "c1") == ["10.000000000000000002", "10.000000000000000001", "9.99"]
    # Signs and the exponent form str(Decimal) uses for tiny amounts.
    store.apply(gen, [balance_at("c1", 6, "-0.5"), balance_at("c1", 7, "-0.75")])
    assert trend(store, "c1")[-3:] == ["9.99", "-0.5", "-0.75"]
    store.apply(gen, [balance_at("c1", 8, "-0.25")])  # rose: restart
    assert trend(store, "c1") == ["-0.25"]
    store.apply(gen, [balance_at("c1", 9, "0.0000005"), balance_at("c1", 10, "-0.0")])
    assert store.state("c1")["balance"] == "-0.0"  # the state keeps str(Decimal)
    store.apply(gen, [balance_at("c1", 11, "0"), balance_at("c1", 12, "-0.00000001")])
    assert trend(store, "c1") == ["0.0000005", "0.0", "-0.00000001"]


def test_trend_is_thinned_at_the_cap_keeping_the_top_up_and_the_newest(
    store: ReadModelStore,
) -> None:
    gen = store.ensure_generation()
    values = [str(1000 - n) for n in range(TREND_LIMIT + 11)]
    store.apply(gen, [credits_at("c1", n + 1, v) for n, v in enumerate(values)])
    # 51 points thin to the even positions (26), then ten more are appended.
    expected = values[: TREND_LIMIT + 1][::2] + values[TREND_LIMIT + 1 :]
    assert trend(store, "c1") == expected
    assert expected[0] == "1000" and expected[-1] == values[-1]
    assert len(expected) == 36


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
    store.apply("old", [credits_at("c1", 40, "5")])
    new = store.ensure_generation()
    assert store.apply(new, [to_write(samples.alert("c1", "early"), at(BILLING_ALERTS, 3))]) == [
        True
    ]
    assert list(store.alerts("c1")) == ["early"]
    assert [json.loads(e)["alert_id"] for e in store.alert_history("c1")] == ["early"]
    assert store.state("c1") == {} and store.trend("c1") == []


def test_dump_is_the_same_on_every_adapter(store: ReadModelStore, key_prefix: str) -> None:
    reference = InMemoryStore(Keys(prefix=key_prefix))
    writes = [
        state_write("c1", 1),
        state_write("c2", 2, used="5"),
        to_write(samples.alert("c1", "a1"), at(BILLING_ALERTS, 0)),
        to_write(samples.alert("c1", "a2"), at(BILLING_ALERTS, 1)),
        to_write(samples.resolved("c1", "a1"), at(BILLING_ALERTS, 2)),
        to_write(samples.invoice("c2", "inv-9"), at(INVOICES, 0)),
        credits_at("c3", 3, "40"),
        credits_at("c3", 4, "35.5"),
        credits_at("c3", 5, "35.50"),
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
        "billing-alerts/0": "2",
    }
    history = dump[f"{key_prefix}:{{c1}}:alert_history"]
    assert isinstance(history, list) and len(history) == 3
    assert dump[f"{key_prefix}:{{c3}}:trend"] == [
        f'{{"at":"{(samples.T0 + timedelta(hours=h)).isoformat()}","value":"{v}"}}'
        for h, v in [(3, "40"), (4, "35.5")]
    ]
    assert dump[f"{key_prefix}:{{@customer-state/0}}:position"] == {"next": "3"}


def test_trend_is_the_same_on_every_adapter_for_random_snapshots(
    store: ReadModelStore, key_prefix: str
) -> None:
    """Many seeded random drains and top-ups: the Redis script's exact decimal
    comparison and list rules give the in-memory adapter's lists, key for key."""
    rng = random.Random(20261127)
    reference = InMemoryStore(Keys(prefix=key_prefix))
    writes = []
    for c in range(6):
        value = Decimal(rng.choice(["100", "0.5", "-3", "1000000000.000000000000000001"]))
        topup: str | None = "100"
        for n in range(80):
            step = Decimal(rng.randrange(0, 10**6)).scaleb(-rng.randrange(0, 20))
            value += -step if rng.random() < 0.95 else step  # mostly drains, some rises
            if rng.random() < 0.05:
                topup = rng.choice(["100", "50.00", "50", None])
            make = credits_at if c % 2 else balance_at
            writes.append(make(f"c{c}", n + 1, str(value), topup=topup))
    for target in (store, reference):
        gen = target.ensure_generation()
        for start in range(0, len(writes), 50):
            target.apply(gen, writes[start : start + 50])
    assert store.dump() == reference.dump()
    assert any(len(store.trend(f"c{c}")) > 10 for c in range(6))
