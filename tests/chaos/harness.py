"""The chaos suite's machinery: its own Kafka and Redis, the supervised processes, and
the fault actions.

Everything here runs against services this suite starts itself (ports from
STREAMBILL_CHAOS_KAFKA_PORT / _CONTROLLER_PORT / _REDIS_PORT, state in a temporary
directory), never against the shared development broker or Redis: the suite kills
and flushes them.

The supervisor plays the part systemd or Kubernetes plays in production: a child that
exits on its own (the worker exits on purpose when a batch fails, the projector when
Redis is gone) is started again, and every such exit is recorded so the report says
what happened. A SIGKILL the suite injects is recorded as a fault, and the restart
that follows it as part of that fault.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from streambill.config.settings import Settings
from streambill.local import services
from streambill.local.procs import Child, ServiceError, free_port, settings_env

KAFKA_PORT = int(os.environ.get("STREAMBILL_CHAOS_KAFKA_PORT", "49092"))
CONTROLLER_PORT = int(os.environ.get("STREAMBILL_CHAOS_CONTROLLER_PORT", "49093"))
REDIS_PORT = int(os.environ.get("STREAMBILL_CHAOS_REDIS_PORT", "46379"))
PARTITIONS = 3


def chaos_settings(state_dir: Path, run_id: str) -> Settings:
    """Settings of the suite's private cluster. Only the Kafka jars' location is taken
    from the caller's environment; addresses, ports and state are the suite's own."""
    libs = Settings().kafka_libs_dir
    api_port = free_port()
    return Settings(
        bootstrap_servers=f"127.0.0.1:{KAFKA_PORT}",
        redis_url=f"redis://127.0.0.1:{REDIS_PORT}/0",
        kafka_port=KAFKA_PORT,
        kafka_controller_port=CONTROLLER_PORT,
        redis_port=REDIS_PORT,
        kafka_libs_dir=libs,
        state_dir=state_dir,
        worker_data_dir=state_dir / "worker",
        topic_prefix=f"chaos-{run_id}.",
        read_model_prefix=f"sbchaos-{run_id}",
        partitions=PARTITIONS,
        worker_session_timeout=6.0,
        # A worker stuck in a rebalance is restarted after 10 x this (100 s), before
        # the suite calls a phase stuck (120 s).
        worker_stall_timeout=10.0,
        api_port=api_port,
        admin_key=SecretStr(secrets.token_urlsafe(18)),
        token_secret=SecretStr(secrets.token_urlsafe(32)),
    )


class Cluster:
    """The suite's own broker and Redis, with the faults that can hit them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def up(self) -> None:
        services.start_kafka(self.settings)
        services.start_redis(self.settings)

    def kill_kafka(self) -> None:
        """SIGKILL the broker: no clean shutdown, no flush of its page cache to disk."""
        if not services.stop_kafka(self.settings, kill=True):
            raise RuntimeError("the chaos broker was not running")

    def start_kafka(self) -> float:
        """Start the broker on the data it had; seconds until it answers."""
        started = time.monotonic()
        services.start_kafka(self.settings, timeout=180.0)
        return time.monotonic() - started

    def lose_redis(self) -> None:
        """Stop Redis hard and delete its persistence: it comes back empty."""
        if not services.stop_redis(self.settings, kill=True):
            raise RuntimeError("the chaos Redis was not running")
        home = self.settings.state_dir / "redis"
        for leftover in ("appendonlydir", "dump.rdb"):
            path = home / leftover
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def start_redis(self) -> None:
        services.start_redis(self.settings)

    def down(self) -> None:
        with contextlib.suppress(ServiceError):
            services.stop_redis(self.settings, kill=True)
        with contextlib.suppress(ServiceError):
            services.stop_kafka(self.settings, kill=True)


def chaos_child(name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str]) -> Child:
    """One `python -m streambill.cli ...` child in its own session (process group), so a
    SIGKILL reaches whatever it forked too (the close job's fold workers); its log,
    `log_dir/<name>.log`, marks each start."""
    return Child(name, argv, log_dir / f"{name}.log", env, mark_starts=True)


@dataclass
class Supervisor:
    """Keeps the long-running children up; records exits nobody asked for."""

    settings: Settings
    log_dir: Path
    procs: dict[str, Child] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def env(self) -> dict[str, str]:
        return settings_env(self.settings)

    def add(self, name: str, *argv: str) -> Child:
        proc = chaos_child(name, argv, self.log_dir, self.env())
        with self._lock:
            self.procs[name] = proc
            proc.start()
        return proc

    def kill(self, name: str) -> int | None:
        """SIGKILL `name` and start it again at once; the pid that was killed."""
        with self._lock:
            proc = self.procs[name]
            pid = proc.pid
            proc.kill()
            proc.start()
        return pid

    def dump(self, name: str) -> None:
        """Ask `name` to write its threads' and tasks' stacks to its log (SIGUSR1, which
        mode's Worker, the worker's runner, answers that way)."""
        with self._lock:
            proc = self.procs.get(name)
            if proc is not None and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGUSR1)

    def remove(self, name: str, *, kill: bool) -> None:
        """Take `name` out of supervision: SIGKILL or SIGTERM, not restarted."""
        with self._lock:
            proc = self.procs.pop(name)
        if kill:
            proc.kill()
        else:
            proc.stop()

    def watch(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                for proc in self.procs.values():
                    code = proc.exit_code()
                    if code is not None:
                        self.unexpected.append(f"{proc.name} exited by itself (code {code})")
                        proc.start()

    def take_unexpected(self) -> list[str]:
        with self._lock:
            out, self.unexpected = self.unexpected, []
        return out

    def stop_all(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            procs = list(self.procs.values())
        for proc in reversed(procs):
            proc.stop()
