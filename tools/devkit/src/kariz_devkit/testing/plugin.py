"""pytest fixtures: ``backends`` (a running broker and database for the whole session, and the identity
provider the services accept), ``stack_backends`` (the same with an empty broker of the module's own),
``issuer`` (that provider: ``issuer.token(user, roles, team=...)``),
``admin_token``, and ``settings_for`` (service settings pointing at them, with a database of the test's
own)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, unique
from kariz_shared.messaging.broker import ensure_topics
from kariz_shared.runtime.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _embedded() -> Iterator[Backends]:
    from kariz_devkit.embedded import EmbeddedBackends, free_port

    data = Path(tempfile.mkdtemp(prefix="kariz-test-"))
    running = EmbeddedBackends(kafka_port=free_port(), mongodb_port=free_port(), data_dir=data).start()
    try:
        yield Backends(running.kafka_bootstrap, running.mongodb_uri, kafka_idempotence=False, embedded=True)
    finally:
        running.stop()
        shutil.rmtree(data, ignore_errors=True)


NO_DOCKER = (
    "no Docker engine answers `docker info`: the testcontainers backends (real Kafka, MongoDB) need one"
)


def docker_backends() -> Iterator[Backends]:
    """Apache Kafka (KRaft) and a one-node MongoDB replica set in containers."""
    if not docker_available():
        pytest.skip(NO_DOCKER)
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka:
        mongo = (
            DockerContainer("mongo:7").with_command("--replSet rs0 --bind_ip_all").with_exposed_ports(27017)
        )
        with mongo:
            wait_for_logs(mongo, "Waiting for connections")
            mongo.exec(["mongosh", "--quiet", "--eval", "rs.initiate()"])
            host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
            yield Backends(
                kafka.get_bootstrap_server(),
                f"mongodb://{host}:{port}/?directConnection=true",
                kafka_idempotence=True,
            )


def _external() -> Iterator[Backends]:
    kafka = os.environ.get("KARIZ_KAFKA_BOOTSTRAP_SERVERS")
    mongo = os.environ.get("KARIZ_MONGODB_URI")
    if not kafka or not mongo:
        pytest.skip("KARIZ_TEST_BACKENDS=external needs KARIZ_KAFKA_BOOTSTRAP_SERVERS and KARIZ_MONGODB_URI")
    idem = os.environ.get("KARIZ_KAFKA_ENABLE_IDEMPOTENCE", "true").lower() == "true"
    yield Backends(kafka, mongo, kafka_idempotence=idem)


@pytest.fixture(scope="session")
def backends(issuer: LocalIssuer) -> Iterator[Backends]:
    kind = os.environ.get("KARIZ_TEST_BACKENDS", "embedded")
    factory = {"embedded": _embedded, "docker": docker_backends, "external": _external}.get(kind)
    if factory is None:
        raise pytest.UsageError(f"KARIZ_TEST_BACKENDS={kind!r}: use embedded, docker or external")
    for b in factory():
        asyncio.run(ensure_topics(b.kafka_bootstrap, partitions=3))
        yield dataclasses.replace(b, auth_issuer=issuer.url, auth_audience=issuer.audience)


@pytest.fixture(scope="module")
def stack_backends(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """The session's backends with an empty broker of the module's own (embedded only), for a module
    that runs whole services. Their consumer groups are new and start from the earliest offset: on the
    session broker they first read every earlier test's records (minutes, late in a full run)."""
    if not backends.embedded:
        yield backends
        return
    from kariz_devkit.embedded import EmbeddedBackends, free_port

    broker = EmbeddedBackends(
        kafka_port=free_port(), mongodb_port=0, data_dir=tmp_path_factory.mktemp("broker")
    )
    broker.start_broker()
    try:
        asyncio.run(ensure_topics(broker.kafka_bootstrap, partitions=3))
        yield dataclasses.replace(backends, kafka_bootstrap=broker.kafka_bootstrap)
    finally:
        broker.stop()


@pytest.fixture
def own_backends(tmp_path: Path) -> Iterator[Any]:
    """A broker and a database of this test's own (an ``EmbeddedBackends``), for tests that take them
    down and bring them back. Only the embedded backends can be restarted by a test."""
    from kariz_devkit.embedded import EmbeddedBackends, free_port

    if os.environ.get("KARIZ_TEST_BACKENDS", "embedded") != "embedded":
        pytest.skip("restarting the broker or the database needs the embedded backends")
    # These tests kill the database: what it acknowledged must survive (README, embedded backends).
    running = EmbeddedBackends(
        kafka_port=free_port(), mongodb_port=free_port(), data_dir=tmp_path, sync_on_commit=True
    ).start()
    try:
        asyncio.run(ensure_topics(running.kafka_bootstrap, partitions=3))
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def issuer() -> Iterator[LocalIssuer]:
    """The tests' identity provider: its JWKS over HTTP, tokens from ``issuer.token(user, roles)``."""
    running = LocalIssuer().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def admin_token(issuer: LocalIssuer) -> str:
    return issuer.token("admin@kariz.test", ["admin"])


@pytest.fixture(scope="session")
def settings_for(backends: Backends) -> Callable[..., Any]:
    """``settings_for(LeadsSettings, service_name="leads", reps=...)``: settings on the test backends,
    with a fresh database so tests do not see each other's data. Session-scoped, so a module- or
    session-scoped service fixture can use it too."""

    def make(cls: type[S], **overrides: Any) -> S:
        name = overrides.get("service_name", "test")
        values: dict[str, Any] = {
            **backends.settings(),
            "mongodb_database": unique(f"test_{name}"),
            # Consumer groups of its own: services of other tests may still run in this session.
            "kafka_group_prefix": unique("test"),
            "outbox_poll_interval_s": 0.2,
            "consumer_retry_backoff_s": 0.05,
            **overrides,
        }
        return cls(**values)

    return make
