"""The SDK's delivery guarantees without a broker: the configuration it really hands
to confluent_kafka, and nothing lost silently when the context manager exits (the
client points at a closed port, so every message times out undelivered)."""

from __future__ import annotations

from typing import Any

import pytest

from streambill.config.settings import Settings
from streambill.sdk import client as sdk
from streambill.sdk.client import DeliveryError, UsageClient

UNREACHABLE = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="unit-never-sent.")
FAST_FAILURE = {"log_level": 0, "message.timeout.ms": 300}


class CapturedConfig(Exception):
    """Raised by the fake Producer: the test needs its config, not a client."""


def _config_given_to_confluent_kafka(
    monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> dict[str, Any]:
    def fake_producer(config: dict[str, Any]) -> None:
        raise CapturedConfig(config)

    monkeypatch.setattr(sdk, "Producer", fake_producer)
    with pytest.raises(CapturedConfig) as captured:
        UsageClient(UNREACHABLE, producer_config=extra or None)
    config: dict[str, Any] = captured.value.args[0]
    return config


@pytest.mark.parametrize("extra", [{}, {"linger.ms": 1, "compression.type": "zstd"}])
def test_the_producer_is_idempotent_with_acks_all(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]
) -> None:
    config = _config_given_to_confluent_kafka(monkeypatch, **extra)
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["bootstrap.servers"] == "127.0.0.1:1"
    assert callable(config["on_delivery"]) and callable(config["error_cb"])
    for key, value in extra.items():  # throughput settings stay overridable
        assert config[key] == value


@pytest.mark.parametrize("key", ["enable.idempotence", "acks", "on_delivery"])
def test_the_guarantees_cannot_be_switched_off(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        UsageClient(UNREACHABLE, producer_config={key: False})


def test_exit_raises_delivery_error_naming_the_undelivered_events() -> None:
    client = UsageClient(UNREACHABLE, producer_config=FAST_FAILURE)
    with pytest.raises(DeliveryError) as err, client:
        ids = [client.report("cus_1", "tokens", 1), client.report("cus_2", "tokens", 2)]
        ids.append(client.change_seats("cus_1", 3))
    assert sorted(err.value.event_ids) == sorted(ids)
    assert err.value.pending == 0
    assert f"{len(ids)} event(s) not delivered" in str(err.value)


def test_exit_keeps_the_body_error_and_notes_the_undelivered_events() -> None:
    client = UsageClient(UNREACHABLE, producer_config=FAST_FAILURE)
    with pytest.raises(RuntimeError, match="body failed") as err, client:
        client.report("cus_1", "tokens", 1, event_id="evt-lost")
        raise RuntimeError("body failed")
    notes = getattr(err.value, "__notes__", [])
    assert len(notes) == 1 and "evt-lost" in notes[0] and "not delivered" in notes[0]
