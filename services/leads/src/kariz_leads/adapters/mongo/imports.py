"""CSV import jobs on MongoDB, in the leads database.

Collections: ``import_jobs`` (one document per job: its options, counts, status and claim),
``import_chunks`` (the uploaded file as rows of lead fields, one document per chunk of up to 500 rows,
``_id`` = ``<job>:<chunk>``) and ``import_failures`` (a chunk's failed rows, one document per chunk with
failures, the same ``_id``). A chunk's failures and the job's progress are written in the transaction
that captures the chunk's leads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import CollectionInvalid, OperationFailure

from kariz_leads.adapters.mongo.documents import LEADS, utc
from kariz_leads.domain.imports import (
    Column,
    DuplicatePolicy,
    ImportJob,
    ImportOptions,
    ImportStatus,
    Row,
    RowFailure,
)
from kariz_shared.contracts.events import Company, Contact, LeadSource
from kariz_shared.persistence.store import Store, Transaction, find_page
from kariz_shared.runtime.clock import Clock

JOBS = "import_jobs"
CHUNKS = "import_chunks"
FAILURES = "import_failures"

Document = dict[str, Any]
NAMESPACE_EXISTS = 48


def chunk_id(job_id: str, index: int) -> str:
    return f"{job_id}:{index:06d}"


def job_to_document(job: ImportJob) -> Document:
    return {
        "_id": job.id,
        "filename": job.filename,
        "started_by": job.started_by,
        "on_behalf_of": job.on_behalf_of,
        "options": {
            "source": job.options.source.value,
            "campaign": job.options.campaign,
            "owner": job.options.owner,
            "duplicates": job.options.duplicates.value,
        },
        "encoding": job.encoding,
        "delimiter": job.delimiter,
        "columns": job.columns,
        "rows_total": job.rows_total,
        "chunks_total": job.chunks_total,
        "correlation_id": job.correlation_id,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "status": job.status.value,
        "next_chunk": job.next_chunk,
        "processed": job.processed,
        "created": job.created,
        "duplicates": job.duplicates,
        "failed": job.failed,
        "error": job.error,
        "finished_at": job.finished_at,
        "claimed_by": job.claimed_by,
        "claim_until": job.claim_until,
    }


def _when(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def job_from_document(doc: Document) -> ImportJob:
    options = doc["options"]
    return ImportJob(
        id=doc["_id"],
        filename=doc.get("filename"),
        started_by=doc["started_by"],
        on_behalf_of=doc.get("on_behalf_of"),
        options=ImportOptions(
            source=LeadSource(options["source"]),
            campaign=options.get("campaign"),
            owner=options.get("owner"),
            duplicates=DuplicatePolicy(options["duplicates"]),
        ),
        encoding=doc["encoding"],
        delimiter=doc["delimiter"],
        columns=dict(doc["columns"]),
        rows_total=doc["rows_total"],
        chunks_total=doc["chunks_total"],
        correlation_id=doc["correlation_id"],
        created_at=utc(doc["created_at"]),
        updated_at=utc(doc["updated_at"]),
        status=ImportStatus(doc["status"]),
        next_chunk=doc["next_chunk"],
        processed=doc["processed"],
        created=doc["created"],
        duplicates=doc["duplicates"],
        failed=doc["failed"],
        error=doc.get("error"),
        finished_at=_when(doc.get("finished_at")),
        claimed_by=doc.get("claimed_by"),
        claim_until=_when(doc.get("claim_until")),
    )


def chunk_to_document(job_id: str, index: int, rows: Sequence[Row], stored_at: datetime) -> Document:
    # The columns once per chunk, each row as its number and its cells in their order: compact.
    columns = list(rows[0].cells) if rows else []
    return {
        "_id": chunk_id(job_id, index),
        "job_id": job_id,
        "index": index,
        "stored_at": stored_at,
        "columns": [c.value for c in columns],
        "rows": [[row.number, *(row.cells[c] for c in columns)] for row in rows],
    }


def chunk_from_document(doc: Document) -> tuple[Row, ...]:
    columns = [Column(c) for c in doc["columns"]]
    return tuple(Row(values[0], dict(zip(columns, values[1:], strict=True))) for values in doc["rows"])


class MongoImportJobs:
    def __init__(self, tx: Transaction, clock: Clock) -> None:
        self.tx, self.clock = tx, clock
        self.jobs = tx.db[JOBS]

    def add_chunks(self, job_id: str, first: int, chunks: Sequence[tuple[Row, ...]]) -> None:
        at = self.clock.now()
        for n, rows in enumerate(chunks, start=first):
            self.tx.insert_later(CHUNKS, chunk_to_document(job_id, n, rows, at))

    async def add(self, job: ImportJob) -> None:
        await self.jobs.insert_one(job_to_document(job), session=self.tx.session)

    async def get(self, job_id: str) -> ImportJob | None:
        doc = await self.jobs.find_one({"_id": job_id}, session=self.tx.session)
        return job_from_document(doc) if doc else None

    async def save(self, job: ImportJob) -> None:
        await self.jobs.replace_one({"_id": job.id}, job_to_document(job), session=self.tx.session)

    async def next_claimable(self, now: datetime) -> ImportJob | None:
        doc = await self.jobs.find_one(
            {
                "status": {"$in": [ImportStatus.QUEUED.value, ImportStatus.RUNNING.value]},
                "$or": [{"claim_until": None}, {"claim_until": {"$lte": now}}],
            },
            sort=[("created_at", ASCENDING)],
            session=self.tx.session,
        )
        return job_from_document(doc) if doc else None

    async def chunk(self, job_id: str, index: int) -> tuple[Row, ...]:
        doc = await self.tx.db[CHUNKS].find_one({"_id": chunk_id(job_id, index)}, session=self.tx.session)
        if doc is None:
            raise LookupError(f"import {job_id} has no chunk {index}")
        return chunk_from_document(doc)

    async def drop_chunks(self, job_id: str) -> None:
        await self.tx.db[CHUNKS].delete_many({"job_id": job_id}, session=self.tx.session)

    async def drop_orphan_chunks(self, stored_before: datetime) -> int:
        # Every stored file has its chunk 0 (the first unit stores it), and the collection holds only
        # the files of jobs not finished: one small read per file. Chunks from before ``stored_at``
        # have none, and count as old.
        old = {"index": 0, "$or": [{"stored_at": {"$lt": stored_before}}, {"stored_at": {"$exists": False}}]}
        files = [
            doc["job_id"]
            async for doc in self.tx.db[CHUNKS].find(old, projection={"job_id": 1}, session=self.tx.session)
        ]
        if not files:
            return 0
        jobs = self.jobs.find({"_id": {"$in": files}}, projection={"_id": 1}, session=self.tx.session)
        have = {doc["_id"] async for doc in jobs}
        orphans = [job_id for job_id in files if job_id not in have]
        if orphans:
            await self.tx.db[CHUNKS].delete_many({"job_id": {"$in": orphans}}, session=self.tx.session)
        return len(orphans)

    def add_failures(self, job_id: str, index: int, failures: Sequence[RowFailure]) -> None:
        self.tx.insert_later(
            FAILURES,
            {
                "_id": chunk_id(job_id, index),
                "job_id": job_id,
                "index": index,
                "rows": [{"row": f.row, "reason": f.reason, "email": f.email} for f in failures],
            },
        )

    async def failures(
        self, job_id: str, *, limit: int | None = None, offset: int = 0
    ) -> tuple[list[RowFailure], int]:
        found = (
            self.tx.db[FAILURES].find({"job_id": job_id}, session=self.tx.session).sort("index", ASCENDING)
        )
        rows = [RowFailure(r["row"], r["reason"], r.get("email")) async for doc in found for r in doc["rows"]]
        end = None if limit is None else offset + limit
        return rows[offset:end], len(rows)

    async def started_by(self, who: str | None, *, limit: int, offset: int) -> tuple[list[ImportJob], int]:
        docs, total = await find_page(
            self.jobs,
            {} if who is None else {"started_by": who},
            sort=[("created_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit,
            offset=offset,
            session=self.tx.session,
        )
        return [job_from_document(doc) for doc in docs], total

    async def fill_in(self, lead_id: str, contact: Contact, company: Company, at: datetime) -> None:
        await self.tx.db[LEADS].update_one(
            {"_id": lead_id},
            {"$set": {"contact": contact.model_dump(), "company": company.model_dump(), "updated_at": at}},
            session=self.tx.session,
        )


async def ensure_import_indexes(store: Store) -> None:
    """The jobs a caller started and everyone's, newest first; the claimable ones oldest first; a job's
    failures in chunk order."""
    jobs = store.db[JOBS]
    await jobs.create_index(
        [("started_by", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="mine_newest_first"
    )
    await jobs.create_index([("created_at", DESCENDING), ("_id", DESCENDING)], name="newest_first")
    await jobs.create_index([("status", ASCENDING), ("created_at", ASCENDING)], name="claimable_oldest_first")
    await store.db[FAILURES].create_index([("job_id", ASCENDING), ("index", ASCENDING)], name="job_chunks")
    # Chunks are inserted in transactions; their collection is made before.
    try:
        await store.db.create_collection(CHUNKS)
    except CollectionInvalid:
        pass
    except OperationFailure as exc:
        if exc.code != NAMESPACE_EXISTS:
            raise
