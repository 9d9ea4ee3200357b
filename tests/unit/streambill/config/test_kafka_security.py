"""The worker's Faust credentials follow the same STREAMBILL_* security settings as
the confluent-kafka clients."""

from __future__ import annotations

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from processors.worker.runtime.credentials import faust_credentials
from streambill.config.kafka_security import aiokafka_security
from streambill.config.settings import Settings


def test_plaintext_needs_no_credentials() -> None:
    assert faust_credentials(Settings()) is None


def test_sasl_ssl_scram() -> None:
    s = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="pw",
    )
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_SSL
    assert creds.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (creds.username, creds.password) == ("svc", "pw")
    assert s.kafka_config()["sasl.mechanism"] == "SCRAM-SHA-512"  # the same for confluent


def test_sasl_plaintext_defaults_to_plain() -> None:
    creds = faust_credentials(Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u"))
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_PLAINTEXT
    assert creds.mechanism is SASLMechanism.PLAIN


def test_ssl_uses_tls() -> None:
    creds = faust_credentials(Settings(security_protocol="SSL"))
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.protocol is AuthProtocol.SSL


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        faust_credentials(Settings(security_protocol="KERBEROS_MAGIC"))


def test_plain_aiokafka_clients_get_the_same_security() -> None:
    assert aiokafka_security(Settings()) == {}
    sasl = aiokafka_security(
        Settings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="svc",
            sasl_password="pw",
        )
    )
    assert sasl["security_protocol"] == "SASL_SSL" and "ssl_context" in sasl
    assert (sasl["sasl_mechanism"], sasl["sasl_plain_username"]) == ("SCRAM-SHA-256", "svc")
    plain = aiokafka_security(Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u"))
    assert plain["sasl_mechanism"] == "PLAIN" and "ssl_context" not in plain
    with pytest.raises(ValueError, match="unsupported"):
        aiokafka_security(Settings(security_protocol="KERBEROS"))
