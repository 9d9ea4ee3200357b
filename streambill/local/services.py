"""Local Apache Kafka and Redis without Docker: `streambill services up | down | status`.

Kafka 4.1 runs as one KRaft process (broker and controller) from the jars Maven resolves
out of `services/kafka/pom.xml` into `settings.kafka_libs_dir` (with the broker's operator
tools, `streambill.local.kafka_tools`); Redis is Debian's
`redis-server`. Both listen on 127.0.0.1 only and keep their data, logs and pidfiles under
`settings.state_dir`, so stopping one with SIGKILL and starting it again resumes on the
same data (the chaos suite relies on that through `stop_kafka(settings, kill=True)`).

`start_*` returns only once the service answers (a Kafka metadata request, a Redis PING)
and is a no-op for a service that already runs; `stop_*` signals only a process whose
pidfile and command line show that we started it from this state directory.
"""

from __future__ import annotations

import base64
import contextlib
import string
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streambill.config.settings import REPO_ROOT, Settings
from streambill.local import procs
from streambill.local.procs import ServiceError

KAFKA_VERSION = "4.1.1"
KAFKA_TEMPLATES = REPO_ROOT / "services" / "kafka"
REDIS_TEMPLATES = REPO_ROOT / "services" / "redis"
HOST = "127.0.0.1"
KAFKA_MAIN = "kafka.Kafka"
KAFKA_HEAP = ("-Xms256m", "-Xmx1g")
# The pom's artifacts whose jars mark a complete libs directory: a directory resolved
# before kafka-tools joined the pom lacks the second and is resolved again.
REQUIRED_JARS = (f"kafka_2.13-{KAFKA_VERSION}.jar", f"kafka-tools-{KAFKA_VERSION}.jar")


@dataclass(frozen=True)
class ServiceStatus:
    """What `status` reports for one service. `state`: started | running | stopped."""

    name: str
    state: str
    pid: int | None
    address: str
    data_dir: Path
    log: Path
    answers: bool

    def describe(self) -> str:
        if self.pid is None:
            return f"{self.name}: stopped ({self.address}, data {self.data_dir})"
        health = "" if self.answers else ", NOT answering"
        return (
            f"{self.name}: {self.state}, pid {self.pid}, {self.address}{health}, "
            f"data {self.data_dir}, log {self.log}"
        )


@dataclass(frozen=True)
class _Layout:
    """Where one service keeps its files inside the state directory."""

    home: Path
    data: Path
    config: Path
    pidfile: Path
    log: Path
    console: Path
    marker: str

    def owned_pid(self) -> int | None:
        return procs.owned_pid(self.pidfile, [self.marker], cwd=self.home)


def _kafka_layout(settings: Settings) -> _Layout:
    home = settings.state_dir / "kafka"
    return _Layout(
        home=home,
        data=home / "data",
        config=home / "server.properties",
        pidfile=home / "kafka.pid",
        log=home / "logs" / "server.log",
        console=home / "logs" / "console.log",
        marker=KAFKA_MAIN,
    )


def _redis_layout(settings: Settings) -> _Layout:
    home = settings.state_dir / "redis"
    return _Layout(
        home=home,
        data=home,
        config=home / "redis.conf",
        pidfile=home / "redis.pid",
        log=home / "redis.log",
        console=home / "console.log",
        marker="redis-server",
    )


def _kafka_address(settings: Settings) -> str:
    return f"{HOST}:{settings.kafka_port} (controller {HOST}:{settings.kafka_controller_port})"


def _redis_address(settings: Settings) -> str:
    return f"{HOST}:{settings.redis_port}"


# --- probes -----------------------------------------------------------------------------


def kafka_answers(settings: Settings, timeout: float = 2.0) -> bool:
    """True when the local broker answers a metadata request and lists itself."""
    if not procs.port_in_use(settings.kafka_port):
        return False  # skip librdkafka's connection-refused noise while starting
    admin = AdminClient({"bootstrap.servers": f"{HOST}:{settings.kafka_port}"})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def redis_answers(settings: Settings, timeout: float = 1.0) -> bool:
    """True when the local Redis answers PING (not while it is still loading its AOF)."""
    client = redis.Redis(host=HOST, port=settings.redis_port, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait_until_answers(
    name: str, probe: Callable[[], bool], pid: int, layout: _Layout, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if not procs.is_alive(pid):
            last = procs.tail(layout.log, 3) or procs.tail(layout.console, 3)
            raise ServiceError(f"{name} exited during start-up; see {layout.log}:\n{last}")
        if time.monotonic() >= deadline:
            raise ServiceError(f"{name} did not answer within {timeout:.0f}s; see {layout.log}.")
        time.sleep(0.3)


def _require_free(name: str, ports: dict[str, int]) -> None:
    for variable, port in ports.items():
        if procs.port_in_use(port):
            raise ServiceError(
                f"cannot start {name}: port {port} on {HOST} is already in use by another "
                f"process; stop it or pick another port with STREAMBILL_{variable}."
            )


def _preflight_kafka(settings: Settings) -> str:
    """Path of `java`, once the programs and ports the broker needs are known to be there."""
    java = procs.require_program(
        "java", "install a Java 17+ runtime (apt-get install -y openjdk-17-jre-headless)"
    )
    if not _jars_present(settings):
        procs.require_program("mvn", "install Maven (apt-get install -y maven) or run `make setup`")
    _require_free(
        "Kafka",
        {"KAFKA_PORT": settings.kafka_port,
         "KAFKA_CONTROLLER_PORT": settings.kafka_controller_port},
    )  # fmt: skip
    return java


def _preflight_redis(settings: Settings) -> str:
    """Path of `redis-server`, once it and the Redis port are known to be available."""
    server = procs.require_program(
        "redis-server", "install it with `apt-get install -y redis-server` or `make setup`"
    )
    _require_free("Redis", {"REDIS_PORT": settings.redis_port})
    return server


# --- Kafka ------------------------------------------------------------------------------


def _jars_present(settings: Settings) -> bool:
    return all((settings.kafka_libs_dir / jar).is_file() for jar in REQUIRED_JARS)


def ensure_kafka_jars(settings: Settings) -> Path:
    """The directory of broker and tool jars, resolving them with Maven on first use (and
    when one of `REQUIRED_JARS` is missing). Maven only adds files: a broker already
    running from the directory keeps the classpath it started with."""
    libs = settings.kafka_libs_dir
    if _jars_present(settings):
        return libs
    mvn = procs.require_program(
        "mvn", "install Maven (apt-get install -y maven) or run `make setup`"
    )
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(KAFKA_TEMPLATES / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServiceError(
            f"Maven could not resolve the Kafka {KAFKA_VERSION} jars into {libs} "
            f"(exit {result.returncode}): {_last_line(result)}"
        )
    return libs


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    return lines[-1] if lines else "no output"


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, no leading '-'."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _render(template: Path, target: Path, **values: object) -> None:
    text = string.Template(template.read_text()).substitute(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _format_storage(java: str, libs: Path, layout: _Layout) -> None:
    """Format the KRaft log directory once; an existing meta.properties means done."""
    if (layout.data / "meta.properties").is_file():
        return
    result = subprocess.run(
        [java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
         "-t", _cluster_id(), "-c", str(layout.config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage in {layout.data} failed: {_last_line(result)}"
        )


def start_kafka(settings: Settings, timeout: float = 120.0) -> ServiceStatus:
    """Start the local broker (or find it running) and return once it answers."""
    layout = _kafka_layout(settings)

    def launch() -> int:
        java = _preflight_kafka(settings)
        libs = ensure_kafka_jars(settings)
        _render(
            KAFKA_TEMPLATES / "server.properties.template",
            layout.config,
            kafka_port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            data_dir=layout.data,
        )
        _format_storage(java, libs, layout)
        return procs.spawn(
            [java, *KAFKA_HEAP, "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={KAFKA_TEMPLATES / 'log4j2.properties'}",
             f"-Dkafka.logs.dir={layout.log.parent}",
             "-cp", f"{libs}/*", KAFKA_MAIN, str(layout.config)],
            cwd=layout.home, output=layout.console, pidfile=layout.pidfile,
        )  # fmt: skip

    probe, address = (lambda: kafka_answers(settings)), _kafka_address(settings)
    return _start_or_find("Kafka", layout, launch, probe, address, timeout)


def stop_kafka(settings: Settings, *, kill: bool = False, timeout: float = 60.0) -> bool:
    """Stop the broker we started (SIGKILL at once if `kill`); False if none was running."""
    return _stop(_kafka_layout(settings), kill=kill, timeout=timeout)


def kafka_status(settings: Settings) -> ServiceStatus:
    layout = _kafka_layout(settings)
    return _status("kafka", layout, _kafka_address(settings), kafka_answers(settings), False)


# --- Redis ------------------------------------------------------------------------------


def start_redis(settings: Settings, timeout: float = 60.0) -> ServiceStatus:
    """Start the local Redis (or find it running) and return once it answers PING."""
    layout = _redis_layout(settings)

    def launch() -> int:
        server = _preflight_redis(settings)
        _render(
            REDIS_TEMPLATES / "redis.conf.template",
            layout.config,
            redis_port=settings.redis_port,
            data_dir=layout.data,
            log_file=layout.log,
        )
        return procs.spawn(
            [server, str(layout.config)],
            cwd=layout.home,
            output=layout.console,
            pidfile=layout.pidfile,
        )

    probe, address = (lambda: redis_answers(settings)), _redis_address(settings)
    return _start_or_find("Redis", layout, launch, probe, address, timeout)


def stop_redis(settings: Settings, *, kill: bool = False, timeout: float = 30.0) -> bool:
    """Stop the Redis we started (SIGKILL at once if `kill`); False if none was running."""
    return _stop(_redis_layout(settings), kill=kill, timeout=timeout)


def redis_status(settings: Settings) -> ServiceStatus:
    layout = _redis_layout(settings)
    return _status("redis", layout, _redis_address(settings), redis_answers(settings), False)


# --- shared -----------------------------------------------------------------------------


def _start_or_find(
    name: str,
    layout: _Layout,
    launch: Callable[[], int],
    probe: Callable[[], bool],
    address: str,
    timeout: float,
) -> ServiceStatus:
    """The service's status once it answers: the process we own if one runs, else the one
    `launch` starts (its pid). A process we just started that never answers is stopped
    again, so a failed `up` leaves nothing half-running behind."""
    pid = layout.owned_pid()
    started = pid is None
    if pid is None:
        pid = launch()
    try:
        _wait_until_answers(name, probe, pid, layout, timeout)
    except ServiceError:
        if started:
            with contextlib.suppress(ServiceError):
                _stop(layout, kill=False, timeout=15.0)
        raise
    return _status(name.lower(), layout, address, True, started)


def _stop(layout: _Layout, *, kill: bool, timeout: float) -> bool:
    pid = layout.owned_pid()
    if pid is None:
        return False
    procs.terminate(pid, kill=kill, timeout=timeout)
    layout.pidfile.unlink(missing_ok=True)
    return True


def _status(
    name: str, layout: _Layout, address: str, answers: bool, started: bool
) -> ServiceStatus:
    pid = layout.owned_pid()
    state = "stopped" if pid is None else ("started" if started else "running")
    return ServiceStatus(name, state, pid, address, layout.data, layout.log, answers)


def up(settings: Settings) -> list[ServiceStatus]:
    """Start Kafka and Redis. Both are checked for missing programs and busy ports before
    either starts, so a doomed `up` starts nothing."""
    kafka, redis_ = _kafka_layout(settings), _redis_layout(settings)
    if kafka.owned_pid() is None:
        _preflight_kafka(settings)
    if redis_.owned_pid() is None:
        _preflight_redis(settings)
    return [start_kafka(settings), start_redis(settings)]


def down(settings: Settings) -> list[tuple[str, bool]]:
    """Stop both; each pair says whether that service was running (and is now stopped)."""
    return [("redis", stop_redis(settings)), ("kafka", stop_kafka(settings))]
