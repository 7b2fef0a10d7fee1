"""What the embedded backends hand to the services (no server is started here)."""

from __future__ import annotations

from pathlib import Path

from pymongo import AsyncMongoClient

from kariz_devkit.embedded import EmbeddedBackends


async def test_the_embedded_database_uri_turns_retryable_writes_off_and_connects_directly() -> None:
    backends = EmbeddedBackends(kafka_port=9092, mongodb_port=27017, data_dir=Path("/nonexistent"))
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(backends.mongodb_uri, connect=False)
    try:
        # SecantusDB scans every retryable-write record it keeps on each write (see mongodb_uri).
        assert client.options.retry_writes is False
        assert client.options.direct_connection is True
        assert backends.kafka_bootstrap == "127.0.0.1:9092"
    finally:
        await client.close()
