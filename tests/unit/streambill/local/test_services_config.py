"""Broker and Redis configuration rendered by `streambill services`, and process ownership,
checked without starting anything."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streambill.config.settings import REPO_ROOT, Settings
from streambill.local import procs, services
from streambill.local.procs import ServiceError


def _properties(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, kafka_port=29992, kafka_controller_port=29993)


def test_broker_config_is_loopback_kraft_with_single_replica_internals(tmp_path: Path) -> None:
    target = tmp_path / "server.properties"
    services._render(
        services.KAFKA_TEMPLATES / "server.properties.template",
        target,
        kafka_port=29992,
        controller_port=29993,
        data_dir=tmp_path / "data",
    )
    conf = _properties(target)
    assert conf["process.roles"] == "broker,controller"
    assert conf["listeners"] == "PLAINTEXT://127.0.0.1:29992,CONTROLLER://127.0.0.1:29993"
    assert conf["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29992"
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:29993"
    assert conf["log.dirs"] == str(tmp_path / "data")
    assert conf["auto.create.topics.enable"] == "false"
    assert conf["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert conf[key] == "1"
    assert "$" not in "".join(conf.values())


def test_redis_config_is_loopback_append_only_in_the_state_dir(tmp_path: Path) -> None:
    target = tmp_path / "redis.conf"
    services._render(
        services.REDIS_TEMPLATES / "redis.conf.template",
        target,
        redis_port=29979,
        data_dir=tmp_path,
        log_file=tmp_path / "redis.log",
    )
    lines = {
        tuple(line.split(None, 1))
        for line in target.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert ("bind", "127.0.0.1") in lines
    assert ("port", "29979") in lines
    assert ("appendonly", "yes") in lines
    assert ("dir", str(tmp_path)) in lines


def test_kafka_version_matches_the_pom() -> None:
    pom = (REPO_ROOT / "services" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match is not None
    assert match.group(1) == services.KAFKA_VERSION
    assert services.KAFKA_VERSION in str(Settings().kafka_libs_dir)


def test_cluster_id_is_16_bytes_in_url_safe_base64() -> None:
    for _ in range(200):
        cluster_id = services._cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_missing_program_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServiceError, match=r"^`java` was not found on PATH; install it\.$"):
        procs.require_program("java", "install it")


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert procs.port_in_use(port)
    assert not procs.port_in_use(port)


@pytest.mark.parametrize("marker_in_argv", [False, True])
def test_down_never_signals_a_process_it_did_not_start(
    tmp_path: Path, marker_in_argv: bool
) -> None:
    """A pidfile naming a stranger (pid reused, or same marker from another directory)
    is discarded, and the stranger keeps running."""
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    if marker_in_argv:
        argv.append("kafka.Kafka")  # same marker, but started elsewhere
    stranger = subprocess.Popen(argv, cwd=REPO_ROOT)
    try:
        settings = _settings(tmp_path)
        pidfile = tmp_path / "kafka" / "kafka.pid"
        pidfile.parent.mkdir(parents=True)
        pidfile.write_text(f"{stranger.pid}\n")
        assert services.stop_kafka(settings, kill=True) is False
        assert stranger.poll() is None
        assert not pidfile.exists()
        assert services.kafka_status(settings).state == "stopped"
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_and_status_with_no_state_dir_report_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "never-started")
    assert services.stop_kafka(settings) is False
    assert services.stop_redis(settings) is False
    status = services.redis_status(settings)
    assert (status.state, status.pid) == ("stopped", None)
    assert status.describe().startswith("redis: stopped (127.0.0.1:")
