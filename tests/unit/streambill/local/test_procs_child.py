"""`procs.Child`, the supervised `python -m streambill.cli ...` child of the demo and the
chaos suite: its log, its exit in words, SIGTERM then SIGKILL, and a SIGKILL that
reaches the whole process group. A stand-in `streambill.cli` (first on the child's
PYTHONPATH) plays the child, so nothing here needs Kafka or Redis."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from streambill.config.settings import Settings
from streambill.local import procs

# The stand-in: forks a grandchild that writes its pid, then (unless told to exit) both
# sleep; the parent ignores SIGTERM when asked to, so only SIGKILL ends it.
STAND_IN = """
import os, signal, sys, time
args = sys.argv[1:]
print("child says", *args, flush=True)
if "exit" in args:
    sys.exit(3)
if "stubborn" in args:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    open(os.environ["GRANDCHILD_PIDFILE"], "w").write(str(os.getpid()))
time.sleep(60)
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # `-m` looks in the working directory first
    cli = tmp_path / "stand_in" / "streambill" / "cli"
    cli.mkdir(parents=True)
    (cli.parent / "__init__.py").write_text("")
    (cli / "__init__.py").write_text("")
    (cli / "__main__.py").write_text(STAND_IN)
    return {
        **os.environ,
        "PYTHONPATH": str(cli.parent.parent),
        "GRANDCHILD_PIDFILE": str(tmp_path / "grandchild.pid"),
    }


def _grandchild(env: dict[str, str]) -> int:
    pidfile = Path(env["GRANDCHILD_PIDFILE"])
    procs.wait_ready(lambda: pidfile.exists() and pidfile.read_text() != "", 10, "grandchild")
    return int(pidfile.read_text())


def test_an_exit_is_told_with_its_code_and_log_and_starts_are_marked(
    tmp_path: Path, env: dict[str, str]
) -> None:
    child = procs.Child("job", ["exit"], tmp_path / "logs" / "job.log", env, mark_starts=True)
    assert child.failure() is None and child.exit_code() is None
    for _ in range(2):
        child.start()
        assert child.wait(timeout=20) == 3
    failure = child.failure()
    assert failure is not None and failure.startswith("job exited with code 3; last lines of")
    log = child.log.read_text()
    assert log.count("child says exit") == 2
    assert "=== start 1 at " in log and "=== start 2 at " in log


def test_kill_reaches_what_the_child_forked(tmp_path: Path, env: dict[str, str]) -> None:
    child = procs.Child("worker", ["run"], tmp_path / "worker.log", env)
    child.start()
    grandchild = _grandchild(env)
    assert child.alive()
    child.kill()
    assert not child.alive() and child.exit_code() == -9
    assert procs.wait_gone(grandchild, 10)
    assert "===" not in child.log.read_text()  # no start marks unless asked


def test_stop_escalates_to_sigkill_after_the_grace(tmp_path: Path, env: dict[str, str]) -> None:
    child = procs.Child("api", ["stubborn"], tmp_path / "api.log", env)
    child.start()
    grandchild = _grandchild(env)  # the handler is in place before it forks
    started = time.monotonic()
    child.stop(timeout=0.5)
    assert child.exit_code() == -9 and time.monotonic() - started >= 0.5
    assert procs.wait_gone(grandchild, 10)


def test_wait_ready_checks_before_each_try_and_times_out() -> None:
    tries: list[int] = []
    assert procs.wait_ready(lambda: len(tries) >= 2, 5, "x", check=lambda: tries.append(1)) >= 0
    assert len(tries) == 2
    with pytest.raises(TimeoutError, match="never not ready"):
        procs.wait_ready(lambda: False, 0.2, "never", interval=0.05)


def test_settings_env_gives_a_child_the_same_settings() -> None:
    settings = Settings(admin_key=SecretStr("k" * 32), topic_prefix="t.")
    env = procs.settings_env(settings)
    assert env["STREAMBILL_ADMIN_KEY"] == "k" * 32 and env["STREAMBILL_TOPIC_PREFIX"] == "t."
