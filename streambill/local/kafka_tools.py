"""The broker's own operator commands, run from the jars `services/kafka/pom.xml` resolves:
`streambill services kafka-tool NAME ARGS...`.

`kafka-tools` (the same version as the broker) is one of the pom's dependencies, so the
libs directory `streambill services up` runs the broker from also holds the classes of
`kafka-consumer-groups.sh`, `kafka-delete-records.sh` and `kafka-topics.sh`; `TOOLS` names
them. Nothing here needs a Kafka distribution unpacked, nor the local broker: a tool talks
to `settings.bootstrap_servers` with `settings`' security (a `--command-config` file of
the Java client's form, written to a private temporary file for the run and removed
after), unless the arguments name their own `--bootstrap-server` or `--command-config`.

Invariants:
- The arguments after NAME reach the tool unchanged; only `--bootstrap-server` and
  `--command-config` may be added, and only when absent.
- A libs directory without the tools' jar is completed by Maven first
  (`services.ensure_kafka_jars`), so a cache made before kafka-tools was in the pom works.
Failure consequences: a missing `java` or a Maven failure is a `ServiceError` (one
sentence); the tool's own errors are its output and exit code, passed through.

`parse_group_lag` reads `consumer-groups --describe`'s table back (scripts and tests).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streambill.config.settings import Settings
from streambill.local import procs
from streambill.local.services import ensure_kafka_jars

TOOLS: Mapping[str, str] = {
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
}
TOOL_HEAP = "-Xmx256m"  # what kafka-run-class.sh gives the tools; the machine is shared
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


@dataclass(frozen=True)
class PartitionLag:
    """One row of `consumer-groups --describe`: None where the tool prints `-` (no
    committed offset, hence no lag)."""

    group: str
    topic: str
    partition: int
    committed: int | None
    log_end: int | None
    lag: int | None


def client_properties(settings: Settings) -> dict[str, str]:
    """The Java admin client's security settings equal to `settings.kafka_config()`'s;
    empty for PLAINTEXT. A SASL mechanism it cannot express raises `ValueError`, so a
    tool never silently connects without the credentials the settings name."""
    protocol = settings.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return {}
    props = {"security.protocol": protocol}
    if settings.sasl_mechanism:
        mechanism = settings.sasl_mechanism.upper()
        if mechanism not in _LOGIN_MODULES:
            raise ValueError(f"unsupported STREAMBILL_SASL_MECHANISM {settings.sasl_mechanism!r}")
        props["sasl.mechanism"] = mechanism
        props["sasl.jaas.config"] = (
            f"{_LOGIN_MODULES[mechanism]} required "
            f'username="{_jaas_quote(settings.sasl_username or "")}" '
            f'password="{_jaas_quote(settings.sasl_password or "")}";'
        )
    if settings.ssl_ca_location:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = settings.ssl_ca_location
    return props


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def properties_text(props: Mapping[str, str]) -> str:
    """`key=value` lines in java.util.Properties' syntax (backslashes, line breaks and a
    leading space escaped), so a password with any character reads back as itself."""

    def escape(value: str) -> str:
        out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return "\\" + out if out.startswith(" ") else out

    return "".join(f"{key}={escape(value)}\n" for key, value in props.items())


def _has_option(args: Sequence[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)


def tool_argv(
    java: str,
    libs: Path,
    tool: str,
    args: Sequence[str],
    *,
    bootstrap: str,
    command_config: Path | None = None,
) -> list[str]:
    """The `java` command line of one tool: its class on the libs' classpath, `args` as
    given, plus `--bootstrap-server` and `--command-config` where `args` lack them."""
    if tool not in TOOLS:
        raise ValueError(f"unknown Kafka tool {tool!r}; one of: {', '.join(sorted(TOOLS))}")
    argv = [java, TOOL_HEAP, "-Djava.awt.headless=true", "-cp", f"{libs}/*", TOOLS[tool], *args]
    if not _has_option(args, "--bootstrap-server"):
        argv += ["--bootstrap-server", bootstrap]
    if command_config is not None and not _has_option(args, "--command-config"):
        argv += ["--command-config", str(command_config)]
    return argv


@contextlib.contextmanager
def _command_config(settings: Settings) -> Iterator[Path | None]:
    """A private properties file of `client_properties`, removed afterwards; None when
    the settings need none."""
    props = client_properties(settings)
    if not props:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="streambill-kafka-tool-", suffix=".properties")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp made it 0600
            out.write(properties_text(props))
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def run_tool(
    settings: Settings, tool: str, args: Sequence[str], *, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run one tool to its end against the configured cluster. With `capture`, its
    stdout and stderr are returned as text; else they go to ours."""
    if tool not in TOOLS:
        raise ValueError(f"unknown Kafka tool {tool!r}; one of: {', '.join(sorted(TOOLS))}")
    java = procs.require_program(
        "java", "install a Java 17+ runtime (apt-get install -y openjdk-17-jre-headless)"
    )
    libs = ensure_kafka_jars(settings)
    with _command_config(settings) as config:
        argv = tool_argv(
            java, libs, tool, args, bootstrap=settings.bootstrap_servers, command_config=config
        )
        return subprocess.run(argv, capture_output=capture, text=True, check=False)


def _number(cell: str) -> int | None:
    return None if cell == "-" else int(cell)


def parse_group_lag(text: str) -> list[PartitionLag]:
    """The rows of `consumer-groups --describe` output (any number of groups' tables;
    notes such as "has no active members" are skipped)."""
    rows: list[PartitionLag] = []
    columns: list[str] = []
    for line in text.splitlines():
        cells = line.split()
        if not cells:
            columns = []
            continue
        if cells[0] == "GROUP":
            columns = cells
            continue
        if not columns or len(cells) < len(columns) - 3:  # the member columns may be blank
            continue
        row = dict(zip(columns, cells, strict=False))
        rows.append(
            PartitionLag(
                group=row["GROUP"],
                topic=row["TOPIC"],
                partition=int(row["PARTITION"]),
                committed=_number(row["CURRENT-OFFSET"]),
                log_end=_number(row["LOG-END-OFFSET"]),
                lag=_number(row["LAG"]),
            )
        )
    return rows
