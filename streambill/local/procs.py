"""Start, find and stop child processes: the local services `streambill services` owns,
and the supervised `python -m streambill.cli ...` children of the demo and the chaos
suite (`Child`).

A service process is ours only if its pidfile names it AND its command line still carries the
marker we started it with: a stale pidfile whose pid was reused by something else is
never signalled. Everything that can go wrong for a person (missing program, busy port,
process died during start-up) is raised as `ServiceError` with one readable sentence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streambill.config.settings import Settings


class ServiceError(Exception):
    """A local service could not be started or stopped; the message is one sentence."""


def require_program(name: str, hint: str) -> str:
    """Absolute path of `name` on PATH, or ServiceError naming how to get it."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"`{name}` was not found on PATH; {hint}.")
    return path


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port (a connect succeeds) or bind is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as servers use it: TIME_WAIT leftovers of a stopped broker are not
        # "in use", while another listening socket still makes bind fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def cmdline(pid: int) -> list[str]:
    """The process's argv, or [] when it is gone (or a zombie, whose cmdline is empty)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may contain spaces).
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def cwd_of(pid: int) -> Path | None:
    try:
        return Path(f"/proc/{pid}/cwd").resolve(strict=True)
    except OSError:
        return None


def owned_pid(pidfile: Path, markers: Sequence[str], *, cwd: Path) -> int | None:
    """The pid in `pidfile` if that process is alive, its argv contains every marker and its
    working directory is `cwd` (we start every service inside its own state directory).

    A pidfile that points at a dead process or at a stranger is removed, so the next
    `up` starts cleanly and `down` never touches a process it did not start.
    """
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    argv = " ".join(cmdline(pid))
    ours = all(marker in argv for marker in markers) and cwd_of(pid) == cwd.resolve()
    if is_alive(pid) and ours:
        return pid
    pidfile.unlink(missing_ok=True)
    return None


def spawn(argv: Sequence[str], *, cwd: Path, output: Path, pidfile: Path) -> int:
    """Start argv detached from our session, stdout/stderr appended to `output`.

    The child gets its own session so a Ctrl-C in the terminal that ran `up` does not
    reach it, and no inherited pipe keeps a caller (make, CI) waiting for EOF.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("ab") as log:
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfile.write_text(f"{child.pid}\n")
    return child.pid


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the process to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not is_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def terminate(pid: int, *, kill: bool, timeout: float) -> None:
    """Stop the process: SIGKILL at once if `kill`, else SIGTERM and SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if wait_gone(pid, timeout if not kill else 10.0):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, 10.0):
        raise ServiceError(f"process {pid} did not exit even after SIGKILL.")


def tail(path: Path, lines: int = 5) -> str:
    """Last lines of a log file, for error messages; empty if unreadable."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


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
    """One `python -m streambill.cli <argv>` child with the environment `env`, in its own
    session (so its own process group): a Ctrl-C in the terminal does not reach it, and
    `kill` reaches whatever it forked too (the close job's fold workers). Its output is
    appended to `log`; with `mark_starts`, each start first writes a `=== start N at T`
    line there. It can be started again after it exited or was killed."""

    name: str
    argv: Sequence[str]
    log: Path
    env: dict[str, str]
    mark_starts: bool = False
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            if self.mark_starts:
                out.write(f"\n=== start {self.starts} at {time.time():.3f}\n".encode())
                out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streambill.cli", *self.argv],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        """The exit code once it has exited (reaped), None while it runs or never ran."""
        return None if self.proc is None else self.proc.poll()

    def failure(self) -> str | None:
        """If the child has exited: its code and the last lines of its log, in words."""
        code = self.exit_code()
        if code is None:
            return None
        last = tail(self.log, 15) or "(no log)"
        return f"{self.name} exited with code {code}; last lines of {self.log}:\n{last}"

    def wait(self, timeout: float) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown hook, no final commit."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then `kill` if it has not exited after `timeout` seconds."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def http_answers(url: str) -> bool:
    """True when `url` answers at all (any HTTP status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    check: Callable[[], None] | None = None,
    interval: float = 0.3,
) -> float:
    """Until `ready()` holds; the seconds it took. `check`, called before each try, raises
    when waiting is pointless (the child that should answer has exited); TimeoutError
    naming `what` after `timeout` seconds."""
    started = time.monotonic()
    while True:
        if check is not None:
            check()
        if ready():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not ready in {timeout:.0f}s")
        time.sleep(interval)
