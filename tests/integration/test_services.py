"""`streambill services` and `streambill topics` against the real local broker and Redis.

`make test` starts the services on the settings' ports (19092/16379 by default) before
pytest; these tests use those, and start throw-away instances on free ports of their own
where a test must kill or block something.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from streambill.config.settings import ALL_TOPICS, REPO_ROOT, Settings
from streambill.config.topics import create_topics, list_topics
from streambill.local import services
from streambill.local.procs import free_port
from tests.support import unavailable

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streambill.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="module")
def local_services(settings: Settings) -> list[services.ServiceStatus]:
    """The broker and Redis that `streambill services up` started from this checkout."""
    statuses = [services.kafka_status(settings), services.redis_status(settings)]
    if any(status.pid is None or not status.answers for status in statuses):
        unavailable(
            "the services of `streambill services up` are not running for "
            f"{settings.state_dir} (run `make test`)"
        )
    return statuses


def test_status_says_what_runs_and_where(
    settings: Settings, local_services: list[services.ServiceStatus]
) -> None:
    result = _cli("services", "status")
    assert result.returncode == 0, result.stderr
    kafka_pid, redis_pid = (status.pid for status in local_services)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"kafka: running, pid {kafka_pid}, 127.0.0.1:{settings.kafka_port}")
    assert lines[1].startswith(f"redis: running, pid {redis_pid}, 127.0.0.1:{settings.redis_port}")
    assert str(settings.state_dir) in result.stdout


def test_second_up_is_a_noop(
    settings: Settings, local_services: list[services.ServiceStatus]
) -> None:
    again = services.up(settings)
    assert [status.state for status in again] == ["running", "running"]
    assert [status.pid for status in again] == [status.pid for status in local_services]
    result = _cli("services", "up")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already running") == 2


def test_topics_create_is_idempotent_and_configured(settings: Settings) -> None:
    # The product's usage retention, not the session's keep-for-ever one.
    product_retention = Settings.model_fields["usage_retention_days"].default
    fresh = settings.model_copy(
        update={
            "topic_prefix": f"t-{uuid.uuid4().hex[:12]}.",
            "usage_retention_days": product_retention,
        }
    )
    wanted = [fresh.topic(name) for name in ALL_TOPICS]
    try:
        assert create_topics(fresh) == (wanted, [])
        assert create_topics(fresh) == ([], wanted)
        result = _cli("topics", "create", env={"STREAMBILL_TOPIC_PREFIX": fresh.topic_prefix})
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [f"existed  {name}" for name in wanted]

        infos = {info.name: info for info in list_topics(fresh)}
        assert set(infos) == set(wanted)
        partitions = {name: info.partitions for name, info in infos.items()}
        assert partitions.pop(fresh.topic("catalog")) == 1
        assert set(partitions.values()) == {fresh.partitions}
        policy = {name: info.config["cleanup.policy"] for name, info in infos.items()}
        assert policy[fresh.topic("customer-state")] == "compact"
        assert policy[fresh.topic("period-closes")] == "compact"
        assert policy[fresh.topic("catalog")] == "compact"
        assert policy[fresh.topic("usage-events")] == "delete"
        for forever in ("account-events", "invoices"):
            assert infos[fresh.topic(forever)].config["retention.ms"] == "-1"
        usage_days = int(infos[fresh.topic("usage-events")].config["retention.ms"]) / 86_400_000
        assert usage_days >= 2 * 31 + 7
    finally:
        AdminClient(fresh.kafka_config()).delete_topics(wanted)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other process listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("which", ["KAFKA_PORT", "REDIS_PORT"])
def test_busy_port_is_one_clear_sentence_and_starts_nothing(
    tmp_path: Path, busy_port: int, which: str
) -> None:
    ports = {
        "KAFKA_PORT": free_port(),
        "KAFKA_CONTROLLER_PORT": free_port(),
        "REDIS_PORT": free_port(),
    }
    ports[which] = busy_port
    env = {f"STREAMBILL_{name}": str(port) for name, port in ports.items()}
    env["STREAMBILL_STATE_DIR"] = str(tmp_path)
    result = _cli("services", "up", env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert f"STREAMBILL_{which}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.pid"))  # checked before anything started


def test_sigkill_and_restart_resume_on_the_same_data(tmp_path: Path) -> None:
    """What the chaos suite relies on: kill -9 either service, start it again, data is there."""
    kafka_port, redis_port = free_port(), free_port()
    own = Settings(
        state_dir=tmp_path,
        kafka_port=kafka_port,
        kafka_controller_port=free_port(),
        redis_port=redis_port,
        bootstrap_servers=f"127.0.0.1:{kafka_port}",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        topic_prefix="k.",
        partitions=1,
    )
    try:
        services.start_kafka(own)
        services.start_redis(own)
        create_topics(own)
        # The input topics' partitioner (README, topic contract), though one partition.
        producer = Producer(own.kafka_config(acks="all", partitioner="murmur2_random"))
        producer.produce(own.topic("usage-events"), key=b"cus_1", value=b"before the kill")
        assert producer.flush(30) == 0
        redis.Redis.from_url(own.redis_url).set("survives", "yes")

        assert services.stop_kafka(own, kill=True)
        assert services.stop_redis(own, kill=True)
        assert services.kafka_status(own).state == "stopped"
        assert services.redis_status(own).state == "stopped"

        assert services.start_kafka(own).state == "started"
        assert services.start_redis(own).state == "started"
        assert redis.Redis.from_url(own.redis_url).get("survives") == b"yes"
        assert _read_all(own, own.topic("usage-events")) == [(b"cus_1", b"before the kill")]
    finally:
        services.stop_redis(own, kill=True)
        services.stop_kafka(own, kill=True)


def _read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer(
        settings.kafka_config(
            **{"group.id": f"g-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([topic])
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        # Up to 60 s for the first record (group join), then until 2 s pass without one.
        for _ in range(60):
            message = consumer.poll(2.0 if records else 1.0)
            if message is None and records:
                break
            if message is not None and message.error() is None:
                records.append((message.key(), message.value()))
    finally:
        consumer.close()
    return records
