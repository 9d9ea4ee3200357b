"""The topic table of docs/ARCHITECTURE.md ("Topics and owners"), as `streambill topics
create` will create it."""

from __future__ import annotations

from streambill.config.settings import ALL_TOPICS, Settings
from streambill.config.topics import DAY_MS, TOPIC_SPECS, _retention, partition_count


def _config(logical: str) -> dict[str, str]:
    return dict(next(spec.config for spec in TOPIC_SPECS if spec.logical == logical))


def test_every_topic_has_exactly_one_spec() -> None:
    assert sorted(spec.logical for spec in TOPIC_SPECS) == sorted(ALL_TOPICS)


def test_state_period_closes_and_catalog_are_compacted_the_rest_deleted() -> None:
    compacted = {s.logical for s in TOPIC_SPECS if s.config["cleanup.policy"] == "compact"}
    assert compacted == {"customer-state", "period-closes", "catalog"}
    deleted = {s.logical for s in TOPIC_SPECS if s.config["cleanup.policy"] == "delete"}
    assert deleted == set(ALL_TOPICS) - compacted


def test_account_events_and_invoices_are_kept_forever() -> None:
    for logical in ("account-events", "invoices"):
        assert _config(logical)["retention.ms"] == "-1"
        assert _config(logical)["retention.bytes"] == "-1"


def test_usage_outlives_two_periods_plus_lateness() -> None:
    longest_two_periods_days = 31 + 31
    assert int(_config("usage-events")["retention.ms"]) >= (longest_two_periods_days + 7) * DAY_MS


def test_retention_is_printed_for_people() -> None:
    assert _retention("-1") == "infinite"
    assert _retention(str(75 * DAY_MS)) == "75d"
    assert _retention("1500") == "1500ms"
    assert _retention(None) == "?"


def test_the_catalog_has_one_partition_and_keeps_duplicates_a_week() -> None:
    settings = Settings.model_construct(partitions=12)
    counts = {spec.logical: partition_count(spec, settings) for spec in TOPIC_SPECS}
    assert counts.pop("catalog") == 1
    assert set(counts.values()) == {12}
    assert int(_config("catalog")["min.compaction.lag.ms"]) == 7 * DAY_MS
