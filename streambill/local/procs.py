"""Start, find and stop the local service processes that `streambill services` owns.

A process is ours only if its pidfile names it AND its command line still carries the
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
import time
from collections.abc import Sequence
from pathlib import Path


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
