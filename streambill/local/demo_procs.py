"""The demo's child processes: `streambill worker`, `projector` and `api`.

Each child runs `python -m streambill.cli <command>` with the demo's settings passed
as `STREAMBILL_*` variables, in its own session (a Ctrl-C in the terminal reaches
only the demo, which then stops its children in order), output appended to a log
file. `stop` sends SIGTERM, then SIGKILL after a timeout, and reaps the child.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streambill.config.settings import Settings


class DemoError(Exception):
    """The demo cannot go on; the message says why (and where the logs are)."""


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child build the same `Settings` as `settings`."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            env.pop(f"STREAMBILL_{name.upper()}", None)
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif hasattr(value, "total_seconds"):
            value = f"PT{value.total_seconds()}S"  # ISO 8601 duration, as pydantic reads
        env[f"STREAMBILL_{name.upper()}"] = str(value)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, env: dict[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streambill.cli", *self.argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise DemoError with the log's tail if the child has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise DemoError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"last lines of {self.log}:\n{_tail(self.log)}"
            )

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Children:
    """The running children, stopped in reverse start order."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self._env = settings_env(settings)
        self._log_dir = log_dir
        self.started: list[Child] = []

    def start(self, name: str, *argv: str) -> Child:
        child = Child(name, argv, self._log_dir / f"{name}.log")
        child.start(self._env)
        self.started.append(child)
        return child

    def check(self) -> None:
        for child in self.started:
            child.check()

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop()


def wait_http(url: str, child: Child, timeout: float = 60.0) -> None:
    """Wait until `url` answers (any HTTP status) while `child` stays alive."""
    deadline = time.monotonic() + timeout
    while True:
        child.check()
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise DemoError(f"{child.name} did not answer on {url} in {timeout:.0f}s") from None
            time.sleep(0.3)


def get_json(url: str, headers: dict[str, str]) -> Any:
    """GET `url` -> decoded JSON, or None on any HTTP or network error (a live view
    tolerates a read that fails; the demo's result does not depend on it)."""
    import json

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
