"""The operator-command runner's pure parts: the tool's command line, its security file,
reading `consumer-groups --describe` back, and the `streambill services kafka-tool` parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streambill.cli.main import build_parser
from streambill.config.settings import REPO_ROOT, Settings
from streambill.local import kafka_tools, services
from streambill.local.kafka_tools import PartitionLag


def test_each_tool_runs_its_class_from_the_libs_with_the_settings_bootstrap() -> None:
    argv = kafka_tools.tool_argv(
        "/usr/bin/java",
        Path("/libs"),
        "consumer-groups",
        ["--describe", "--all-groups"],
        bootstrap="127.0.0.1:28092",
    )
    assert argv == [
        "/usr/bin/java", kafka_tools.TOOL_HEAP, "-Djava.awt.headless=true", "-cp", "/libs/*",
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--describe", "--all-groups", "--bootstrap-server", "127.0.0.1:28092",
    ]  # fmt: skip
    assert kafka_tools.TOOLS["delete-records"] == "org.apache.kafka.tools.DeleteRecordsCommand"
    assert kafka_tools.TOOLS["topics"] == "org.apache.kafka.tools.TopicCommand"


def test_a_bootstrap_or_command_config_given_is_kept_and_not_added_twice() -> None:
    for given in (["--bootstrap-server", "other:9092"], ["--bootstrap-server=other:9092"]):
        argv = kafka_tools.tool_argv(
            "java", Path("/libs"), "topics", [*given, "--list"], bootstrap="127.0.0.1:1",
            command_config=Path("/tmp/ours.properties"),
        )  # fmt: skip
        assert sum(a.startswith("--bootstrap-server") for a in argv) == 1
        assert argv[-2:] == ["--command-config", "/tmp/ours.properties"]
        assert "127.0.0.1:1" not in argv
    theirs = ["--command-config", "mine.properties", "--list"]
    argv = kafka_tools.tool_argv(
        "java", Path("/l"), "topics", theirs, bootstrap="b:1", command_config=Path("/x")
    )
    assert argv.count("--command-config") == 1 and "/x" not in argv


def test_an_unknown_tool_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="consumer-groups, delete-records, topics"):
        kafka_tools.tool_argv("java", Path("/l"), "reassign-partitions", [], bootstrap="b:1")


def test_plaintext_needs_no_command_config() -> None:
    assert kafka_tools.client_properties(Settings(security_protocol="PLAINTEXT")) == {}


def test_sasl_ssl_settings_become_the_java_clients_properties() -> None:
    props = kafka_tools.client_properties(
        Settings(
            security_protocol="sasl_ssl",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="ops",
            sasl_password='p"a\\ss',
            ssl_ca_location="/etc/ca.pem",
        )
    )
    assert props == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="ops" password="p\\"a\\\\ss";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/etc/ca.pem",
    }
    with pytest.raises(ValueError, match="GSSAPI"):
        kafka_tools.client_properties(
            Settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI")
        )


def test_properties_text_escapes_what_java_properties_would_read_otherwise() -> None:
    text = kafka_tools.properties_text({"a": "x\\y", "b": " lead", "c": "l1\nl2", "d": "p=q"})
    assert text == "a=x\\\\y\nb=\\ lead\nc=l1\\nl2\nd=p=q\n"


DESCRIBE = """
GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                                  HOST            CLIENT-ID
sb.projector    sb.invoices     0          12              12              0               rdkafka-3f0e9a1c-0d7e-4d0b-9b39-2f6f1b0b2a11 /127.0.0.1      rdkafka
sb.projector    sb.invoices     1          -               7               -               rdkafka-3f0e9a1c-0d7e-4d0b-9b39-2f6f1b0b2a11 /127.0.0.1      rdkafka

Consumer group 'other' has no active members.

GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID
other           opsdemo         0          3               5               2               -               -               -
"""  # noqa: E501


def test_describe_rows_are_read_back_with_dashes_as_none() -> None:
    assert kafka_tools.parse_group_lag(DESCRIBE) == [
        PartitionLag("sb.projector", "sb.invoices", 0, 12, 12, 0),
        PartitionLag("sb.projector", "sb.invoices", 1, None, 7, None),
        PartitionLag("other", "opsdemo", 0, 3, 5, 2),
    ]
    assert kafka_tools.parse_group_lag("Consumer group 'x' does not exist.\n") == []


def test_the_command_passes_every_argument_after_the_tool_name_unchanged() -> None:
    args = build_parser().parse_args(
        ["services", "kafka-tool", "consumer-groups", "--describe", "--group", "g", "--help"]
    )
    assert (args.name, args.args) == ("consumer-groups", ["--describe", "--group", "g", "--help"])


def test_the_pom_resolves_kafka_tools_at_the_broker_version() -> None:
    pom = (REPO_ROOT / "services" / "kafka" / "pom.xml").read_text()
    tools = re.search(r"<artifactId>kafka-tools</artifactId>\s*<version>([^<]+)</version>", pom)
    assert tools is not None and tools.group(1) == "${kafka.version}"
    assert f"kafka-tools-{services.KAFKA_VERSION}.jar" in services.REQUIRED_JARS


def test_a_libs_dir_without_the_tools_jar_counts_as_incomplete(tmp_path: Path) -> None:
    settings = Settings(kafka_libs_dir=tmp_path)
    (tmp_path / f"kafka_2.13-{services.KAFKA_VERSION}.jar").touch()
    assert not services._jars_present(settings)
    (tmp_path / f"kafka-tools-{services.KAFKA_VERSION}.jar").touch()
    assert services._jars_present(settings)
