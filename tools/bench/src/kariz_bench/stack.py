"""The stack a benchmark runs on: the backends (embedded by default, external from ``KARIZ_*`` settings)
and the four services as processes, one or more replicas of each consuming service, with their cost
(peak memory, CPU seconds) sampled from the operating system.

The embedded backends give each service a database process of its own (``database-<service>``), as
``make run`` does: one SecantusDB process is one core at most, and four services sharing one wait for
each other's commands. ``shared_database=True`` is the earlier layout (one ``database`` for all), to
compare against."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from kariz_bench import plans
from kariz_devkit.devstack import ServiceProcess, start_service, wait_ready
from kariz_devkit.embedded import EmbeddedBackends, free_port
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, unique
from kariz_devkit.testing.cluster import Sinks, standard_environment
from kariz_shared.contracts.events import EVENTS, Event
from kariz_shared.messaging.broker import ensure_topics
from kariz_shared.system import SERVICE_NAMES as SERVICES

PARTITIONS = 6  # enough for two replicas of every consumer to share work evenly


@dataclass
class Backend:
    """Where the broker and the database run, and their processes when this run started them."""

    backends: Backends
    processes: dict[str, psutil.Process] = field(default_factory=dict)

    #: How the embedded databases were laid out (``kind`` says it).
    layout: str = ""

    @property
    def kind(self) -> str:
        if not self.backends.embedded:
            return "external"
        return f"embedded (Tansu, SecantusDB: {self.layout}), fresh for each phase"

    def mongodb_uri_of(self, service: str) -> str:
        return self.backends.mongodb_uri_of(service)


@contextlib.asynccontextmanager
async def backends(
    *,
    shared_database: bool = False,
    standalone: bool = False,
    released_database: bool = False,
    sync_on_commit: bool = False,
) -> AsyncIterator[Backend]:
    """External backends when ``KARIZ_KAFKA_BOOTSTRAP_SERVERS`` and ``KARIZ_MONGODB_URI`` are set, else
    the embedded ones, started here and stopped at the end: a database process per service, or one
    for all with ``shared_database``; ``standalone`` runs them with ``--standalone`` (no oplog);
    ``released_database`` runs SecantusDB as released, without the fix of
    ``kariz_devkit.embedded_database`` (to measure the fix); ``sync_on_commit`` syncs the database's
    log on every commit, as the dev stack and the tests that kill the database do."""
    kafka, mongo = os.environ.get("KARIZ_KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("KARIZ_MONGODB_URI")
    if kafka and mongo:
        idempotence = os.environ.get("KARIZ_KAFKA_ENABLE_IDEMPOTENCE", "true").lower() == "true"
        yield Backend(Backends(kafka, mongo, kafka_idempotence=idempotence))
        return
    data = Path(tempfile.mkdtemp(prefix="kariz-bench-"))
    running = EmbeddedBackends(
        kafka_port=free_port(),
        mongodb_port=free_port(),
        data_dir=data,
        service_databases={} if shared_database else {name: free_port() for name in SERVICES},
        standalone=standalone,
        fixed_registry=not released_database,
        sync_on_commit=sync_on_commit,
    )
    try:
        running.start()
        uris = running.mongodb_uris
        layout = "one database for all" if shared_database else "a database process per service"
        yield Backend(
            Backends(
                running.kafka_bootstrap,
                # Every service is in ``uris`` when they are per service; this one is then used by none.
                running.mongodb_uri_of(SERVICES[0]),
                kafka_idempotence=False,
                embedded=True,
                mongodb_uris=uris,
            ),
            {p.name: psutil.Process(p.process.pid) for p in running.processes},
            layout=layout
            + (", --standalone" if standalone else "")
            + (", SecantusDB as released" if released_database else "")
            + (", --sync-on-commit" if sync_on_commit else ""),
        )
    finally:
        running.stop()
        shutil.rmtree(data, ignore_errors=True)


async def drop_databases(backend: Backend, names: Mapping[str, str]) -> None:
    """A run leaves nothing behind on backends it did not start: ``names`` is service -> database."""
    for service, name in names.items():
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backend.mongodb_uri_of(service))
        try:
            await client.drop_database(name)
        finally:
            await client.close()


async def start_at_the_end(bootstrap: str, prefix: str) -> None:
    """Commit the end of every event topic for the consumer groups a stack with ``prefix`` will use, so
    its services take only what happens from now on: a new group would otherwise start from the earliest
    record and replay an earlier run's events (on the same backends) before the measured traffic."""

    async def commit_end(service: str, event: type[Event]) -> None:
        group = f"{prefix}-{service}.{event.kebab_name()}"
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(event.topic(), p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
        finally:
            await consumer.stop()

    await asyncio.gather(*(commit_end(service, event) for service in SERVICES for event in EVENTS.values()))


@dataclass
class Usage:
    """What one process (or a group of replicas) cost during a measured phase."""

    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0


class Meter:
    """Samples processes' resident memory while a phase runs, and their CPU time across it."""

    def __init__(self, processes: dict[str, list[psutil.Process]], every_s: float = 0.25) -> None:
        self.processes = processes
        self.every_s = every_s
        self.usage = {name: Usage() for name in processes}
        self._cpu_at_start = {name: self._cpu(procs) for name, procs in processes.items()}
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _cpu(procs: list[psutil.Process]) -> float:
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def _sample(self) -> None:
        for name, procs in self.processes.items():
            rss = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    rss = max(rss, proc.memory_info().rss / 2**20)  # per process: a replica's own peak
            self.usage[name].peak_rss_mb = max(self.usage[name].peak_rss_mb, rss)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.every_s)

    def __enter__(self) -> Meter:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self._sample()
        for name, procs in self.processes.items():
            self.usage[name].cpu_s = self._cpu(procs) - self._cpu_at_start[name]


@dataclass
class Stack:
    """The four services on ``backend``; ``replicas`` of each consuming service (leads takes captures
    over HTTP and is one process, so the ingest side stays the same between runs)."""

    backend: Backend
    sinks: Sinks
    logs: Path
    replicas: int = 1
    processes: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=lambda: {n: unique(f"bench_{n}") for n in SERVICES})
    #: The identity provider the services accept; the bench drives them as an admin.
    issuer: LocalIssuer = field(default_factory=LocalIssuer)

    @property
    def token(self) -> str:
        return self.issuer.token("bench@kariz.test", ["admin"], ttl_s=24 * 3600)

    @property
    def leads_url(self) -> str:
        return self.processes["leads"][0].url

    def environment(self) -> dict[str, str]:
        env = standard_environment(self.backend.backends, self.sinks, ["ana@kariz.test", "ben@kariz.test"])
        return {
            **env,
            "KARIZ_LOG_LEVEL": "WARNING",
            "KARIZ_KAFKA_GROUP_PREFIX": unique("bench"),
            "KARIZ_KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
            # A benchmark does not crash services on purpose: the production relay and lease timings.
            "KARIZ_OUTBOX_POLL_INTERVAL_S": "0.5",
            "KARIZ_OUTBOX_LEASE_S": "15",
            **self.issuer.environment(),
        }

    async def start(self, *, profile: bool = False) -> Stack:
        """Start the services; with ``profile``, each one's database profiles every command from the
        start (``kariz_bench.plans``)."""
        if profile:
            uris = {name: self.backend.mongodb_uri_of(name) for name in self.databases}
            await plans.enable(uris, self.databases)
        await ensure_topics(self.backend.backends.kafka_bootstrap, partitions=PARTITIONS)
        self.issuer.start()
        env = self.environment()
        await start_at_the_end(self.backend.backends.kafka_bootstrap, env["KARIZ_KAFKA_GROUP_PREFIX"])
        for name in SERVICES:
            count = 1 if name == "leads" else self.replicas
            own = {
                "KARIZ_MONGODB_URI": self.backend.mongodb_uri_of(name),
                "KARIZ_MONGODB_DATABASE": self.databases[name],
            }
            for replica in range(count):
                self.processes.setdefault(name, []).append(
                    start_service(
                        name,
                        free_port(),
                        {**env, **own},
                        self.logs / f"replica-{replica}",
                    )
                )
        for replicas in self.processes.values():
            for process in replicas:  # one at a time: wait_ready tells processes apart by name
                await wait_ready([process], timeout=180)
        return self

    async def stop(self) -> None:
        for replicas in self.processes.values():
            for process in replicas:
                await asyncio.to_thread(process.stop)
        await drop_databases(self.backend, self.databases)
        self.issuer.stop()

    async def until_idle(self, *, quiet_s: float = 5.0, timeout_s: float = 1800.0) -> float:
        """Wait until the stack has worked off what it was given: no event waits in any outbox, no
        delivery is pending or being sent, and no consumer has handled an event for ``quiet_s`` (a
        consumer with lag would, as batches come every few milliseconds). Returns the seconds waited."""
        clients: dict[str, AsyncMongoClient[dict[str, Any]]] = {
            name: AsyncMongoClient(self.backend.mongodb_uri_of(name)) for name in self.databases
        }
        started = time.monotonic()
        try:
            handled, quiet_since = -1, time.monotonic()
            while time.monotonic() - started < timeout_s:
                dbs = [clients[service][name] for service, name in self.databases.items()]
                unpublished = sum([await db.outbox.count_documents({"published_at": None}) for db in dbs])
                notifications = clients["notifications"][self.databases["notifications"]]
                undelivered = await notifications.deliveries.count_documents(
                    {"status": {"$in": ["pending", "sending"]}}
                )
                now = sum([await db.processed_events.estimated_document_count() for db in dbs])
                if now != handled or unpublished or undelivered:
                    handled, quiet_since = now, time.monotonic()
                elif time.monotonic() - quiet_since >= quiet_s:
                    return time.monotonic() - started
                await asyncio.sleep(1.0)
            raise TimeoutError(f"the stack was still busy after {timeout_s:.0f} s")
        finally:
            for client in clients.values():
                await client.close()

    def meter(self) -> Meter:
        watched = {
            name: [psutil.Process(p.process.pid) for p in replicas]
            for name, replicas in self.processes.items()
        }
        watched |= {name: [proc] for name, proc in self.backend.processes.items()}
        return Meter(watched)
