"""CSV imports: start one from an uploaded file, capture its chunks, read how far it got.

A file is read whole before anything is stored (a bad file is refused as a whole), then stored as
chunks of rows and a queued job. A worker claims a job under a lease and captures one chunk per unit of
work: the chunk's leads (through the capture path every lead takes), its failed rows and the job's
progress commit together, so a worker that dies mid-chunk leaves nothing of that chunk and the next
worker starts at the first chunk not captured. A new lead's id comes from the job and the row, so even
the same chunk run twice could not make two leads of one row.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Protocol

from kariz_leads.domain.assignment import AssignedBy, Rotation, SalesTeam
from kariz_leads.domain.history import LeadChange, LeadChangeKind
from kariz_leads.domain.imports import (
    CHUNK_ROWS,
    ChunkOutcome,
    Column,
    DuplicatePolicy,
    ImportJob,
    ImportOptions,
    ImportStatus,
    InvalidRow,
    LeaseLost,
    Row,
    RowFailure,
    chunked,
    filled,
    read_file,
    row_consent,
    row_details,
)
from kariz_leads.domain.intake import LeadDetails
from kariz_leads.domain.lead import Lead
from kariz_leads.domain.response import ResponseSla
from kariz_leads.service_layer.handlers import CaptureLine, TurnsTaken, capture_lines
from kariz_leads.service_layer.merge import survivors_by_address
from kariz_leads.service_layer.unit_of_work import ONE_LEAD_PER_ADDRESS, LeadsUnitOfWork
from kariz_shared.contracts.errors import DuplicateRecord, NotFound, found
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

#: Chunks stored this long ago without a job are an upload that never finished (its job is stored a
#: moment after its last chunk, whatever the file's size).
ORPHAN_AGE = timedelta(minutes=15)

#: Chunks stored per unit of work at upload: a 100,000-row file is some twenty writes of a few MB.
CHUNKS_PER_UNIT = 10
#: The namespace of the ids an import's leads and stories get from their job and row.
IMPORT_IDS = uuid.UUID("5b0f3c1e-2f43-4a0e-9a7e-6a1d3c0b4f21")


class ImportMetrics(Protocol):
    """Rows by outcome (created, duplicate, failed); observed once their chunk committed."""

    def rows(self, outcome: str, count: int) -> None: ...


class NoMetrics:
    def rows(self, outcome: str, count: int) -> None:
        pass


@dataclass(frozen=True)
class Upload:
    """A file as the HTTP route hands it over, with how to read it."""

    data: bytes
    filename: str | None
    options: ImportOptions
    encoding: str | None = None
    delimiter: str | None = None
    mapping: Mapping[str, str] | None = None


async def start_import(
    units: UnitsOfWork[LeadsUnitOfWork],
    upload: Upload,
    *,
    by: Actor,
    correlation_id: str,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportJob:
    """Read the file (``InvalidFile`` when it cannot be imported; nothing is stored then), store its
    chunks and a queued job. Reading runs off the event loop: a 50 MB file takes a moment."""
    csv_file = await asyncio.to_thread(
        read_file, upload.data, encoding=upload.encoding, delimiter=upload.delimiter, mapping=upload.mapping
    )
    chunks = chunked(csv_file.rows, chunk_rows)
    now = units.clock.now()
    job = ImportJob(
        id=str(uuid.uuid4()),
        filename=upload.filename,
        started_by=by.who,
        on_behalf_of=by.on_behalf_of,
        options=upload.options,
        encoding=csv_file.encoding,
        delimiter=csv_file.delimiter,
        columns={column.value: header for column, header in csv_file.columns.items()},
        rows_total=len(csv_file.rows),
        chunks_total=len(chunks),
        correlation_id=correlation_id,
        created_at=now,
        updated_at=now,
    )
    # The chunks first, the job last: until the job is stored no worker looks for its chunks.
    try:
        for first in range(0, len(chunks), CHUNKS_PER_UNIT):

            async def store_chunks(uow: LeadsUnitOfWork, first: int = first) -> None:
                uow.imports.add_chunks(job.id, first, chunks[first : first + CHUNKS_PER_UNIT])

            await units.run(store_chunks, correlation_id=correlation_id)

        async def store_job(uow: LeadsUnitOfWork) -> None:
            await uow.imports.add(job)

        await units.run(store_job, correlation_id=correlation_id)
    except BaseException:
        # An upload that fails halfway (the database went away, the client hung up) leaves no chunks
        # without a job; those of a replica that died here are swept by the workers (sweep_orphans).
        await asyncio.shield(_drop_unless_stored(units, job.id))
        raise
    return job


async def _drop_unless_stored(units: UnitsOfWork[LeadsUnitOfWork], job_id: str) -> None:
    async def drop(uow: LeadsUnitOfWork) -> None:
        # A job whose insert committed though its answer was lost keeps its file.
        if await uow.imports.get(job_id) is None:
            await uow.imports.drop_chunks(job_id)

    try:
        await units.run(drop)
    except Exception:
        log.warning("the chunks of a failed upload stay for the sweep", extra={"import_id": job_id})


# --- the worker's steps ----------------------------------------------------------------------------


class FixedOwner(SalesTeam):
    """Every new lead of an import goes to the owner its importer named (no assignment rule applies)."""

    follows_assignment_rules = False

    def rotation_for(self, country: str | None) -> Rotation:
        return Rotation(key=f"owner:{self.reps[0]}", reps=self.reps[:1], assigned_by=AssignedBy.MANUAL)


class ImportRunner:
    """Claims import jobs and captures their chunks, one unit of work per chunk."""

    def __init__(
        self,
        units: UnitsOfWork[LeadsUnitOfWork],
        team: SalesTeam,
        sla: ResponseSla,
        *,
        lease: timedelta = timedelta(seconds=60),
        metrics: ImportMetrics | None = None,
        chunk_timeout_s: float | None = None,
    ) -> None:
        self.units, self.team, self.sla, self.lease = units, team, sla, lease
        #: A chunk's unit is larger than an HTTP write's: it may take longer on a loaded database.
        self.chunk_timeout_s = chunk_timeout_s
        self.metrics = metrics or NoMetrics()

    async def claim(self, token: str) -> ImportJob | None:
        """Take the oldest job that nobody holds (or whose holder's lease ran out), or None."""

        async def take(uow: LeadsUnitOfWork) -> ImportJob | None:
            now = uow.clock.now()
            job = await uow.imports.next_claimable(now)
            if job is None:
                return None
            job.claim(token, now, self.lease)
            await uow.imports.save(job)
            return job

        return await self.units.run(take)

    async def sweep_orphans(self) -> int:
        """Delete the chunks that have had no job for ``ORPHAN_AGE`` (an upload whose replica died between
        its chunks and its job); how many files it deleted."""

        async def sweep(uow: LeadsUnitOfWork) -> int:
            return await uow.imports.drop_orphan_chunks(uow.clock.now() - ORPHAN_AGE)

        return await self.units.run(sweep)

    async def run(self, job: ImportJob, token: str, *, stop: Callable[[], bool] | None = None) -> ImportJob:
        """Capture chunk after chunk of a claimed job until it is done (or ``stop()`` says so)."""
        while not job.finished and not (stop and stop()):
            job = await self.capture_next_chunk(job.id, token)
        return job

    async def capture_next_chunk(self, job_id: str, token: str) -> ImportJob:
        """Capture the job's next chunk, its failures and its progress in one unit of work;
        ``LeaseLost`` (nothing written) when another worker holds the job now."""
        turns = TurnsTaken()  # kept across the unit's retries, as a capture keeps them

        async def work(uow: LeadsUnitOfWork) -> ImportJob:
            job = found(await uow.imports.get(job_id), f"no import with id {job_id!r}")
            job.held_by(token)
            if job.finished:
                return job
            index = job.next_chunk
            rows = await uow.imports.chunk(job.id, index)
            outcome = await self._capture_rows(uow, job, rows, turns)
            job.advance(outcome, len(rows), uow.clock.now(), self.lease)
            await uow.imports.save(job)
            if job.finished:  # the file is not kept once it is imported
                await uow.imports.drop_chunks(job.id)
            if outcome.failures:
                uow.imports.add_failures(job.id, index, outcome.failures)
            for name, count in (
                ("created", outcome.created),
                ("duplicate", outcome.duplicates),
                ("failed", outcome.failed),
            ):
                if count:
                    uow.after_commit(partial(self.metrics.rows, name, count))
            return job

        try:
            return await self.units.run(work, timeout_s=self.chunk_timeout_s)
        except DuplicateRecord as exc:
            if exc.index != ONE_LEAD_PER_ADDRESS:
                raise
            # A capture of one of these addresses committed meanwhile: it is known now, a touch.
            return await self.units.run(work, timeout_s=self.chunk_timeout_s)

    async def release(self, job_id: str, token: str) -> None:
        """Hand a job back at once (this worker stops); nothing if another holds it already."""

        async def give_back(uow: LeadsUnitOfWork) -> None:
            job = await uow.imports.get(job_id)
            if job is not None and job.claimed_by == token and not job.finished:
                job.release()
                await uow.imports.save(job)

        await self.units.run(give_back)

    async def fail(self, job_id: str, token: str, reason: str) -> None:
        """Give up on a job whose chunk cannot be captured (not a row's fault: those are failures)."""

        async def give_up(uow: LeadsUnitOfWork) -> None:
            job = await uow.imports.get(job_id)
            if job is not None and job.claimed_by == token and not job.finished:
                job.fail(reason, uow.clock.now())
                await uow.imports.save(job)
                await uow.imports.drop_chunks(job.id)

        await self.units.run(give_up)

    async def _capture_rows(
        self, uow: LeadsUnitOfWork, job: ImportJob, rows: tuple[Row, ...], turns: TurnsTaken
    ) -> ChunkOutcome:
        options = job.options
        by = Actor(job.started_by, job.on_behalf_of)
        failures: list[RowFailure] = []
        good: list[tuple[Row, LeadDetails]] = []
        consent: dict[int, bool] = {}  # by row number
        for row in rows:
            try:
                details, agreed = row_details(row, options.campaign), row_consent(row)
            except InvalidRow as exc:
                email = row.cells.get(Column.EMAIL, "").strip() or None
                failures.append(RowFailure(row.number, str(exc), email))
                continue
            good.append((row, details))
            consent[row.number] = agreed
        # Touching needs no look beforehand: the capture path tells new leads from known ones.
        known = (
            {}
            if options.duplicates is DuplicatePolicy.TOUCH
            # A merged record's address is its survivor's: the survivor's empty fields are filled.
            else await survivors_by_address(
                uow, await uow.leads.with_emails(list(dict.fromkeys(details.email for _, details in good)))
            )
        )
        lines: list[CaptureLine] = []  # in row order
        first_of: dict[str, int] = {}  # by address: its first line
        duplicates = 0
        fill: dict[str, LeadDetails] = {}  # known addresses: what the chunk's rows fill in
        for row, details in good:
            email = details.email
            repeat = email in known or email in first_of
            duplicates += repeat
            if repeat and options.duplicates is DuplicatePolicy.SKIP:
                continue
            if repeat and options.duplicates is DuplicatePolicy.UPDATE_EMPTY:
                if email in known:
                    fill[email] = _filled_by(fill.get(email) or _as_details(known[email]), details)
                else:  # a lead new in this chunk: its first row takes what the later ones add
                    first = lines[first_of[email]]
                    lines[first_of[email]] = replace(first, details=_filled_by(first.details, details))
            first_of.setdefault(email, len(lines))
            lines.append(
                CaptureLine(
                    details=details,
                    source=options.source,
                    consent=consent[row.number],
                    lead_id=str(uuid.uuid5(IMPORT_IDS, f"{job.id}:{row.number}:lead")),
                    correlation_id=str(uuid.uuid5(IMPORT_IDS, f"{job.id}:{row.number}:story")),
                )
            )
        at = uow.clock.now()
        for email, details in fill.items():
            lead = known[email]
            contact, company, names = filled(lead.contact, lead.company, details)
            if names:
                await uow.imports.fill_in(lead.id, contact, company, at)
                uow.history.add(
                    [LeadChange(lead.id, LeadChangeKind.FILLED, at, by, {"fields": ",".join(names)})]
                )
        team = FixedOwner(reps=(options.owner,)) if options.owner else self.team
        captured = await capture_lines(uow, team, self.sla, lines, turns, by)
        created = sum(not c.duplicate for c in captured)
        if options.duplicates is DuplicatePolicy.TOUCH:
            duplicates = len(captured) - created
        return ChunkOutcome(created=created, duplicates=duplicates, failures=tuple(failures))


def _as_details(lead: Lead) -> LeadDetails:
    return LeadDetails(lead.contact, lead.company, lead.campaign)


def _filled_by(into: LeadDetails, row: LeadDetails) -> LeadDetails:
    contact, company, _ = filled(into.contact, into.company, row)
    return LeadDetails(contact, company, into.campaign)


# --- reads ----------------------------------------------------------------------------------------


async def job(units: UnitsOfWork[LeadsUnitOfWork], job_id: str, started_by: str | None) -> ImportJob:
    """The job, if ``started_by`` started it (anyone's for None); otherwise as if it did not exist."""

    async def read(uow: LeadsUnitOfWork) -> ImportJob | None:
        return await uow.imports.get(job_id)

    found_job = await units.read(read)
    if found_job is None or (started_by is not None and found_job.started_by != started_by):
        raise NotFound(f"no import with id {job_id!r}")
    return found_job


async def jobs(
    units: UnitsOfWork[LeadsUnitOfWork], started_by: str | None, *, limit: int, offset: int
) -> tuple[list[ImportJob], int]:
    async def read(uow: LeadsUnitOfWork) -> tuple[list[ImportJob], int]:
        return await uow.imports.started_by(started_by, limit=limit, offset=offset)

    return await units.read(read)


async def failures(
    units: UnitsOfWork[LeadsUnitOfWork], job_id: str, *, limit: int | None, offset: int = 0
) -> tuple[list[RowFailure], int]:
    async def read(uow: LeadsUnitOfWork) -> tuple[list[RowFailure], int]:
        return await uow.imports.failures(job_id, limit=limit, offset=offset)

    return await units.read(read)


__all__ = [
    "ChunkOutcome",
    "ImportRunner",
    "ImportStatus",
    "LeaseLost",
    "Upload",
    "job",
    "jobs",
    "start_import",
]
