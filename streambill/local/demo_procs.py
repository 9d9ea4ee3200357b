"""The demo's child processes: `streambill worker`, `projector` and `api`.

Each child (`streambill.local.procs.Child`) runs `python -m streambill.cli <command>`
with the demo's settings passed as `STREAMBILL_*` variables, in its own session (a
Ctrl-C in the terminal reaches only the demo, which then stops its children in
order), output appended to a log file. Stopping sends SIGTERM, then SIGKILL to the
child's process group after STOP_GRACE seconds, and reaps the child.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streambill.config.settings import Settings
from streambill.local.procs import Child, http_answers, settings_env, wait_ready

STOP_GRACE = 20.0  # seconds from SIGTERM to SIGKILL


class DemoError(Exception):
    """The demo cannot go on; the message says why (and where the logs are)."""


class Children:
    """The running children, stopped in reverse start order."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self._env = settings_env(settings)
        self._log_dir = log_dir
        self.started: list[Child] = []

    def start(self, name: str, *argv: str) -> Child:
        child = Child(name, argv, self._log_dir / f"{name}.log", self._env)
        child.start()
        self.started.append(child)
        return child

    def check(self) -> None:
        for child in self.started:
            check(child)

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop(STOP_GRACE)


def check(child: Child) -> None:
    """Raise DemoError with the log's tail if the child has exited."""
    failure = child.failure()
    if failure is not None:
        raise DemoError(failure)


def wait_http(url: str, child: Child, timeout: float = 60.0) -> None:
    """Wait until `url` answers (any HTTP status) while `child` stays alive."""
    try:
        wait_ready(lambda: http_answers(url), timeout, url, check=lambda: check(child))
    except TimeoutError:
        raise DemoError(f"{child.name} did not answer on {url} in {timeout:.0f}s") from None


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
