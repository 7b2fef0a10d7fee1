"""The HTTP API of CSV imports: upload a file, follow its job, download its failed rows.

``POST /imports`` takes the file itself as the request body (``Content-Type: text/csv``, up to 50 MB)
and how to import it as query parameters, so a 50 MB upload streams without a multipart envelope:
``curl --data-binary @leads.csv -H 'Content-Type: text/csv' '.../imports?source=trade_show'``.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from kariz_leads.domain import SalesTeam
from kariz_leads.domain.imports import (
    MAX_BYTES,
    MAX_ROWS,
    Column,
    DuplicatePolicy,
    ImportJob,
    ImportOptions,
    ImportStatus,
    InvalidFile,
    RowFailure,
)
from kariz_leads.service_layer import imports
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import LeadSource
from kariz_shared.contracts.identity import Caller, Role, Scope
from kariz_shared.contracts.normalisation import InvalidValue, normalise_email, normalise_optional_text
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate, rate_limited
from kariz_shared.runtime.http import Limit, Offset, Page
from kariz_shared.runtime.logging import correlation_id

PATH = "/imports"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# --- views ----------------------------------------------------------------------------------------


class RowCounts(BaseModel):
    total: int = Field(description="Data rows in the file (blank rows left out)")
    processed: int = Field(description="Rows of the chunks captured so far")
    created: int = Field(description="New leads")
    duplicates: int = Field(description="Rows whose address was a lead already, or repeated in the file")
    failed: int = Field(description="Rows that could not be a lead (see /failures)")


class ImportJobView(BaseModel):
    id: str
    status: ImportStatus = Field(description="queued, running, done or failed")
    progress: float = Field(description="Rows processed of the total, 0 to 1")
    rows: RowCounts
    filename: str | None
    source: LeadSource
    campaign: str | None
    owner: str | None = Field(description="The owner of every new lead; null: assigned as captures are")
    on_duplicate: DuplicatePolicy
    encoding: str = Field(description="How the file was read: utf-8, windows-1252, the one named, or xlsx")
    delimiter: str = Field(description="The CSV file's delimiter (empty for a workbook)")
    columns: dict[str, str] = Field(description="Each lead field and the file's header it was read from")
    started_by: str
    error: str | None = Field(description="Why a failed job stopped (not a row's fault)")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: ImportJob) -> ImportJobView:
        return cls(
            id=job.id,
            status=job.status,
            progress=job.progress,
            rows=RowCounts(
                total=job.rows_total,
                processed=job.processed,
                created=job.created,
                duplicates=job.duplicates,
                failed=job.failed,
            ),
            filename=job.filename,
            source=job.options.source,
            campaign=job.options.campaign,
            owner=job.options.owner,
            on_duplicate=job.options.duplicates,
            encoding=job.encoding,
            delimiter=job.delimiter,
            columns=job.columns,
            started_by=job.started_by,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )


class RowFailureView(BaseModel):
    row: int = Field(description="The row's number in the file; the header is row 1")
    email: str | None
    reason: str

    @classmethod
    def of(cls, failure: RowFailure) -> RowFailureView:
        return cls(row=failure.row, email=failure.email, reason=failure.reason)


class ErrorView(BaseModel):
    error: str
    message: str


def failures_csv(failures: list[RowFailure]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["row", "email", "reason"])
    writer.writerows([f.row, f.email or "", f.reason] for f in failures)
    return out.getvalue()


# --- routes ---------------------------------------------------------------------------------------

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"The CSV file itself, at most {MAX_ROWS:,} rows and {MAX_BYTES // 2**20} MB",
        # An XLSX workbook is taken too (told by its first bytes, whatever its Content-Type): said in
        # the description, not declared, so the route's fuzzing is not asked to write workbooks.
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
MAPPING_HELP = (
    "A column mapping, `field:header`, repeated (e.g. `map=email:Work E-mail`); fields: "
    + ", ".join(c.value for c in Column)
    + ". Headers not mapped are recognised by name, case, spaces and punctuation aside, with common "
    "synonyms (E-Mail Address, Surname, Organisation, Employees, ...)."
)


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, colon, header = pair.partition(":")
        if not colon or not name.strip() or not header.strip():
            raise RuleViolation(f"map: {pair!r} is not field:header (e.g. email:Work E-mail)")
        mapping[name.strip()] = header
    return mapping


def _owner(owner: str | None, caller: Caller, team: SalesTeam) -> str | None:
    """The fixed owner a caller may give an import's leads: one of the reps they see (a manager's team,
    for an admin the sales team's reps); None for assignment as captures are."""
    if owner is None or not owner.strip():
        return None
    try:
        rep = normalise_email(owner)
    except InvalidValue as exc:
        raise RuleViolation(f"owner: {exc}") from None
    known = set(team.reps) | {r for reps in team.territories.values() for r in reps}
    seen = caller.seen.these
    if (seen is None and rep not in known) or (seen is not None and rep not in seen):
        raise RuleViolation(f"owner: {rep} is not a rep you may give leads to")
    return rep


def router(
    units: UnitsOfWork[LeadsUnitOfWork], team: SalesTeam, on_upload: Callable[[], None] | None = None
) -> APIRouter:
    """The import routes; ``on_upload`` is told of each stored job (the worker claims it at once)."""
    routes = APIRouter(tags=["imports"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    def started_by(caller: Caller) -> str | None:
        """Whose jobs the caller sees: their own; an admin's, everyone's."""
        caller.require(Role.MANAGER, Role.ADMIN, scope=Scope.LEADS_IMPORT)
        return None if caller.has(Role.ADMIN) else caller.actor

    @routes.post(
        PATH,
        dependencies=[Depends(rate_limited)],
        status_code=202,
        summary="Import a CSV file of leads (answers at once with the import job)",
        description="The body is the file (`Content-Type: text/csv`; an XLSX workbook's first sheet is "
        f"read too, `{XLSX}`). The file as a whole is checked "
        "first: its encoding (UTF-8 with or without BOM, else Windows-1252, or `encoding`), its delimiter "
        "(`delimiter`, or sniffed among , ; tab |) and its columns (e-mail, first and last name or a full "
        "name, and company are required); if it cannot be imported the answer is 422 and nothing is "
        "stored. Then a worker captures it in chunks of 500 rows, each all or nothing; follow it at "
        "`GET /imports/{id}`. A row that cannot be a lead is a failure with its row number and reason.",
        openapi_extra=UPLOAD_BODY,
        response_model=ImportJobView,
        responses={
            413: {"model": ErrorView, "description": f"The file is over {MAX_BYTES // 2**20} MB"},
            415: {"model": ErrorView, "description": "Not a CSV body (multipart, JSON)"},
            422: {"model": ErrorView, "description": "The file cannot be imported; nothing was stored"},
            429: {"model": ErrorView, "description": "Over the caller's or the address's limit"},
        },
    )
    async def upload(
        request: Request,
        caller: Authenticated,
        source: Annotated[LeadSource, Query(description="The source of every row's lead")],
        campaign: Annotated[str | None, Query(max_length=200)] = None,
        owner: Annotated[
            str | None,
            Query(max_length=320, description="A rep to own every new lead; default: assigned as usual"),
        ] = None,
        on_duplicate: Annotated[
            DuplicatePolicy,
            Query(
                description="A row whose address is a lead already: skip it, touch the lead (as a "
                "capture does), or touch it and fill the lead's empty fields (update_empty)"
            ),
        ] = DuplicatePolicy.TOUCH,
        delimiter: Annotated[
            str | None, Query(max_length=5, description="One character; `\\t` or `tab` for a tab")
        ] = None,
        encoding: Annotated[str | None, Query(max_length=40, description="e.g. utf-8, windows-1252")] = None,
        filename: Annotated[str | None, Query(max_length=255)] = None,
        mapping: Annotated[list[str], Query(alias="map", max_length=20, description=MAPPING_HELP)] = [],  # noqa: B006
    ) -> Any:
        caller.require(Role.MANAGER, Role.ADMIN, scope=Scope.LEADS_IMPORT)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind.startswith("multipart/") or kind in ("application/json", "application/x-www-form-urlencoded"):
            return _unsupported(kind)
        grant = caller.key
        campaign = normalise_optional_text(campaign)
        if grant is not None and grant.source and source.value != grant.source:
            raise RuleViolation(f"source: this API key captures leads from {grant.source!r} only")
        if grant is not None and grant.campaign:
            if campaign not in (None, grant.campaign):
                raise RuleViolation(f"campaign: this API key captures leads for {grant.campaign!r} only")
            campaign = grant.campaign
        if delimiter in ("\\t", "tab", "TAB"):
            delimiter = "\t"
        options = ImportOptions(source, campaign, _owner(owner, caller, team), on_duplicate)
        data = bytes(await request.body())
        if not data:
            raise InvalidFile("the body is empty: send the CSV file as the body (Content-Type: text/csv)")
        upload = imports.Upload(
            data, filename, options, encoding or None, delimiter or None, _mapping(mapping)
        )
        cid = correlation_id.get() or str(uuid.uuid4())
        job = await imports.start_import(units, upload, by=caller.as_actor, correlation_id=cid)
        if on_upload is not None:
            on_upload()
        return ImportJobView.of(job)

    @routes.get(
        PATH,
        summary="Import jobs, newest first: the caller's own (an admin's: everyone's)",
    )
    async def list_jobs(caller: Authenticated, limit: Limit = 50, offset: Offset = 0) -> Page[ImportJobView]:
        jobs, total = await imports.jobs(units, started_by(caller), limit=limit, offset=offset)
        return Page[ImportJobView](
            items=[ImportJobView.of(j) for j in jobs], total=total, limit=limit, offset=offset
        )

    @routes.get(
        PATH + "/{job_id}",
        summary="One import job: status, row counts, progress",
        responses={404: {"model": ErrorView, "description": "No import with this id (that the caller sees)"}},
    )
    async def get_job(job_id: str, caller: Authenticated) -> ImportJobView:
        return ImportJobView.of(await imports.job(units, job_id, started_by(caller)))

    @routes.get(
        PATH + "/{job_id}/failures",
        summary="The rows that failed, in row order, with the row number and the reason",
        description="JSON pages, or with `format=csv` (or `Accept: text/csv`) all of them as a CSV "
        "download: `row,email,reason`.",
        response_model=Page[RowFailureView],
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
            404: {"model": ErrorView, "description": "No import with this id (that the caller sees)"},
        },
    )
    async def failures(
        job_id: str,
        request: Request,
        caller: Authenticated,
        format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Any:
        job = await imports.job(units, job_id, started_by(caller))
        as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
        if as_csv:
            rows, _ = await imports.failures(units, job.id, limit=None)
            return Response(
                failures_csv(rows),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="import-{job.id}-failures.csv"'},
            )
        rows, total = await imports.failures(units, job.id, limit=limit, offset=offset)
        return Page[RowFailureView](
            items=[RowFailureView.of(f) for f in rows], total=total, limit=limit, offset=offset
        )

    return routes


def _unsupported(kind: str) -> Response:
    return JSONResponse(
        status_code=415,
        content={
            "error": "unsupported_media_type",
            "message": f"{kind} is not taken here: send the CSV file itself as the body "
            "(Content-Type: text/csv); nothing was stored",
        },
    )
