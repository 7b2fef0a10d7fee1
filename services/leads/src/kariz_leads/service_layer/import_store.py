"""What the CSV import's use cases see of its storage (``uow.imports``): jobs, their files' chunks and
the rows that failed. The MongoDB adapter (:mod:`kariz_leads.adapters.mongo.imports`) and the in-memory
one honour this contract."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from kariz_leads.domain.imports import ImportJob, Row, RowFailure
from kariz_shared.contracts.events import Company, Contact


class ImportJobs(Protocol):
    def add_chunks(self, job_id: str, first: int, chunks: Sequence[tuple[Row, ...]]) -> None:
        """Store chunks ``first``, ``first + 1``, ... of a job's file, with the unit's other writes (and
        the unit clock's time: see ``drop_orphan_chunks``)."""
        ...

    async def add(self, job: ImportJob) -> None:
        """Store a new job (its chunks are stored before it)."""
        ...

    async def get(self, job_id: str) -> ImportJob | None: ...

    async def save(self, job: ImportJob) -> None:
        """Store a changed job over the stored one."""
        ...

    async def next_claimable(self, now: datetime) -> ImportJob | None:
        """The oldest job not finished whose claim is free or ran out, or None."""
        ...

    async def chunk(self, job_id: str, index: int) -> tuple[Row, ...]:
        """The rows of one chunk of a job's file."""
        ...

    async def drop_chunks(self, job_id: str) -> None:
        """Delete a finished job's file (its chunks); its counts and failed rows stay."""
        ...

    async def drop_orphan_chunks(self, stored_before: datetime) -> int:
        """Delete the chunks of every file stored before ``stored_before`` that has no job; how many files."""
        ...

    def add_failures(self, job_id: str, index: int, failures: Sequence[RowFailure]) -> None:
        """Store the rows of one chunk that failed, with the unit's other writes."""
        ...

    async def failures(
        self, job_id: str, *, limit: int | None = None, offset: int = 0
    ) -> tuple[list[RowFailure], int]:
        """The failed rows of a job in row order (all of them without ``limit``) and how many in all."""
        ...

    async def started_by(self, who: str | None, *, limit: int, offset: int) -> tuple[list[ImportJob], int]:
        """One page of the jobs ``who`` started (everyone's for None), newest first, and the total."""
        ...

    async def fill_in(self, lead_id: str, contact: Contact, company: Company, at: datetime) -> None:
        """Write a stored lead's contact and company as an import's row filled their empty fields."""
        ...
