"""The background loop that captures CSV imports, and the wiring of imports into the leads service.

Each replica runs one worker. It claims the oldest job nobody holds (a lease in the job's document,
renewed with every chunk), captures it chunk by chunk and looks for the next. A worker that is stopped
lets the chunk in hand commit (or fail) and hands its job back at once; one that died holds it until
the lease runs out, then another takes it over and starts at the first chunk not captured. The
database being away is waited out; a chunk that fails for another reason is tried again, and after
three failures in a row the job is ``failed`` with why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

from pymongo.errors import ConnectionFailure, PyMongoError

from kariz_leads.adapters.import_metrics import PrometheusImportMetrics
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.domain.imports import MAX_BYTES, ImportJob, LeaseLost
from kariz_leads.entrypoints import imports as imports_http
from kariz_leads.service_layer.imports import ImportRunner
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_leads.settings import LeadsSettings
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.logging import actor, correlation_id, on_behalf_of
from kariz_shared.service import Service

log = logging.getLogger(__name__)

#: Failures in a row of one chunk (not outages) after which its job is failed.
ATTEMPTS = 3


class ImportWorker:
    def __init__(
        self, runner: ImportRunner, *, idle_s: float = 1.0, backoff_s: float = 1.0, sweep_s: float = 300.0
    ) -> None:
        self.runner, self.idle_s, self.backoff_s = runner, idle_s, backoff_s
        #: How often an idle worker deletes the files of uploads that never got their job.
        self.sweep_s = sweep_s
        self.token = f"imports-{uuid.uuid4().hex}"
        self._wake = asyncio.Event()
        self._swept_at: float | None = None

    def nudge(self) -> None:
        """A job was stored: look for it now rather than at the next idle look."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                job = await self._claim()
            except PyMongoError as exc:
                log.warning("import claim failed", extra={"error": f"{type(exc).__name__}: {exc}"})
                await asyncio.sleep(self.backoff_s)
                continue
            if job is None:
                await self._sweep_now_and_then()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_s)
                continue
            await self.work(job)

    async def _sweep_now_and_then(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._swept_at is not None and now - self._swept_at < self.sweep_s:
            return
        self._swept_at = now
        try:
            dropped = await self.runner.sweep_orphans()
        except PyMongoError as exc:
            log.warning("import sweep failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return
        if dropped:
            log.info("files of unfinished uploads deleted", extra={"files": dropped})

    async def _claim(self) -> ImportJob | None:
        """A claim, not left half done when the worker is stopped (a job it took is handed back)."""
        claiming = asyncio.ensure_future(self.runner.claim(self.token))
        try:
            return await asyncio.shield(claiming)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                claimed = await asyncio.shield(claiming)
                if claimed is not None:
                    await asyncio.shield(self.runner.release(claimed.id, self.token))
            raise

    async def work(self, job: ImportJob) -> None:
        """Capture a claimed job to its end, or until its lease is lost or the worker is stopped."""
        log.info("import started", extra={"import_id": job.id, "rows": job.rows_total})
        failures = 0
        in_hand: asyncio.Task[ImportJob] | None = None
        try:
            with _acting_for(job):
                while not job.finished:
                    try:
                        # Shielded: a worker that is stopped lets the chunk in hand commit or fail
                        # whole (below), rather than leave its transaction half done on the server.
                        in_hand = asyncio.ensure_future(self.runner.capture_next_chunk(job.id, self.token))
                        job = await asyncio.shield(in_hand)
                        failures = 0
                    except LeaseLost:
                        log.warning("import taken over by another worker", extra={"import_id": job.id})
                        return
                    except ConnectionFailure:
                        await asyncio.sleep(self.backoff_s)  # an outage: waited out, not counted
                        continue
                    except Exception as exc:
                        failures = await self._failed(job, failures, exc)
                    if failures >= ATTEMPTS:
                        return
        except asyncio.CancelledError:
            if in_hand is not None and not in_hand.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(in_hand)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.runner.release(job.id, self.token))
            raise
        log.info(
            "import finished",
            extra={"import_id": job.id, "status": job.status.value, "created": job.created},
        )

    async def _failed(self, job: ImportJob, failures: int, exc: Exception) -> int:
        failures += 1
        log.exception("import chunk failed", extra={"import_id": job.id, "chunk": job.next_chunk})
        if failures >= ATTEMPTS:
            reason = f"chunk {job.next_chunk + 1} of {job.chunks_total} failed {ATTEMPTS} times: {exc}"
            with contextlib.suppress(Exception):
                await self.runner.fail(job.id, self.token, reason)
        else:
            await asyncio.sleep(self.backoff_s)
        return failures


@contextlib.contextmanager
def _acting_for(job: ImportJob) -> Iterator[None]:
    """The job's starter is the actor of what the worker does for it (``ce_actor``, the logs)."""
    tokens = (actor.set(job.started_by), on_behalf_of.set(job.on_behalf_of))
    cid = correlation_id.set(job.correlation_id)
    try:
        yield
    finally:
        correlation_id.reset(cid)
        on_behalf_of.reset(tokens[1])
        actor.reset(tokens[0])


def install(
    service: Service,
    units: UnitsOfWork[LeadsUnitOfWork],
    team: SalesTeam,
    sla: ResponseSla,
    settings: LeadsSettings,
) -> ImportWorker:
    """CSV imports in a leads service: the routes (with their 50 MB body allowance) and the worker."""
    runner = ImportRunner(
        units,
        team,
        sla,
        lease=timedelta(seconds=settings.import_lease_s),
        metrics=PrometheusImportMetrics(),
        chunk_timeout_s=settings.consumer_transaction_timeout_s,
    )
    worker = ImportWorker(runner, idle_s=settings.import_idle_s)
    service.allow_body(imports_http.PATH, MAX_BYTES)
    service.api.include_router(imports_http.router(units, team, on_upload=worker.nudge))
    service.add_worker("imports", worker.run)
    return worker
