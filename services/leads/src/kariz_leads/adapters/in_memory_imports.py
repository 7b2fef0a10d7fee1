"""Import jobs in memory, for the use-case tests: the contract of ``uow.imports`` as MongoDB keeps it
(copies in and out, failures in row order, jobs newest first)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime

from kariz_leads.domain.imports import ImportJob, Row, RowFailure
from kariz_leads.domain.lead import Lead
from kariz_shared.contracts.errors import DuplicateRecord
from kariz_shared.contracts.events import Company, Contact
from kariz_shared.persistence.in_memory import InMemoryAggregates
from kariz_shared.runtime.clock import Clock


class InMemoryImportJobs:
    def __init__(self, leads: InMemoryAggregates[Lead], clock: Clock) -> None:
        self.leads = leads  # fill_in writes the leads it keeps (the same object as uow.leads)
        self.clock = clock
        self.jobs: dict[str, ImportJob] = {}
        self.chunks: dict[tuple[str, int], tuple[Row, ...]] = {}
        self.stored_at: dict[str, datetime] = {}  # a file's first chunk, by job
        self.failed: dict[tuple[str, int], list[RowFailure]] = {}

    def add_chunks(self, job_id: str, first: int, chunks: Sequence[tuple[Row, ...]]) -> None:
        for n, rows in enumerate(chunks, start=first):
            self.chunks[(job_id, n)] = rows
        self.stored_at.setdefault(job_id, self.clock.now())

    async def add(self, job: ImportJob) -> None:
        if job.id in self.jobs:
            raise DuplicateRecord(f"import {job.id} exists", index="_id_")
        self.jobs[job.id] = copy.deepcopy(job)

    async def get(self, job_id: str) -> ImportJob | None:
        job = self.jobs.get(job_id)
        return copy.deepcopy(job) if job else None

    async def save(self, job: ImportJob) -> None:
        self.jobs[job.id] = copy.deepcopy(job)

    async def next_claimable(self, now: datetime) -> ImportJob | None:
        waiting = sorted((j for j in self.jobs.values() if j.claimable(now)), key=lambda j: j.created_at)
        return copy.deepcopy(waiting[0]) if waiting else None

    async def chunk(self, job_id: str, index: int) -> tuple[Row, ...]:
        return self.chunks[(job_id, index)]

    async def drop_chunks(self, job_id: str) -> None:
        for key in [k for k in self.chunks if k[0] == job_id]:
            del self.chunks[key]
        self.stored_at.pop(job_id, None)

    async def drop_orphan_chunks(self, stored_before: datetime) -> int:
        orphans = [j for j, at in self.stored_at.items() if at < stored_before and j not in self.jobs]
        for job_id in orphans:
            await self.drop_chunks(job_id)
        return len(orphans)

    def add_failures(self, job_id: str, index: int, failures: Sequence[RowFailure]) -> None:
        self.failed[(job_id, index)] = list(failures)

    async def failures(
        self, job_id: str, *, limit: int | None = None, offset: int = 0
    ) -> tuple[list[RowFailure], int]:
        rows = [f for (job, _), fs in sorted(self.failed.items()) if job == job_id for f in fs]
        end = None if limit is None else offset + limit
        return rows[offset:end], len(rows)

    async def started_by(self, who: str | None, *, limit: int, offset: int) -> tuple[list[ImportJob], int]:
        mine = [j for j in self.jobs.values() if who is None or j.started_by == who]
        mine.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        return [copy.deepcopy(j) for j in mine[offset : offset + limit]], len(mine)

    async def fill_in(self, lead_id: str, contact: Contact, company: Company, at: datetime) -> None:
        stored = self.leads.by_id[lead_id]
        stored.contact, stored.company, stored.updated_at = contact, company, at
