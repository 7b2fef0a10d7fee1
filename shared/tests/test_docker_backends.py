"""Where a Docker engine exists, the real Apache Kafka and MongoDB start through testcontainers and
answer; elsewhere this is skipped with the reason. Run the whole suite on them with
``KARIZ_TEST_BACKENDS=docker make test``."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from kariz_devkit.testing.plugin import NO_DOCKER, docker_available, docker_backends

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not docker_available(), reason=NO_DOCKER)]


async def test_real_kafka_and_mongodb_replica_set_answer() -> None:
    for backends in docker_backends():
        admin = AIOKafkaAdminClient(bootstrap_servers=backends.kafka_bootstrap)
        await admin.start()
        try:
            assert isinstance(await admin.list_topics(), list)
        finally:
            await admin.close()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(backends.mongodb_uri)
        hello = await client.admin.command("hello")
        assert hello.get("setName"), "transactions need a replica set"
        await client.close()
