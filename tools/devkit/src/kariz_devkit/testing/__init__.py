"""Test support shared by every service's tests and the cross-service tests.

Backends come from ``KARIZ_TEST_BACKENDS``:
- ``embedded`` (default): the project starts the Tansu broker and SecantusDB itself;
- ``docker``: Apache Kafka and a MongoDB replica set through testcontainers (skipped without Docker);
- ``external``: whatever ``KARIZ_KAFKA_BOOTSTRAP_SERVERS`` and ``KARIZ_MONGODB_URI`` point at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event
from kariz_shared.service import Service


@dataclass(frozen=True)
class Backends:
    kafka_bootstrap: str
    mongodb_uri: str
    kafka_idempotence: bool
    embedded: bool = False
    #: The identity provider whose tokens the services accept (the tests' ``LocalIssuer``).
    auth_issuer: str = ""
    auth_audience: str = "kariz"
    #: Service -> the URI of a database server of its own (the embedded per-service databases of the
    #: bench and the dev stack); a service not in it uses ``mongodb_uri``.
    mongodb_uris: Mapping[str, str] = field(default_factory=dict, compare=False)

    def mongodb_uri_of(self, service: str) -> str:
        return self.mongodb_uris.get(service, self.mongodb_uri)

    def settings(self, service: str | None = None) -> dict[str, Any]:
        """Service settings that point at these backends (at ``service``'s own database, if it has one)."""
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.kafka_bootstrap,
            "mongodb_uri": self.mongodb_uri if service is None else self.mongodb_uri_of(service),
            "kafka_enable_idempotence": self.kafka_idempotence,
            "auth_issuer": self.auth_issuer,
            "auth_audience": self.auth_audience,
            # The tests' webhook receivers listen on plain http, on this machine.
            "webhook_allow_http": True,
        }
        if self.embedded:
            values |= EMBEDDED_CONSUMER_TUNING
        return values

    def env(self, service: str | None = None) -> dict[str, str]:
        """The same, as the environment of a service process."""
        return {
            f"KARIZ_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in self.settings(service).items()
        }


# The embedded broker ignores LeaveGroup: short sessions make a restarted consumer rejoin in seconds.
EMBEDDED_CONSUMER_TUNING = {"kafka_session_timeout_ms": 3000, "kafka_heartbeat_interval_ms": 300}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Record:
    """A Kafka record as an outside subscriber sees it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes

    @property
    def body(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.value)
        return result

    @classmethod
    def of(cls, r: ConsumerRecord[bytes, bytes]) -> Record:
        return cls(
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            key=r.key.decode() if r.key is not None else None,
            headers={k: v.decode(errors="backslashreplace") for k, v in (r.headers or [])},
            value=r.value or b"",
        )


@dataclass
class EventReader:
    """Reads topics from the beginning as an outside subscriber would, without a consumer group."""

    bootstrap: str
    topics: list[str]
    records: list[Record] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> EventReader:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,  # the embedded broker holds a fetch for all of its wait
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for recs in batches.values():
                self.records.extend(Record.of(r) for r in recs)

    async def wait_for(
        self, predicate: Callable[[Record], bool], *, count: int = 1, timeout: float = 30.0
    ) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records if predicate(r)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {timeout}s for {count} matching record(s), saw {len(found)} "
                    f"among {len(self.records)} on {self.topics}"
                )
            await asyncio.sleep(0.05)

    def of(self, topic: str, key: str | None = None) -> list[Record]:
        return [r for r in self.records if r.topic == topic and (key is None or r.key == key)]

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer:
            await self._consumer.stop()


@contextlib.asynccontextmanager
async def reading(bootstrap: str, *topics: str) -> AsyncIterator[EventReader]:
    reader = await EventReader(bootstrap, list(topics)).start()
    try:
        yield reader
    finally:
        await reader.stop()


async def publish(bootstrap: str, envelope: Envelope[Event]) -> None:
    """Publish an event as its producing service would (for feeding a consumer under test)."""
    await publish_raw(bootstrap, envelope.topic, envelope.key.encode(), envelope.value(), envelope.headers())


async def publish_all(bootstrap: str, envelopes: Iterable[Envelope[Any]]) -> None:
    """Publish many events in order with one producer (a producer each costs a connection and its
    metadata round trips: seconds for a few hundred events)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                envelope.topic,
                envelope.value(),
                key=envelope.key.encode(),
                headers=[(k, v.encode()) for k, v in envelope.headers().items()],
            )
    finally:
        await producer.stop()


async def publish_raw(
    bootstrap: str, topic: str, key: bytes | None, value: bytes, headers: dict[str, str] | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value, key=key, headers=[(k, v.encode()) for k, v in (headers or {}).items()]
        )
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(
    service: Service, *, wait: bool = True, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service in-process (consumers, relay, API) and give an HTTP client bound to its API, sending
    ``token`` as its bearer credential (the ``admin_token`` fixture, or one of ``issuer.token``). With
    ``wait=False`` the client comes at once, as a process serves while start-up waits for a dependency."""
    await service.start(wait=wait)
    try:
        transport = httpx.ASGITransport(app=service.api)
        headers = bearer(token) if token else {}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://kariz.test", headers=headers
        ) as client:
            yield client
    finally:
        await service.stop()


def accepting(app: Any, issuer: Any, *, teams: dict[str, list[str]] | None = None) -> None:
    """Make ``app`` (a bare FastAPI app a unit test builds around one router) check tokens of ``issuer``
    (a ``LocalIssuer``) as a service does, with ``teams`` as the roster."""
    from kariz_shared.runtime import auth
    from kariz_shared.runtime.settings import ServiceSettings

    settings = ServiceSettings(auth_issuer=issuer.url, auth_audience=issuer.audience, teams=teams or {})
    auth.install(app, settings)


def bearer(token: str) -> dict[str, str]:
    """The header that carries ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Await ``check()`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
