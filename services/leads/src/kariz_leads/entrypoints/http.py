"""The HTTP API of leads: capture a lead, import many, read one, find leads by criteria.

Request models apply Kariz's normalisation rules as validators, so a bad value is refused with a 422
naming its field before anything is stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kariz_leads.domain import AssignedBy, Lead, LeadFilter, LeadStatus, ResponseSla, SalesTeam
from kariz_leads.domain.history import Detail, LeadChange, LeadChangeKind
from kariz_leads.domain.lead import RECENT_TOUCHES
from kariz_leads.domain.regions import Region
from kariz_leads.domain.search import MAX_TERMS
from kariz_leads.service_layer import handlers, views
from kariz_leads.service_layer.commands import CaptureLead, ImportLeads
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import Company, Contact, LeadPriority, LeadSource
from kariz_shared.contracts.identity import PEOPLE, Caller, Role, Scope
from kariz_shared.contracts.normalisation import (
    normalise_country,
    normalise_domain,
    normalise_email,
    normalise_industry,
    normalise_name,
    normalise_optional_text,
    normalise_phone,
)
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.idempotency import RequestKey
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate, rate_limited
from kariz_shared.runtime.http import CursorPage, CursorParam, Limit, Offset, Page
from kariz_shared.runtime.logging import correlation_id

# --- requests -------------------------------------------------------------------------------------

#: The largest company size a capture or a filter takes (int64-safe; the largest employer has about 3M).
SIZE_MAX = 100_000_000


class ContactRequest(BaseModel):
    first_name: str = Field(max_length=100, examples=["Ada"])
    last_name: str = Field(max_length=100, examples=["Lovelace"])
    email: str = Field(max_length=320, examples=["ada@analytical.example"])
    phone: str | None = Field(default=None, max_length=40, examples=["+44 20 7946 0958"])
    title: str | None = Field(default=None, max_length=120, examples=["Head of Engineering"])

    @field_validator("first_name", "last_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return normalise_name(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalise_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return normalise_phone(value)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return normalise_optional_text(value)


class CompanyRequest(BaseModel):
    name: str = Field(max_length=200, examples=["Analytical Engines Ltd"])
    domain: str | None = Field(
        default=None,
        max_length=255,
        description="Taken from the contact's e-mail when absent (not for free mail)",
    )
    industry: str | None = Field(default=None, max_length=100, examples=["software"])
    # The largest employer has about three million people; the bound keeps the value within int64.
    size: int | None = Field(
        default=None, ge=1, le=100_000_000, strict=True, description="Number of employees"
    )
    country: str | None = Field(
        default=None,
        description="ISO 3166-1 alpha-2 code; an alpha-3 code or the English name is taken too and stored "
        "as its alpha-2 code",
        examples=["GB"],
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return normalise_name(value, what="company name")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return normalise_domain(value) if value and value.strip() else None

    @field_validator("industry")
    @classmethod
    def _industry(cls, value: str | None) -> str | None:
        return normalise_industry(value) if value else None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return normalise_country(value) if value and value.strip() else None


class CaptureLeadRequest(BaseModel):
    contact: ContactRequest
    company: CompanyRequest
    source: LeadSource
    campaign: str | None = Field(default=None, max_length=200, examples=["spring-webinar-2025"])
    consent: bool = Field(default=False, description="The contact agreed to be contacted")
    priority: LeadPriority = Field(
        default=LeadPriority.NORMAL, description="How urgent the lead is; its response SLA may depend on it"
    )

    def as_sent_by(self, caller: Caller) -> CaptureLeadRequest:
        """This capture as ``caller`` may make it: a key bound to a source or campaign captures for that
        one only (a body naming another is refused, naming the field; an absent campaign is the key's)."""
        grant = caller.key
        if grant is None:
            return self
        if grant.source and self.source.value != grant.source:
            raise RuleViolation(f"source: this API key captures leads from {grant.source!r} only")
        if grant.campaign and self.campaign not in (None, grant.campaign):
            raise RuleViolation(f"campaign: this API key captures leads for {grant.campaign!r} only")
        return self.model_copy(update={"campaign": grant.campaign or self.campaign})

    def command(self) -> CaptureLead:
        return CaptureLead(
            contact=Contact(**self.contact.model_dump()),
            company=Company(**self.company.model_dump()),
            source=self.source,
            campaign=self.campaign,
            consent=self.consent,
            priority=self.priority,
        )


IMPORT_MAX = 1000


class ImportLeadsRequest(BaseModel):
    leads: list[CaptureLeadRequest] = Field(
        min_length=1, max_length=IMPORT_MAX, description=f"At most {IMPORT_MAX} leads per import"
    )

    def command(self, caller: Caller) -> ImportLeads:
        return ImportLeads(tuple(line.as_sent_by(caller).command() for line in self.leads))


# --- views ----------------------------------------------------------------------------------------


class TouchView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    source: LeadSource
    campaign: str | None
    at: datetime


class ContactAttemptsView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    count: int
    first_at: datetime
    last_at: datetime


class LeadView(BaseModel):
    # Read from the aggregate's attributes by name: no hand-kept mapping of a lead's fields.
    model_config = ConfigDict(from_attributes=True)

    id: str
    contact: Contact
    company: Company
    source: LeadSource
    campaign: str | None
    consent: bool
    owner: str
    assigned_by: AssignedBy
    status: LeadStatus
    priority: LeadPriority = LeadPriority.NORMAL
    score: int | None = None
    disqualification_reason: str | None = None
    merged_into: str | None = Field(
        default=None, description="For a merged lead (status merged): the lead it was merged into"
    )
    touches: list[TouchView] = Field(
        description=f"The most recent captures of this contact (at most {RECENT_TOUCHES}), oldest first"
    )
    touch_count: int = Field(description="Every capture of this contact, the first one included")
    touches_by_source: dict[str, int] = Field(description="The same count by source")
    correlation_id: str
    captured_by: str | None = Field(
        default=None, description="Who captured it: a person, or key:<id> for a machine's API key"
    )
    attempts: dict[str, ContactAttemptsView] = Field(
        default_factory=dict, description="Attempts to reach the contact by channel (activities but notes)"
    )
    attempt_count: int = Field(default=0, description="The attempts over every channel")
    first_contact_at: datetime | None = Field(
        default=None, description="When a rep first got through to the contact (a reaching activity)"
    )
    time_to_first_contact_s: float | None = Field(default=None, description="Seconds from capture to it")
    last_activity_at: datetime | None = Field(
        default=None, description="When the latest activity on the lead happened (a note included)"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, lead: Lead) -> LeadView:
        return cls.model_validate(lead)


class CapturedLeadView(LeadView):
    duplicate: bool = Field(description="True when the address was already a lead: this capture was a touch")

    @classmethod
    def of_capture(cls, captured: handlers.Captured) -> CapturedLeadView:
        return cls(**dict(LeadView.of(captured.lead)), duplicate=captured.duplicate)


class CaptureReceipt(BaseModel):
    """What a machine's key gets back: the capture was taken. The same for a new lead and for a touch of
    a known one, so a web form cannot be used to find out who is a lead already."""

    accepted: int = Field(description="Captures taken (new leads and touches alike)")
    correlation_id: str


class ImportedLeadView(BaseModel):
    id: str
    email: str
    owner: str
    duplicate: bool = Field(description="True when the address was already a lead: this line was a touch")


class ImportView(BaseModel):
    imported: int = Field(description="New leads")
    touches: int = Field(description="Lines whose address was already a lead, or repeated in the import")
    leads: list[ImportedLeadView] = Field(description="One per line of the import, in its order")


class LeadChangeView(BaseModel):
    kind: LeadChangeKind
    at: datetime
    by: str = Field(
        description="A person's address, key:<id> for a machine's API key, or /kariz/<service> for what "
        "a service decided by itself (a verdict of the scoring)"
    )
    on_behalf_of: str | None = Field(default=None, description="For a machine: whom its key acts for")
    details: dict[str, Detail] = Field(
        description="captured: source, campaign, owner, assigned_by, priority; touched: source, campaign; "
        "qualified: score; disqualified: score, reason; reassigned: from_owner, to_owner, reason, "
        "assigned_by (manual or escalation); duplicate_merged (on the survivor): merged_lead_id, "
        "merged_owner, status_from, status_to, reason; merged_into (on the merged lead): merged_into, owner, "
        "reason"
    )

    @classmethod
    def of(cls, change: LeadChange) -> LeadChangeView:
        return cls(
            kind=change.kind,
            at=change.at,
            by=change.by.who,
            on_behalf_of=change.by.on_behalf_of,
            details=dict(change.details),
        )


class FieldErrorView(BaseModel):
    field: str
    message: str


class ErrorView(BaseModel):
    error: str
    message: str
    fields: list[FieldErrorView] | None = Field(default=None, description="For an invalid request: per field")


# --- routes ---------------------------------------------------------------------------------------

LIMITED: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorView, "description": "The body is over 2 MiB; nothing was read"},
    429: {"model": ErrorView, "description": "Over the caller's or the address's limit; see Retry-After"},
}


#: A client's key for a capture or an import it may have to send again (a timeout, a dropped
#: connection): a repeat with the same key and body answers what the first did and captures nothing.
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Any unique string (a UUID) per request, sent again with its retries: a repeat within a "
        "day answers as the first did (header Idempotent-Replayed) and stores nothing; the same key with "
        "another body is 409",
    ),
]
REPLAYED = "Idempotent-Replayed"


def request_key(caller: Caller, key: str | None, body: BaseModel) -> RequestKey | None:
    """The key as the caller's own (two callers' keys never meet), with what the body said."""
    return None if key is None else RequestKey.of(caller.as_actor.who, key, body.model_dump_json())


def router(
    units: UnitsOfWork[LeadsUnitOfWork],
    team: SalesTeam,
    sla: ResponseSla,
    *,
    import_timeout_s: float | None = None,
) -> APIRouter:
    """``import_timeout_s``: the time limit of one ``POST /leads/import``'s unit (default: a single
    capture's), longer, since a list of hundreds takes the database seconds (handlers.import_leads)."""
    # Every route needs a signed-in caller (401 without one); each says which roles may use it.
    routes = APIRouter(tags=["leads"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.post(
        "/leads",
        dependencies=[Depends(rate_limited)],
        status_code=201,
        summary="Capture a lead",
        responses={
            200: {
                "model": CapturedLeadView,
                "description": "The address is already a lead: a touch was recorded",
            },
            409: {"model": ErrorView, "description": "The Idempotency-Key was used for another request"},
            422: {"model": ErrorView, "description": "Invalid lead data; nothing was stored"},
            **LIMITED,
        },
    )
    async def capture(
        body: CaptureLeadRequest,
        response: Response,
        caller: Authenticated,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> CapturedLeadView | CaptureReceipt:
        caller.require(*PEOPLE, scope=Scope.LEADS_CAPTURE)
        cid = correlation_id.get() or str(uuid.uuid4())
        sent = body.as_sent_by(caller)
        captured = await handlers.capture_lead(
            units,
            team,
            sla,
            sent.command(),
            correlation_id=cid,
            by=caller.as_actor,
            request=request_key(caller, idempotency_key, sent),
        )
        if captured.replayed:
            response.headers[REPLAYED] = "true"
        if caller.key is not None or not caller.seen.include(captured.lead.owner):
            # A machine, or a rep whose capture went to another rep (new or known): taken, not shown.
            return CaptureReceipt(accepted=1, correlation_id=cid)
        if captured.duplicate:
            response.status_code = 200
        return CapturedLeadView.of_capture(captured)

    @routes.post(
        "/leads/import",
        dependencies=[Depends(rate_limited)],
        summary="Capture many leads at once (a trade-show list, a partner's file)",
        description="All lines are stored or, when one is invalid, none. Each new lead gets its own "
        "`LeadCaptured`; a known address, or one repeated in the list, is recorded as a touch.",
        responses={
            409: {"model": ErrorView, "description": "The Idempotency-Key was used for another request"},
            422: {"model": ErrorView, "description": "Invalid lines, named by index; nothing was stored"},
            **LIMITED,
        },
    )
    async def import_leads(
        body: ImportLeadsRequest,
        response: Response,
        caller: Authenticated,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> ImportView | CaptureReceipt:
        caller.require(Role.MANAGER, Role.ADMIN, scope=Scope.LEADS_IMPORT)
        cid = correlation_id.get() or str(uuid.uuid4())
        captured = await handlers.import_leads(
            units,
            team,
            sla,
            body.command(caller),
            correlation_id=cid,
            by=caller.as_actor,
            request=request_key(caller, idempotency_key, body),
            timeout_s=import_timeout_s,
        )
        if any(c.replayed for c in captured):
            response.headers[REPLAYED] = "true"
        if caller.key is not None:
            return CaptureReceipt(accepted=len(captured), correlation_id=cid)
        return ImportView(
            imported=sum(not c.duplicate for c in captured),
            touches=sum(c.duplicate for c in captured),
            leads=[
                ImportedLeadView(
                    id=c.lead.id, email=c.lead.contact.email, owner=c.lead.owner, duplicate=c.duplicate
                )
                for c in captured
            ],
        )

    @routes.get(
        "/leads/{lead_id}",
        summary="One lead",
        responses={404: {"model": ErrorView, "description": "No lead with this id"}},
    )
    async def get(lead_id: str, caller: Authenticated) -> LeadView:
        caller.require(*PEOPLE)
        lead = await views.lead(units, lead_id)
        caller.sees(lead.owner, f"no lead with id {lead_id!r}")
        return LeadView.of(lead)

    @routes.get(
        "/leads/{lead_id}/history",
        summary="Who changed the lead, what and when, newest first",
        description="Its capture, every touch (also those beyond the lead's recent ones), and "
        "qualification's verdicts, each with who made it.",
        responses={404: {"model": ErrorView, "description": "No lead with this id"}},
    )
    async def history(
        lead_id: str, caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[LeadChangeView]:
        caller.require(*PEOPLE)
        changes, total = await views.history(units, lead_id, caller.seen, limit=limit, offset=offset)
        items = [LeadChangeView.of(change) for change in changes]
        return Page[LeadChangeView](items=items, total=total, limit=limit, offset=offset)

    @routes.get(
        "/leads",
        summary="Find leads, newest first",
        description="Every filter given must hold. Page by `offset` (counted: `total`), or by `cursor`: "
        "pass the previous page's `next_cursor` for the page after it, as cheap however deep, and a lead "
        "captured meanwhile neither repeats nor hides one (`total` is null then: nothing is counted).",
        responses={422: {"model": ErrorView, "description": "An invalid filter value"}},
    )
    async def find(
        source: LeadSource | None = None,
        status: LeadStatus | None = None,
        owner: Annotated[str | None, Query(max_length=320, description="The owning rep's e-mail")] = None,
        industry: Annotated[str | None, Query(max_length=100)] = None,
        country: Annotated[str | None, Query(max_length=100, description="ISO 3166-1 alpha-2 code")] = None,
        region: Annotated[
            Region | None, Query(description="The company's country is in the region (see domain/regions.py)")
        ] = None,
        campaign: Annotated[str | None, Query(max_length=200)] = None,
        size_min: Annotated[int | None, Query(ge=1, le=SIZE_MAX, description="Employees, at least")] = None,
        size_max: Annotated[int | None, Query(ge=1, le=SIZE_MAX, description="Employees, at most")] = None,
        q: Annotated[
            str | None,
            Query(
                max_length=200,
                description=f"Up to {MAX_TERMS} words, each the beginning of a word of the contact's name, "
                "the company's name or the e-mail's local part; case and accents aside",
            ),
        ] = None,
        has_open_follow_up: Annotated[
            bool | None, Query(description="true: a follow-up of the lead is open; false: none is")
        ] = None,
        created_from: Annotated[datetime | None, Query(description="ISO 8601; without a zone, UTC")] = None,
        created_to: Annotated[datetime | None, Query(description="ISO 8601; without a zone, UTC")] = None,
        last_activity_after: Annotated[
            datetime | None,
            Query(
                description="The latest activity happened at or after this (ISO 8601; without a zone, UTC)"
            ),
        ] = None,
        last_activity_before: Annotated[
            datetime | None,
            Query(
                description="The latest activity happened at or before this: the leads nobody worked since "
                "(a lead with no activity at all matches neither bound)"
            ),
        ] = None,
        *,
        caller: Authenticated,
        limit: Limit = 50,
        offset: Offset = 0,
        cursor: CursorParam = None,
    ) -> CursorPage[LeadView]:
        caller.require(*PEOPLE)
        criteria = LeadFilter.of(
            source=source,
            status=status,
            owner=owner,
            industry=industry,
            country=country,
            created_from=created_from,
            created_to=created_to,
            campaign=campaign,
            size_min=size_min,
            size_max=size_max,
            region=region,
            text=q,
            has_open_follow_up=has_open_follow_up,
            last_activity_after=last_activity_after,
            last_activity_before=last_activity_before,
        ).seen_by(caller)
        if cursor is not None:
            if offset:
                raise RuleViolation("offset: a page read by cursor starts right after it; leave offset out")
            after = Cursor.decode(cursor)
            leads, more = await views.leads_after(units, criteria, after=after, limit=limit)
            total: int | None = None
        else:
            leads, counted = await views.leads_matching(units, criteria, limit=limit, offset=offset)
            more, total = offset + len(leads) < counted, counted
        last = leads[-1] if leads and more else None
        return CursorPage[LeadView](
            items=[LeadView.of(lead) for lead in leads],
            total=total,
            limit=limit,
            offset=offset,
            next_cursor=Cursor.after(last.created_at, last.id).encode() if last else None,
        )

    return routes
