"""A Kariz service process: HTTP API, Kafka consumers, outbox relay, health and metrics, one lifecycle.

A service builds a :class:`Service`, adds its routers and handlers, and calls :meth:`Service.run`.
Uvicorn serves the API; the lifespan starts MongoDB, the broker and the relay, and on SIGTERM stops
them in reverse order after in-flight work finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from kariz_shared import http
from kariz_shared.consumer import Handler, subscribe
from kariz_shared.events import Event
from kariz_shared.logging import configure_logging
from kariz_shared.messaging import ensure_topics, make_broker
from kariz_shared.metrics import dependency_up, registry
from kariz_shared.outbox import OutboxRelay
from kariz_shared.persistence import Store
from kariz_shared.settings import ServiceSettings

E = TypeVar("E", bound=Event)
StartupHook = Callable[[Store], Awaitable[None]]
Worker = Callable[[], Coroutine[Any, Any, None]]

log = logging.getLogger(__name__)


class Service:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        title: str,
        description: str,
        publishes: Sequence[type[Event]] = (),
        version: str = "0.1.0",
    ) -> None:
        self.settings = settings
        self.name = settings.service_name
        self.title = title
        self.description = description
        self.version = version
        self.publishes = list(publishes)
        self.consumes: list[type[Event]] = []
        self.broker = make_broker(settings)
        self.store = Store(settings)
        self.relay = OutboxRelay(self.store, self.broker, settings)
        # Declared so the AsyncAPI document lists what this service writes; the relay publishes to them.
        for cls in self.publishes:
            self.broker.publisher(
                cls.topic(),
                schema=cls,
                title=cls.topic(),
                description=f"{cls.description} Key: {cls.key_field}.",
            )
        self._startup_hooks: list[StartupHook] = [Store.ensure_indexes]
        self._relay_task: asyncio.Task[None] | None = None
        self._workers: list[tuple[str, Worker]] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self.api = FastAPI(title=title, description=description, version=version, lifespan=self._lifespan)
        http.install(self.api, self.name)
        self._add_operational_routes()

    # --- composition -----------------------------------------------------------------------------

    def subscribe(self, event_cls: type[E], handler: Handler[E], *, group_id: str | None = None) -> None:
        self.consumes.append(event_cls)
        subscribe(self, event_cls, handler, group_id=group_id)

    def on_startup(self, hook: StartupHook) -> StartupHook:
        """Run ``hook(store)`` at start-up, before consuming: indexes, seed data."""
        self._startup_hooks.append(hook)
        return hook

    def add_worker(self, name: str, worker: Worker) -> None:
        """Run ``worker()`` in the background while the service runs (e.g. a delivery loop); it is
        cancelled at shutdown, so it must keep its progress in the database, not in memory."""
        self._workers.append((name, worker))

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        for hook in self._startup_hooks:
            await hook(self.store)
        if self.settings.kafka_create_topics:
            await ensure_topics(
                self.settings.kafka_bootstrap_servers,
                partitions=self.settings.kafka_topic_partitions,
                replication_factor=self.settings.kafka_replication_factor,
            )
        await self.broker.start()
        self._relay_task = asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox-relay")
        self._worker_tasks = [asyncio.create_task(w(), name=f"{self.name}-{n}") for n, w in self._workers]
        log.info("service started", extra={"port": self.settings.http_port})

    async def stop(self) -> None:
        # Consumers first (finish the message in hand), then flush the outbox, then close the clients.
        await self.broker.stop()
        for task in self._worker_tasks:
            task.cancel()
        for task in self._worker_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._worker_tasks = []
        if self._relay_task is not None:
            await self.relay.stop()
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        await self.store.close()
        log.info("service stopped")

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def run(self) -> None:
        """Serve until SIGTERM or Ctrl-C, then shut down gracefully."""
        configure_logging(self.name, self.settings.log_level)
        # Uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the previous handler;
        # this one turns that into a clean exit 0, so Kubernetes and the dev stack see a normal stop.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            self.api,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(self.settings.shutdown_grace_s),
        )

    # --- operational routes ----------------------------------------------------------------------

    async def readiness(self) -> dict[str, bool]:
        checks = {
            "database": await self.store.ping(),
            "broker": await _ping_broker(self.broker),
        }
        for dep, ok in checks.items():
            dependency_up.labels(self.name, dep).set(1 if ok else 0)
        return checks

    def _add_operational_routes(self) -> None:
        @self.api.get("/healthz", tags=["operations"], summary="The process is alive")
        async def healthz() -> dict[str, str]:
            return {"status": "alive", "service": self.name}

        @self.api.get("/readyz", tags=["operations"], summary="Broker and database are reachable")
        async def readyz() -> JSONResponse:
            checks = await self.readiness()
            ready = all(checks.values())
            return JSONResponse(
                status_code=200 if ready else 503,
                content={"status": "ready" if ready else "not ready", "service": self.name, "checks": checks},
            )

        @self.api.get("/metrics", tags=["operations"], summary="Prometheus metrics")
        async def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _ping_broker(broker: Any) -> bool:
    try:
        return bool(await broker.ping(timeout=2.0))
    except Exception:
        return False
