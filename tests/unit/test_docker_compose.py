"""docker-compose.yml cannot run here (no Docker engine); it must at least parse and offer
the services and ports README.md promises."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from streambill.config.settings import REPO_ROOT


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return loaded


def test_names_the_services_the_readme_promises() -> None:
    services = _compose()["services"]
    assert set(services) == {"kafka", "redis", "topics", "worker", "projector", "api", "close"}
    readme = (REPO_ROOT / "README.md").read_text()
    for name in services:
        assert f"`{name}`" in readme, f"README.md does not mention compose service {name}"


def test_publishes_the_ports_the_readme_promises() -> None:
    services = _compose()["services"]
    assert services["kafka"]["ports"] == ["127.0.0.1:9092:9092"]
    assert services["redis"]["ports"] == ["127.0.0.1:6379:6379"]
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080"]
    readme = (REPO_ROOT / "README.md").read_text()
    for address in ("localhost:9092", "localhost:6379", "localhost:8080"):
        assert address in readme


def test_kafka_is_the_official_image_in_kraft_mode_without_auto_creation() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_infrastructure_has_health_checks_and_processes_wait_for_them() -> None:
    services = _compose()["services"]
    assert "healthcheck" in services["kafka"]
    assert "healthcheck" in services["redis"]
    expected = {
        "worker": ["worker"],
        "projector": ["projector"],
        "close": ["close", "--auto"],
    }
    for name, command in expected.items():
        assert services[name]["command"] == command
    assert services["api"]["command"][0] == "api"
    for name in ("worker", "projector", "api", "close"):
        service = services[name]
        assert service["build"] == "."
        assert service["environment"]["STREAMBILL_BOOTSTRAP_SERVERS"] == "kafka:19092"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["topics"]["command"] == ["topics", "create"]


def test_dockerfile_runs_the_streambill_command() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert 'ENTRYPOINT ["streambill"]' in dockerfile


def test_every_published_port_is_bound_to_the_loopback() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_redis_requires_a_password_and_the_url_carries_it() -> None:
    services = _compose()["services"]
    redis = services["redis"]
    assert '--requirepass "$$REDIS_PASSWORD"' in redis["command"][-1]
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${STREAMBILL_REDIS_PASSWORD:?")
    assert redis["environment"]["REDISCLI_AUTH"] == redis["environment"]["REDIS_PASSWORD"]
    for name in ("worker", "projector", "api", "close", "topics"):
        url = services[name]["environment"]["STREAMBILL_REDIS_URL"]
        assert url.startswith("redis://:${STREAMBILL_REDIS_PASSWORD:?"), name
        assert url.endswith("@redis:6379/0")


def test_the_kafka_sasl_settings_are_shown_for_the_stack() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for setting in (
        "STREAMBILL_SECURITY_PROTOCOL: SASL_SSL",
        "STREAMBILL_SASL_MECHANISM: SCRAM-SHA-512",
        "KAFKA_SASL_ENABLED_MECHANISMS: SCRAM-SHA-512",
        "KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND",
    ):
        assert f"# {setting}" in text or f"#   {setting}" in text or setting in text
