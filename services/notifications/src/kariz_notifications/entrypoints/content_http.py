"""Content and consent over HTTP: the content library (``/content``: managers and admins write, every
signed-in person reads), a lead's contact and its consent (``/contacts/{lead_id}``: whoever sees the
lead), and the unsubscribe link of a content e-mail (``/unsubscribe/{token}``), the one route here
without a bearer credential: the signed token in its path is the credential."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from kariz_notifications.domain.content import ConsentRecord, Contact, ContentDraft, ContentItem
from kariz_notifications.domain.unsubscribe import MAX_TOKEN_CHARS
from kariz_notifications.service_layer import content
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.identity import Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated
from kariz_shared.runtime.http import IF_MATCH, Limit, Offset, Page, edited_version, version_etag

ContentId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="The item's id")]
LeadId = Annotated[str, Path(min_length=1, max_length=128, description="The lead's id")]
Token = Annotated[str, Path(min_length=1, max_length=MAX_TOKEN_CHARS, description="From the e-mail's link")]
Tag = Annotated[str, Field(max_length=64, description="lower-case letters, digits, '-' and '_'")]
PEOPLE = (Role.REP, Role.MANAGER, Role.ADMIN)
IfMatch = Annotated[
    str | None,
    Header(pattern=IF_MATCH, description='The ETag of the item as read (e.g. "2"): 409 if it moved on'),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentChange(Strict):
    title: str = Field(min_length=1, max_length=200)
    link: str | None = Field(default=None, max_length=2000, description="An http(s) URL; or attachment")
    attachment: str | None = Field(
        default=None, max_length=500, description="A document's reference (a DMS id, a file name); or link"
    )
    description: str = Field(default="", max_length=2000)
    stages: list[Tag] = Field(default=[], max_length=20, description="The stages it suits; none: every")
    segments: list[Tag] = Field(default=[], max_length=20, description="The segments it suits; none: every")
    tags: list[Tag] = Field(default=[], max_length=20, description="What nurture steps ask for")

    def draft(self) -> ContentDraft:
        return ContentDraft(
            title=self.title,
            link=self.link,
            attachment=self.attachment,
            stages=tuple(self.stages),
            segments=tuple(self.segments),
            tags=tuple(self.tags),
            description=self.description,
        )


class NewContent(ContentChange):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="e.g. case-study-acme")


class ContentView(BaseModel):
    id: str
    title: str
    link: str | None
    attachment: str | None
    description: str
    stages: list[str]
    segments: list[str]
    tags: list[str]
    retired: bool
    version: int
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, item: ContentItem) -> ContentView:
        d = item.draft
        return cls(
            id=item.id,
            title=d.title,
            link=d.link,
            attachment=d.attachment,
            description=d.description,
            stages=list(d.stages),
            segments=list(d.segments),
            tags=list(d.tags),
            retired=item.retired,
            version=item.version,
            created_by=item.created_by,
            created_at=item.created_at,
            updated_by=item.updated_by,
            updated_at=item.updated_at,
        )


class ConsentView(BaseModel):
    given: bool
    by: str = Field(description="Who recorded it: a user, capture:<source>, or the contact's address")
    at: datetime

    @classmethod
    def of(cls, c: ConsentRecord) -> ConsentView:
        return cls(given=c.given, by=c.by, at=c.at)


class ContactView(BaseModel):
    lead_id: str = Field(description="The lead whose contact it is (a merged lead's: the survivor)")
    email: str
    name: str
    owner: str
    locale: str | None
    consent: ConsentView | None = Field(description="As last recorded; none: content is not sent")
    unsubscribed_at: datetime | None
    may_receive_content: bool
    history: list[ConsentView]

    @classmethod
    def of(cls, c: Contact) -> ContactView:
        return cls(
            lead_id=c.lead_id,
            email=c.email,
            name=c.name,
            owner=c.owner,
            locale=c.locale,
            consent=ConsentView.of(c.consent) if c.consent is not None else None,
            unsubscribed_at=c.unsubscribed_at,
            may_receive_content=c.skip_reason() is None,
            history=[ConsentView.of(h) for h in c.history],
        )


class ConsentChange(Strict):
    given: bool = Field(description="true: consent given (again); false: withdrawn (ContactUnsubscribed)")
    locale: str | None = Field(
        default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="The contact's language, e.g. fa-IR"
    )


class ConsentAnswer(ContactView):
    changed: bool = Field(description="False when it was recorded so already")


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such item, or no contact of a lead the caller sees"},
    409: {"description": "If-Match names a version no longer current, or the id is taken"},
    422: {"description": "A field that cannot be, named"},
}


def _page(title: str, text: str, form: str = "") -> HTMLResponse:
    return HTMLResponse(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{form}</body></html>"
    )


def router(units: UnitsOfWork[NotificationsUnitOfWork]) -> APIRouter:
    api = APIRouter(tags=["content"], responses={**SIGN_IN_ERRORS, **ERRORS})

    @api.post("/content", status_code=201, summary="Add a piece to the content library")
    async def create(body: NewContent, caller: Authenticated, response: Response) -> ContentView:
        caller.require(Role.MANAGER, Role.ADMIN)
        item = await content.create_content(units, body.id, body.draft(), caller.actor)
        response.headers["Location"] = f"/content/{item.id}"
        response.headers["ETag"] = version_etag(item.version)
        return ContentView.of(item)

    @api.get("/content", summary="The library, newest first (retired pieces only when asked)")
    async def listing(
        caller: Authenticated,
        tag: Annotated[str | None, Query(max_length=64)] = None,
        stage: Annotated[str | None, Query(max_length=64)] = None,
        retired: bool = False,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[ContentView]:
        caller.require(*PEOPLE)
        found, total = await content.content_page(
            units,
            tag=tag.lower() if tag else None,
            stage=stage.lower() if stage else None,
            retired=retired,
            limit=limit,
            offset=offset,
        )
        return Page(items=[ContentView.of(c) for c in found], total=total, limit=limit, offset=offset)

    @api.get("/content/{content_id}", summary="One piece (its version in the ETag)")
    async def get(content_id: ContentId, caller: Authenticated, response: Response) -> ContentView:
        caller.require(*PEOPLE)
        item = await content.content_item(units, content_id)
        response.headers["ETag"] = version_etag(item.version)
        return ContentView.of(item)

    @api.put("/content/{content_id}", summary="Replace a piece's title, link, stages, segments and tags")
    async def revise(
        content_id: ContentId,
        body: ContentChange,
        caller: Authenticated,
        response: Response,
        if_match: IfMatch = None,
    ) -> ContentView:
        caller.require(Role.MANAGER, Role.ADMIN)
        item = await content.revise_content(
            units, content_id, body.draft(), caller.actor, edited_version(if_match)
        )
        response.headers["ETag"] = version_etag(item.version)
        return ContentView.of(item)

    @api.post("/content/{content_id}/retire", summary="Retire a piece: never sent again, kept on record")
    async def retire(
        content_id: ContentId, caller: Authenticated, response: Response, if_match: IfMatch = None
    ) -> ContentView:
        caller.require(Role.MANAGER, Role.ADMIN)
        item = await content.retire_content(units, content_id, caller.actor, edited_version(if_match))
        response.headers["ETag"] = version_etag(item.version)
        return ContentView.of(item)

    @api.get("/contacts/{lead_id}", summary="A lead's contact and consent, as notifications keeps them")
    async def get_contact(lead_id: LeadId, caller: Authenticated) -> ContactView:
        caller.require(*PEOPLE)
        return ContactView.of(await content.contact(units, lead_id, seen=caller.seen))

    @api.put("/contacts/{lead_id}/consent", summary="Record consent given or withdrawn, with its actor")
    async def put_consent(lead_id: LeadId, body: ConsentChange, caller: Authenticated) -> ConsentAnswer:
        caller.require(*PEOPLE)
        changed = await content.record_consent(
            units, lead_id, body.given, seen=caller.seen, actor=caller.actor, locale=body.locale
        )
        return ConsentAnswer(**ContactView.of(changed.contact).model_dump(), changed=changed.changed)

    # The contact has no account: the signed token is the credential (domain.unsubscribe). GET only shows
    # a button, since mail scanners open links; the POST (the button, or the mail client's one click,
    # RFC 8058) unsubscribes.
    public = APIRouter(tags=["content"], responses={422: {"description": "token: not one signed here"}})

    @public.get("/unsubscribe/{token}", summary="The unsubscribe page of a content e-mail's link")
    async def unsubscribe_page(token: Token) -> HTMLResponse:
        await content.check_token(units, token)
        form = '<form method="post"><button>Unsubscribe</button></form>'  # posts to this same link
        return _page("Unsubscribe", "Receive no more e-mails like this one from us.", form)

    @public.post("/unsubscribe/{token}", summary="Unsubscribe (ContactUnsubscribed); again: no change")
    async def unsubscribe(token: Token) -> HTMLResponse:
        changed = await content.unsubscribe(units, token)
        text = "You will receive no more e-mails like this one." if changed.changed else "You were already."
        return _page("Unsubscribed", text)

    both = APIRouter()
    both.include_router(api)
    both.include_router(public)
    return both
