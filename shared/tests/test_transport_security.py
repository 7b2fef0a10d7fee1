"""Kafka's and MongoDB's transport security from the settings, without a server: what FastStream (over
aiokafka) and PyMongo are handed. The defaults must leave them as the embedded broker and database of
the dev stack and the tests speak: plaintext, no authentication."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram512
from pydantic import ValidationError

from kariz_shared.messaging.broker import kafka_client_options, kafka_security, kafka_tls_context, make_broker
from kariz_shared.persistence.store import connect, security_options
from kariz_shared.runtime.settings import ServiceSettings

CA_NAME = "kariz test cluster CA"


@dataclass(frozen=True)
class Pki:
    """A CA's certificate, and a client certificate with its key (separately and in one PEM)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    cert_and_key_file: Path


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey
) -> bytes:
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=subject == CA_NAME, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    client_key_pem = client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    client_cert_pem = _certificate("kariz-leads", client_key, ca_key)
    found = Pki(folder / "ca.crt", folder / "user.crt", folder / "user.key", folder / "user.pem")
    found.ca_file.write_bytes(_certificate(CA_NAME, ca_key, ca_key))
    found.cert_file.write_bytes(client_cert_pem)
    found.key_file.write_bytes(client_key_pem)
    found.cert_and_key_file.write_bytes(client_cert_pem + client_key_pem)
    return found


def settings(**values: Any) -> ServiceSettings:
    return ServiceSettings(service_name="leads", **values)


def test_the_defaults_are_plaintext_without_authentication() -> None:
    plain = settings()
    assert kafka_security(plain) is None
    assert parse_security(kafka_security(plain)) == {}
    assert security_options(plain) == {}


def test_scram_sha_512_over_tls_trusting_the_cluster_ca(pki: Pki) -> None:
    secured = settings(
        kafka_tls=True,
        kafka_tls_ca_file=str(pki.ca_file),
        kafka_sasl_username="kariz-leads-kafka",
        kafka_sasl_password="strimzi-made-this",
    )
    security = kafka_security(secured)
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password) == ("kariz-leads-kafka", "strimzi-made-this")
    context = security.ssl_context
    assert isinstance(context, ssl.SSLContext)
    # Verified, host name included, against exactly the CA given.
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", CA_NAME),),)]
    # What aiokafka is handed, by FastStream's own translation.
    assert parse_security(security) == {
        "security_protocol": "SASL_SSL",
        "ssl_context": context,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "kariz-leads-kafka",
        "sasl_plain_password": "strimzi-made-this",
    }
    assert "strimzi-made-this" not in repr(secured)


def test_the_plain_clients_sign_in_as_the_broker_does(pki: Pki) -> None:
    """The topic admin and ``kariz-dlq`` use aiokafka directly: they get the same SCRAM over TLS."""
    secured = settings(
        kafka_tls=True,
        kafka_tls_ca_file=str(pki.ca_file),
        kafka_sasl_username="kariz-ops-kafka",
        kafka_sasl_password="ops-secret",
    )
    options = kafka_client_options(secured)
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert options["sasl_plain_username"] == "kariz-ops-kafka"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert kafka_client_options(settings()) == {}, "plaintext: nothing added"


def test_the_broker_connects_with_the_security_of_the_settings(pki: Pki) -> None:
    broker = make_broker(
        settings(
            kafka_tls=True,
            kafka_tls_ca_file=str(pki.ca_file),
            kafka_sasl_username="kariz-leads-kafka",
            kafka_sasl_password="pw",
        )
    )
    assert isinstance(broker.specification.security, SASLScram512)
    # The consumers' client is built with it too, not only the producer.
    consumer = broker.config.broker_config.builder.keywords
    assert (consumer["security_protocol"], consumer["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert isinstance(consumer["ssl_context"], ssl.SSLContext)
    # Without security settings, aiokafka's own default: PLAINTEXT.
    assert "security_protocol" not in make_broker(settings()).config.broker_config.builder.keywords


def test_tls_alone_and_scram_alone(pki: Pki) -> None:
    tls_only = kafka_security(settings(kafka_tls=True, kafka_tls_ca_file=str(pki.ca_file)))
    assert type(tls_only) is BaseSecurity
    assert parse_security(tls_only)["security_protocol"] == "SSL"
    scram_only = kafka_security(settings(kafka_sasl_username="u", kafka_sasl_password="p"))
    assert isinstance(scram_only, SASLScram512) and scram_only.ssl_context is None
    assert parse_security(scram_only)["security_protocol"] == "SASL_PLAINTEXT"


def test_a_client_certificate_is_loaded_into_the_tls_context(pki: Pki) -> None:
    def client(key_file: Path) -> ssl.SSLContext | None:
        return kafka_tls_context(
            settings(
                kafka_tls=True,
                kafka_tls_ca_file=str(pki.ca_file),
                kafka_tls_cert_file=str(pki.cert_file),
                kafka_tls_key_file=str(key_file),
            )
        )

    assert isinstance(client(pki.key_file), ssl.SSLContext)
    # Loaded, not just named: a file that is not the certificate's key is refused at once.
    with pytest.raises(ssl.SSLError):
        client(pki.ca_file)


def test_the_password_may_come_from_a_mounted_file(tmp_path: Path) -> None:
    mounted = tmp_path / "password"
    mounted.write_text("from-the-secret-volume\n")
    from_file = settings(kafka_sasl_username="u", kafka_sasl_password_file=str(mounted))
    assert from_file.kafka_sasl_password.get_secret_value() == "from-the-secret-volume"
    # Settings validated again from their own values still agree with the file.
    again = ServiceSettings.model_validate(
        {**from_file.model_dump(), "kafka_sasl_password": from_file.kafka_sasl_password}
    )
    assert again.kafka_sasl_password.get_secret_value() == "from-the-secret-volume"
    mongo = settings(mongodb_username="kariz-leads", mongodb_password_file=str(mounted))
    assert security_options(mongo)["password"] == "from-the-secret-volume"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_tls_ca_file": "/ca.crt"}, "KARIZ_KAFKA_TLS_CA_FILE set, but KARIZ_KAFKA_TLS is off"),
        (
            {"kafka_tls": True, "kafka_tls_key_file": "/k"},
            "KAFKA_TLS_KEY_FILE needs KARIZ_KAFKA_TLS_CERT_FILE",
        ),
        ({"kafka_sasl_username": "u"}, "KARIZ_KAFKA_SASL_USERNAME is set without a password"),
        ({"mongodb_username": "u"}, "KARIZ_MONGODB_USERNAME is set without a password"),
        ({"kafka_sasl_password": "a", "kafka_sasl_password_file": "/etc/hostname"}, "not both"),
        ({"kafka_sasl_password_file": "/nonexistent/password"}, "cannot read /nonexistent/password"),
    ],
)
def test_half_configured_security_stops_the_start(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_mongodb_tls_and_credentials_become_client_options(pki: Pki) -> None:
    options = security_options(
        settings(
            mongodb_tls=True,
            mongodb_tls_ca_file=str(pki.ca_file),
            mongodb_tls_certificate_key_file=str(pki.cert_and_key_file),
            mongodb_username="kariz-leads",
            mongodb_password="pw",
        )
    )
    assert options == {
        "tls": True,
        "tlsCAFile": str(pki.ca_file),
        "tlsCertificateKeyFile": str(pki.cert_and_key_file),
        "username": "kariz-leads",
        "password": "pw",
        "authSource": "admin",
    }
    # A CA file alone is passed alone (PyMongo turns TLS on for it); tls=False is never passed, so a URI's
    # own ssl=true stands.
    assert security_options(settings(mongodb_tls_ca_file=str(pki.ca_file))) == {"tlsCAFile": str(pki.ca_file)}


async def test_pymongo_takes_the_options_and_keeps_the_uris_own_credentials(pki: Pki) -> None:
    operator_uri = "mongodb://kariz-leads:from-the-uri@db-0.db:27017/admin?replicaSet=kariz-mongodb&ssl=true"
    client = connect(settings(mongodb_uri=operator_uri, mongodb_tls_ca_file=str(pki.ca_file)))
    try:
        pool = client.options.pool_options
        assert pool._ssl_context is not None
        assert (pool._credentials.username, pool._credentials.password) == ("kariz-leads", "from-the-uri")
    finally:
        await client.close()
    # Set in the settings, the credentials take the URI's place.
    client = connect(settings(mongodb_uri=operator_uri, mongodb_username="other", mongodb_password="pw"))
    try:
        credentials = client.options.pool_options._credentials
        assert (credentials.username, credentials.password, credentials.source) == ("other", "pw", "admin")
    finally:
        await client.close()
