"""The use cases of content and consent: the content library (``/content``), a contact's consent as a
user records it (``/contacts/{lead_id}/consent``), and an unsubscribe by the link of a content e-mail
(``/unsubscribe/{token}``). A withdrawal and an unsubscribe publish ``ContactUnsubscribed`` through the
outbox in the unit that records them, so nurture stops (issue D) exactly when the record is kept."""

from __future__ import annotations

from dataclasses import dataclass

from kariz_notifications.domain.content import Contact, ContentDraft, ContentItem
from kariz_notifications.domain.unsubscribe import BadToken
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.errors import Conflict, DuplicateRecord, NotFound
from kariz_shared.contracts.events import ContactUnsubscribed
from kariz_shared.contracts.identity import Owners
from kariz_shared.persistence.unit_of_work import UnitsOfWork

# --- the library ---------------------------------------------------------------------------------


async def create_content(
    units: UnitsOfWork[NotificationsUnitOfWork], content_id: str, draft: ContentDraft, actor: str
) -> ContentItem:
    async def work(uow: NotificationsUnitOfWork) -> ContentItem:
        item = ContentItem.created(content_id, draft, actor, uow.clock.now())
        await uow.content.add(item)
        return item

    try:
        return await units.run(work)
    except DuplicateRecord as exc:
        raise Conflict(f"id: content {content_id!r} exists already; change it with PUT") from exc


async def content_item(units: UnitsOfWork[NotificationsUnitOfWork], content_id: str) -> ContentItem:
    async def read(uow: NotificationsUnitOfWork) -> ContentItem | None:
        return await uow.content.get(content_id)

    found = await units.read(read)
    if found is None:
        raise NotFound(f"no content {content_id!r}")
    return found


async def content_page(
    units: UnitsOfWork[NotificationsUnitOfWork],
    *,
    tag: str | None,
    stage: str | None,
    retired: bool,
    limit: int,
    offset: int,
) -> tuple[list[ContentItem], int]:
    async def read(uow: NotificationsUnitOfWork) -> tuple[list[ContentItem], int]:
        return await uow.content.page(tag=tag, stage=stage, retired=retired, limit=limit, offset=offset)

    return await units.read(read)


async def revise_content(
    units: UnitsOfWork[NotificationsUnitOfWork],
    content_id: str,
    draft: ContentDraft,
    actor: str,
    edited: int | None,
) -> ContentItem:
    async def work(uow: NotificationsUnitOfWork) -> ContentItem:
        item = await _item(uow, content_id)
        item.revise(draft, actor, uow.clock.now(), edited)
        await uow.content.save(item)
        return item

    return await units.run(work)


async def retire_content(
    units: UnitsOfWork[NotificationsUnitOfWork], content_id: str, actor: str, edited: int | None
) -> ContentItem:
    """Retire an item: it is never sent again (a retired one stays, named by the deliveries it made)."""

    async def work(uow: NotificationsUnitOfWork) -> ContentItem:
        item = await _item(uow, content_id)
        if not item.retired:
            item.retire(actor, uow.clock.now(), edited)
            await uow.content.save(item)
        return item

    return await units.run(work)


async def _item(uow: NotificationsUnitOfWork, content_id: str) -> ContentItem:
    item = await uow.content.get(content_id)
    if item is None:
        raise NotFound(f"no content {content_id!r}")
    return item


# --- contacts and consent ------------------------------------------------------------------------


async def contact(units: UnitsOfWork[NotificationsUnitOfWork], lead_id: str, *, seen: Owners) -> Contact:
    """The contact of a lead the caller reaches (a lead out of reach is 404, as an unknown one)."""

    async def read(uow: NotificationsUnitOfWork) -> Contact:
        return await _contact_in_reach(uow, lead_id, seen)

    return await units.read(read)


async def _contact_in_reach(uow: NotificationsUnitOfWork, lead_id: str, seen: Owners) -> Contact:
    missing = f"no contact known for lead {lead_id!r}"
    found = await uow.contacts.current(lead_id)
    if found is None:
        raise NotFound(missing)
    seen.sees(found.owner, missing)
    return found


@dataclass(frozen=True)
class ConsentChange:
    contact: Contact
    changed: bool


async def record_consent(
    units: UnitsOfWork[NotificationsUnitOfWork],
    lead_id: str,
    given: bool,
    *,
    seen: Owners,
    actor: str,
    locale: str | None = None,
) -> ConsentChange:
    """Record the contact's consent given or withdrawn, by ``actor``; a withdrawal publishes
    ``ContactUnsubscribed`` (the same again changes nothing and publishes nothing)."""

    async def work(uow: NotificationsUnitOfWork) -> ConsentChange:
        found = await _contact_in_reach(uow, lead_id, seen)
        at = uow.clock.now()
        consented = found.record_consent(given, actor, at)
        relocated = locale is not None and locale != found.locale
        if relocated:
            found.locale = locale
        changed = consented or relocated
        if changed:
            await uow.contacts.save(found)
        if consented and not given:
            uow.emit(
                ContactUnsubscribed(lead_id=found.lead_id, email=found.email, unsubscribed_at=at, actor=actor)
            )
        return ConsentChange(found, changed)

    return await units.run(work)


async def check_token(units: UnitsOfWork[NotificationsUnitOfWork], token: str) -> None:
    """A 422 naming the token unless it is one signed here; nothing is recorded."""

    async def read(uow: NotificationsUnitOfWork) -> None:
        if uow.links is None:
            raise BadToken("token: unsubscribe links are not set up here (no KARIZ_UNSUBSCRIBE_SECRET)")
        uow.links.read(token)

    await units.read(read)


async def unsubscribe(units: UnitsOfWork[NotificationsUnitOfWork], token: str) -> ConsentChange:
    """The contact followed the unsubscribe link of a content e-mail: recorded once, published once
    (``ContactUnsubscribed``); the same link again changes nothing. A token not signed here is a 422
    naming it."""

    async def work(uow: NotificationsUnitOfWork) -> ConsentChange:
        if uow.links is None:
            raise BadToken("token: unsubscribe links are not set up here (no KARIZ_UNSUBSCRIBE_SECRET)")
        asked = uow.links.read(token)
        found = await uow.contacts.current(asked.lead_id)
        if found is None:
            raise NotFound(f"token: no contact known for lead {asked.lead_id!r}")
        at = uow.clock.now()
        # The contact acts for themself: their address is the actor, as a person's is.
        changed = found.unsubscribe(asked.email, at)
        if changed:
            await uow.contacts.save(found)
            uow.emit(
                ContactUnsubscribed(
                    lead_id=found.lead_id,
                    email=asked.email,
                    content_id=asked.content_id,
                    unsubscribed_at=at,
                    actor=asked.email,
                )
            )
        return ConsentChange(found, changed)

    return await units.run(work)
