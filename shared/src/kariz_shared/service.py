"""A Kariz service process: HTTP API, Kafka consumers, outbox relay, health and metrics, one lifecycle.

A service builds a :class:`Service`, adds its routers and handlers, and calls :meth:`Service.run`.
Uvicorn serves the API at once; the lifespan connects to MongoDB and the broker in the background,
retrying until both answer, then starts the consumers, the relay and the workers. Until then
``/readyz`` answers 503 and so do the API routes, saying what the service waits for. On SIGTERM it
stops in reverse order after in-flight work finishes.
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
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from kariz_shared.contracts.events import Event, RepProfile
from kariz_shared.contracts.identity import LiveRoster, Roster
from kariz_shared.messaging.broker import ensure_topics, kafka_client_options, make_broker, start_consuming
from kariz_shared.messaging.consumer import Consumer, Handler
from kariz_shared.messaging.outbox import OutboxRelay
from kariz_shared.messaging.state import StateReader, dead_letters_to
from kariz_shared.messaging.timers import TimerWorker
from kariz_shared.persistence.api_keys import MongoApiKeys
from kariz_shared.persistence.rate_limits import MongoRateLimits
from kariz_shared.persistence.store import Store
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork, Subscriptions
from kariz_shared.runtime import auth, http
from kariz_shared.runtime.clock import Clock, SystemClock
from kariz_shared.runtime.logging import configure_logging
from kariz_shared.runtime.metrics import dependency_up, events_published, registry
from kariz_shared.runtime.periodic import refreshing
from kariz_shared.runtime.settings import ServiceSettings

E = TypeVar("E", bound=Event)
StartupHook = Callable[[Store], Awaitable[None]]
Worker = Callable[[], Coroutine[Any, Any, None]]

log = logging.getLogger(__name__)

OPERATIONAL_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"})


class Service:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        title: str,
        description: str,
        publishes: Sequence[type[Event]] = (),
        version: str = "0.1.0",
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        #: Where every piece of this service asks for the time (tests pass a FakeClock).
        self.clock: Clock = clock or SystemClock()
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
            # From 0, so the first event of a topic counts in increase() and a panel has data before it.
            events_published.labels(self.name, cls.topic())
        self._startup_hooks: list[StartupHook] = [Store.ensure_indexes]
        self._hooks_done = 0
        self._startup_task: asyncio.Task[None] | None = None
        self._waiting_for = "start-up"
        #: Set once the start-up hooks ran and the broker is connected: the service does its work.
        self.started = asyncio.Event()
        self._relay_task: asyncio.Task[None] | None = None
        self._workers: list[tuple[str, Worker]] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        # Every service may arm timers; with none armed its worker costs a read per timer_idle_s.
        self.timer_worker = TimerWorker(self.store, self.clock, settings)
        self.add_worker("timers", self.timer_worker.run)
        self.add_worker(
            "timer-gauges",
            refreshing("timers", self.timer_worker.measure, settings.metrics_refresh_interval_s),
        )
        #: Who is in which team, and the reps' profiles (manager, time zone, locale): KARIZ_TEAMS as the
        #: seed, then kariz.reps.v1 as every replica reads it (README, "Teams and the roster").
        self.roster = LiveRoster(Roster.of(settings.teams))
        self.roster_reader: StateReader[RepProfile] | None = None
        if settings.roster_follow:
            self.roster_reader = StateReader(
                RepProfile, settings, dead_letter=dead_letters_to(self.broker), on_change=self.roster.apply
            )
            self.add_worker("roster", self.roster_reader.run)
        docs = settings.api_docs
        self.api = FastAPI(
            title=title,
            description=description,
            version=version,
            lifespan=self._lifespan,
            docs_url="/docs" if docs else None,
            redoc_url=None,
            openapi_url="/openapi.json" if docs else None,
        )
        http.install(self.api, self.name)
        #: Checks the bearer token every service router asks for (``auth.Authenticated``).
        self.verifier = auth.install(self.api, settings, self.roster)
        self._add_operational_routes()

    # --- composition -----------------------------------------------------------------------------

    def subscribe(self, event_cls: type[E], handler: Handler[E], *, group_id: str | None = None) -> None:
        self.consumes.append(event_cls)
        Consumer(self.broker, self.store, self.settings, event_cls, handler, group_id=group_id).register()

    def subscribe_all(self, units: MongoUnitsOfWork[Any], table: Subscriptions[Any]) -> None:
        """Subscribe each ``handle(uow, event)`` of a service's table, in the consumer's transaction."""
        for event_cls, handle in table.items():
            self.subscribe(event_cls, units.handler(handle))

    def on_startup(self, hook: StartupHook) -> StartupHook:
        """Run ``hook(store)`` at start-up, before consuming: indexes, seed data."""
        self._startup_hooks.append(hook)
        return hook

    def accept_api_keys(self) -> MongoApiKeys:
        """Let machines call this service with API keys an admin issues here (``/api-keys``)."""
        keys = MongoApiKeys(self.store)
        self.api.state.api_keys = keys
        self.on_startup(keys.ensure_indexes)
        self.api.include_router(auth.api_key_routes(self.clock))
        return keys

    def limit_rates(self) -> MongoRateLimits:
        """Count the requests of routes that carry ``auth.rate_limited``, per caller and client address."""
        limits = MongoRateLimits(self.store, self.clock, per_minute=self.settings.rate_limit_per_minute)
        self.api.state.rate_limits = limits
        self.on_startup(limits.ensure_indexes)
        return limits

    def allow_body(self, path: str, max_bytes: int) -> None:
        """Let requests to ``path`` carry bodies up to ``max_bytes`` (an upload), beyond the 2 MiB the
        other routes may; the one body-limit middleware checks it."""
        http.allow_body(self.api, path, max_bytes)

    def add_worker(self, name: str, worker: Worker) -> None:
        """Run ``worker()`` in the background while the service runs (e.g. a delivery loop); it is
        cancelled at shutdown, so it must keep its progress in the database, not in memory."""
        self._workers.append((name, worker))

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Connect and start working. With ``wait=False`` return at once and keep connecting in the
        background (the process does this, so probes answer while a dependency is down)."""
        self.started.clear()
        self._startup_task = asyncio.create_task(self._connect_and_start(), name=f"{self.name}-startup")
        if wait:
            await asyncio.shield(self._startup_task)

    async def _connect_and_start(self) -> None:
        delay = self.settings.startup_retry_initial_s
        while True:
            try:
                await self._connect()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "waiting for a dependency",
                    extra={"waiting_for": self._waiting_for, "error": f"{type(exc).__name__}: {exc}"},
                )
                with contextlib.suppress(Exception):
                    await self.broker.stop()  # a half-started broker starts over cleanly
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.startup_retry_max_s)
        self._relay_task = asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox-relay")
        self._worker_tasks = [asyncio.create_task(w(), name=f"{self.name}-{n}") for n, w in self._workers]
        self._waiting_for = ""
        self.started.set()
        log.info("service started", extra={"port": self.settings.http_port})

    async def _connect(self) -> None:
        self._waiting_for = "database"
        # Hooks are idempotent (indexes, seed data); the ones that succeeded are not run again.
        while self._hooks_done < len(self._startup_hooks):
            await self._startup_hooks[self._hooks_done](self.store)
            self._hooks_done += 1
        self._waiting_for = "broker"
        if self.settings.kafka_create_topics:
            await ensure_topics(
                self.settings.kafka_bootstrap_servers,
                partitions=self.settings.kafka_topic_partitions,
                replication_factor=self.settings.kafka_replication_factor,
                client_options=kafka_client_options(self.settings),
            )
        await start_consuming(self.broker)

    async def stop(self) -> None:
        if self._startup_task is not None and not self._startup_task.done():
            self._startup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._startup_task
        # Consumers first (finish the message in hand), then flush the outbox, then close the clients.
        with contextlib.suppress(Exception):
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
            self._relay_task = None
        self.started.clear()
        await self.store.close()
        log.info("service stopped")

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start(wait=False)
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
        database, broker = await asyncio.gather(self.store.ping(), self._ping_broker())
        checks = {"database": database, "broker": broker}
        for dep, ok in checks.items():
            dependency_up.labels(self.name, dep).set(1 if ok else 0)
        checks["started"] = self.started.is_set()
        if self.roster_reader is not None:
            # Until the roster is read to its end a manager could see too little (or, mid-way through a
            # rep's moves, their old team): wait for it, but only state_catch_up_s (StateReader.ready).
            checks["roster"] = self.roster_reader.ready()
        return checks

    async def _ping_broker(self) -> bool:
        if not self.broker.running:
            return await _reachable(self.settings.kafka_bootstrap_servers)
        try:
            return bool(await self.broker.ping(timeout=2.0))
        except Exception:
            return False

    def _add_operational_routes(self) -> None:
        @self.api.middleware("http")
        async def unavailable_until_started(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            # Before start-up finished, the rule sets, indexes or broker a route relies on may be missing.
            if self.started.is_set() or request.url.path in OPERATIONAL_PATHS:
                return await call_next(request)
            return JSONResponse(
                status_code=503,
                content=http.error_body(
                    "starting",
                    f"{self.name} is starting: waiting for the {self._waiting_for}; nothing was changed, "
                    "try again",
                ),
                headers={"Retry-After": "2"},
            )

        @self.api.get("/healthz", tags=["operations"], summary="The process is alive")
        async def healthz() -> dict[str, str]:
            return {"status": "alive", "service": self.name}

        @self.api.get(
            "/readyz", tags=["operations"], summary="Broker and database are reachable, the roster is read"
        )
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


async def _reachable(bootstrap_servers: str, timeout: float = 1.0) -> bool:
    """Some bootstrap server accepts a TCP connection (before the client connected, it has no ping)."""
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        except (OSError, ValueError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False
