"""The topic table of docs/ARCHITECTURE.md ("Topics and owners"), as `streambill topics
create` will create it."""

from __future__ import annotations

from datetime import timedelta

from streambill.config.settings import ALL_TOPICS, Settings
from streambill.config.topics import (
    DAY_MS,
    TOPIC_SPECS,
    _retention,
    minimum_usage_retention_days,
    partition_count,
    usage_retention_problem,
)
from streambill.config.topics import _config as _settings_config


def _config(logical: str) -> dict[str, str]:
    return dict(next(spec.config for spec in TOPIC_SPECS if spec.logical == logical))


def test_every_topic_has_exactly_one_spec() -> None:
    assert sorted(spec.logical for spec in TOPIC_SPECS) == sorted(ALL_TOPICS)


def test_state_period_closes_checkpoints_and_catalog_are_compacted_the_rest_deleted() -> None:
    compacted = {s.logical for s in TOPIC_SPECS if s.config["cleanup.policy"] == "compact"}
    assert compacted == {"customer-state", "period-closes", "close-checkpoints", "catalog"}
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


def test_the_minimum_usage_retention_is_lateness_plus_two_longest_months() -> None:
    assert minimum_usage_retention_days(timedelta(days=35)) == 97
    assert minimum_usage_retention_days(timedelta(0)) == 62
    assert minimum_usage_retention_days(timedelta(days=7, hours=1)) == 70  # whole days, up


def test_a_short_usage_retention_is_refused_naming_the_setting_and_the_minimum() -> None:
    problem = usage_retention_problem(96, timedelta(days=35))
    assert problem is not None
    assert "STREAMBILL_USAGE_RETENTION_DAYS" in problem and "at least 97" in problem
    assert usage_retention_problem(97, timedelta(days=35)) is None
    assert usage_retention_problem(0, timedelta(days=35)) is None  # kept for ever
    assert usage_retention_problem(-1, timedelta(days=365)) is None


def test_the_default_settings_pass_the_retention_check() -> None:
    defaults = Settings.model_construct()
    assert usage_retention_problem(defaults.usage_retention_days, defaults.max_lateness) is None
    days = int(_config("usage-events")["retention.ms"]) // DAY_MS
    assert usage_retention_problem(days, defaults.max_lateness) is None


def test_checkpoints_are_compacted_no_earlier_than_usage_is_kept() -> None:
    """A close resumes from the previous close's checkpoints and reconcile reads them
    again; they must outlive the usage read with them (for ever when usage is)."""
    spec = next(s for s in TOPIC_SPECS if s.logical == "close-checkpoints")
    kept = _settings_config(spec, Settings(usage_retention_days=120))
    assert kept["min.compaction.lag.ms"] == str(120 * 24 * 3600 * 1000)
    forever = _settings_config(spec, Settings(usage_retention_days=0))
    assert forever["min.compaction.lag.ms"] == str(2**63 - 1)
