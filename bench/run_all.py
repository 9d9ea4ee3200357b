"""`bench/run`: every benchmark at its headline size and at scaling sizes, against a Kafka
and a Redis of its own, then `bench/RESULTS.md`.

    bench/run [--quick] [--only fold,close] [--headline-only] [--out PATH]
    bench/run --render bench/results.json      # re-render a report from saved results

Kafka and Redis are started with `streambill services up` in a fresh state directory on
ports of their own (free ones picked at start unless given) and always stopped again
(`services down` in a `finally`, SIGTERM and SIGHUP turned into the same unwinding), so
the shared development services are never touched. Each script runs as a child process
in a session of its own, so a timeout or an interrupt ends it and its workers together.
The parsed results are saved as JSON next to the report; `--only` re-runs some
benchmarks and keeps the other benchmarks' runs from that file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import report as rep
from bench.plan import NAMES, Invocation, plan
from streambill.local.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "bench"
README = ROOT / "README.md"
README_START, README_END = "<!-- bench:headline:start -->", "<!-- bench:headline:end -->"


# --- services ---------------------------------------------------------------------------


def service_env(state_dir: Path, kafka: int, controller: int, redis_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STREAMBILL_STATE_DIR": str(state_dir),
        "STREAMBILL_KAFKA_PORT": str(kafka),
        "STREAMBILL_KAFKA_CONTROLLER_PORT": str(controller),
        "STREAMBILL_REDIS_PORT": str(redis_port),
        "STREAMBILL_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "STREAMBILL_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }


def _streambill(env: Mapping[str, str], *args: str) -> int:
    cmd = [sys.executable, "-m", "streambill.cli", *args]
    return subprocess.run(cmd, env=dict(env), cwd=ROOT, check=False).returncode


@contextlib.contextmanager
def services(env: Mapping[str, str]) -> Iterator[None]:
    """Kafka + Redis up for the block, down afterwards whatever happens (also after a
    half-failed `up`: `down` stops only what this state directory started)."""
    try:
        if _streambill(env, "services", "up") != 0:
            raise SystemExit("`streambill services up` failed; see its output above")
        yield
    finally:
        _streambill(env, "services", "down")


def _service_pids(env: Mapping[str, str]) -> list[int]:
    state = Path(env["STREAMBILL_STATE_DIR"])
    pids = []
    for pidfile in (state / "kafka" / "kafka.pid", state / "redis" / "redis.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pidfile.read_text().split()[0]))
    return pids


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- one benchmark run ------------------------------------------------------------------


def _running(proc: subprocess.Popen[str]) -> bool:
    """The script, or anything it started in its session (a worker, the API server)."""
    if proc.poll() is None:
        return True
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _end_group(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    """SIGTERM to the script's session, SIGKILL after `grace` if anything is left: after
    a timeout or an interrupt, and after a normal exit for what the script left behind."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _running(proc):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while _running(proc) and time.monotonic() < deadline:
            time.sleep(0.1)


def run_one(inv: Invocation, env: Mapping[str, str], timeout: float, log: Path) -> rep.Run:
    argv = inv.argv()
    print(f"\n=== {inv.bench} [{inv.axis}]: {shlex.join(argv)}", flush=True)
    pids = _service_pids(env)
    service0, cpu0 = sum(_cpu_of(p) for p in pids), _children_cpu()
    load, started, t0 = os.getloadavg()[0], _now(), time.monotonic()
    lines: list[str] = []
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, env=dict(env), text=True, bufsize=1,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not line.startswith(rep.RESULT_PREFIX):
                print(f"  {line}", end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    error = None
    try:
        code = proc.wait(timeout)
        if code != 0:
            error = f"exit status {code}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f}s"
    finally:
        _end_group(proc)  # also on KeyboardInterrupt: nothing of ours keeps running
        reader.join(5)
    seconds = time.monotonic() - t0
    output = "".join(lines)
    log.write_text(output)
    try:
        results = tuple(rep.parse_results(output))
    except (ValueError, KeyError) as exc:
        results, error = (), f"unparsable RESULT line: {exc}"
    if error is None and not results:
        error = "no RESULT line printed"
    if error:
        print(f"  -> FAILED: {error} (output in {log})", flush=True)
    return rep.Run(
        bench=inv.bench, axis=inv.axis, argv=argv, started=started, seconds=seconds,
        cpu_seconds=_children_cpu() - cpu0,
        service_cpu_seconds=sum(_cpu_of(p) for p in pids) - service0 if pids else None,
        load_before=load, results=results, error=error,
    )  # fmt: skip


# --- the machine ------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def versions(env: Mapping[str, str]) -> dict[str, str]:
    import confluent_kafka
    import redis

    from streambill.local.services import KAFKA_VERSION

    found = {
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "Kafka": f"{KAFKA_VERSION} (one KRaft broker, `streambill services up`)",
        "Java": _first_line(["java", "-version"]),
        "confluent-kafka / librdkafka": (
            f"{confluent_kafka.__version__} / {confluent_kafka.libversion()[0]}"
        ),
    }
    try:
        info = redis.Redis.from_url(env["STREAMBILL_REDIS_URL"]).info("server")
        found["Redis"] = str(info["redis_version"])
    except redis.RedisError:
        found["Redis"] = _first_line(["redis-server", "--version"])
    return found


def machine(env: Mapping[str, str], load_before: tuple[float, float, float]) -> rep.Machine:
    commit = _first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return rep.Machine(
        cores=int(_first_line(["nproc"])), cpu_model=_cpu_model(), memory_gib=_memory_gib(),
        load_before=load_before, load_after=os.getloadavg(), versions=versions(env),
        date=_now(), commit=commit,
    )  # fmt: skip


# --- saved results ----------------------------------------------------------------------


def save(report: rep.Report, path: Path) -> None:
    path.write_text(json.dumps(dataclasses.asdict(report), indent=1) + "\n")


def load(path: Path) -> rep.Report:
    data: dict[str, Any] = json.loads(path.read_text())
    m = data["machine"]
    runs = tuple(
        rep.Run(**{**r, "argv": tuple(r["argv"]),
                   "results": tuple(rep.Result(**x) for x in r["results"])})
        for r in data["runs"]
    )  # fmt: skip
    mach = rep.Machine(**{**m, "load_before": tuple(m["load_before"]),
                          "load_after": tuple(m["load_after"])})  # fmt: skip
    return rep.Report(mach, runs, data["quick"], data["total_seconds"], tuple(data["notes"]))


def update_readme(report: rep.Report, readme: Path = README) -> bool:
    """Replace the README's headline block (between the markers) with this report's;
    False (and the file untouched) when the markers are missing."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = (
        f"{README_START}\nMeasured by `bench/run` on {report.machine.date} "
        f"({report.machine.cores} cores, {report.machine.cpu_model}); full report with "
        f"scaling tables: [bench/RESULTS.md](bench/RESULTS.md).\n\n"
        f"{rep.headline_table(report.runs)}\n{README_END}"
    )
    readme.write_text(head + block + tail)
    return True


# --- main -------------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(NAMES)}")
    ap.add_argument("--headline-only", action="store_true", help="no scaling runs")
    ap.add_argument("--out", type=Path, help="report path (default bench/RESULTS[.quick].md)")
    ap.add_argument("--render", type=Path, metavar="JSON", help="only re-render saved results")
    ap.add_argument("--timeout", type=float, help="seconds per run (default 1800, quick 300)")
    ap.add_argument("--kafka-port", type=int, help="default: a free port")
    ap.add_argument("--controller-port", type=int, help="default: a free port")
    ap.add_argument("--redis-port", type=int, help="default: a free port")
    ap.add_argument("--keep-state", action="store_true", help="keep the services' state dir")
    return ap.parse_args()


def main() -> int:
    args = arguments()
    suffix = ".quick" if args.quick else ""
    out = args.out or ROOT / "bench" / f"RESULTS{suffix}.md"
    saved = out.with_name(f"results{suffix}.json") if args.out is None else out.with_suffix(".json")
    if args.render:
        report = load(args.render)
        out.write_text(rep.render(report))
        print(f"wrote {out}")
        return 0
    only = tuple(n for n in args.only.split(",") if n)
    invocations = plan(quick=args.quick, only=only, headline_only=args.headline_only)
    timeout = args.timeout or (300.0 if args.quick else 1800.0)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="streambill-bench-"))
    ports = [args.kafka_port, args.controller_port, args.redis_port]
    env = service_env(state, *(port or free_port() for port in ports))
    load_before, t0 = os.getloadavg(), time.monotonic()
    runs: list[rep.Run] = []
    try:
        with services(env):
            mach0 = machine(env, load_before)  # versions need Redis up
            for i, inv in enumerate(invocations):
                if inv.bench == "close":  # its --bootstrap defaults to the shared broker
                    bootstrap = env["STREAMBILL_BOOTSTRAP_SERVERS"]
                    inv = dataclasses.replace(inv, flags={**inv.flags, "--bootstrap": bootstrap})
                runs.append(run_one(inv, env, timeout, ARTIFACTS / f"{i:02d}-{inv.bench}.log"))
    finally:
        if not args.keep_state:
            shutil.rmtree(state, ignore_errors=True)
    mach = dataclasses.replace(mach0, load_after=os.getloadavg())
    notes: tuple[str, ...] = ()
    if only and saved.exists():
        kept = tuple(r for r in load(saved).runs if r.bench not in only)
        runs = [*kept, *runs]
        if kept:
            notes = (f"Runs of {', '.join(sorted({r.bench for r in kept}))} were kept from an "
                     "earlier `bench/run` (see their start times in the run log).",)  # fmt: skip
    runs.sort(key=lambda r: NAMES.index(r.bench))
    report = rep.Report(mach, tuple(runs), args.quick, time.monotonic() - t0, notes)
    save(report, saved)
    out.write_text(rep.render(report))
    print(f"\nwrote {out} and {saved}; raw output in {ARTIFACTS}")
    if not args.quick and args.out is None and not update_readme(report):
        print(f"README.md has no {README_START} block; not updated")
    failed = [r for r in runs if r.error]
    for r in failed:
        print(f"FAILED: {r.bench} [{r.axis}] {shlex.join(r.argv)}: {r.error}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:  # services and scripts were stopped on the way out
        print(f"bench/run interrupted ({exc or 'Ctrl-C'}); no report written", file=sys.stderr)
        sys.exit(130)
