"""Contacts and the content library in MongoDB (collections ``contacts``, ``_id`` = lead id, and
``content``, ``_id`` = the item's id, saved over the version it was read at)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from kariz_notifications.domain.content import (
    MAX_MERGE_HOPS,
    ConsentRecord,
    Contact,
    ContentDraft,
    ContentItem,
)
from kariz_shared.contracts.errors import Conflict, DuplicateRecord
from kariz_shared.persistence.store import Transaction, find_page

CONTACTS = "contacts"
CONTENT = "content"
Doc = dict[str, Any]
CONTENT_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def _utc(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC) if at is not None else None


def _consent_doc(c: ConsentRecord) -> Doc:
    return {"given": c.given, "by": c.by, "at": c.at}


def _consent(doc: Doc) -> ConsentRecord:
    return ConsentRecord(doc["given"], doc["by"], doc["at"].astimezone(UTC))


def contact_document(c: Contact) -> Doc:
    return {
        "_id": c.lead_id,
        "email": c.email,
        "name": c.name,
        "owner": c.owner,
        "locale": c.locale,
        "consent": _consent_doc(c.consent) if c.consent is not None else None,
        "unsubscribed_at": c.unsubscribed_at,
        "merged_into": c.merged_into,
        "history": [_consent_doc(h) for h in c.history],
    }


def contact_from_document(doc: Doc) -> Contact:
    return Contact(
        lead_id=doc["_id"],
        email=doc["email"],
        name=doc["name"],
        owner=doc["owner"],
        locale=doc.get("locale"),
        consent=_consent(doc["consent"]) if doc.get("consent") else None,
        unsubscribed_at=_utc(doc.get("unsubscribed_at")),
        merged_into=doc.get("merged_into"),
        history=[_consent(h) for h in doc.get("history", [])],
    )


def content_document(item: ContentItem) -> Doc:
    d = item.draft
    return {
        "_id": item.id,
        "title": d.title,
        "link": d.link,
        "attachment": d.attachment,
        "description": d.description,
        "stages": list(d.stages),
        "segments": list(d.segments),
        "tags": list(d.tags),
        "retired": item.retired,
        "created_by": item.created_by,
        "created_at": item.created_at,
        "updated_by": item.updated_by,
        "updated_at": item.updated_at,
        "version": item.version,
    }


def content_from_document(doc: Doc) -> ContentItem:
    draft = ContentDraft(
        title=doc["title"],
        link=doc.get("link"),
        attachment=doc.get("attachment"),
        description=doc.get("description", ""),
        stages=tuple(doc.get("stages", ())),
        segments=tuple(doc.get("segments", ())),
        tags=tuple(doc.get("tags", ())),
    )
    return ContentItem(
        id=doc["_id"],
        draft=draft,
        created_by=doc["created_by"],
        created_at=doc["created_at"].astimezone(UTC),
        updated_by=doc["updated_by"],
        updated_at=doc["updated_at"].astimezone(UTC),
        retired=doc.get("retired", False),
        version=doc.get("version", 1),
    )


class MongoContacts:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[CONTACTS]

    async def get(self, lead_id: str) -> Contact | None:
        # Written at once, not queued: a batch's later event (a merge after the capture) reads it back.
        doc = await self.collection.find_one({"_id": lead_id}, session=self.tx.session)
        return contact_from_document(doc) if doc else None

    async def current(self, lead_id: str) -> Contact | None:
        found = await self.get(lead_id)
        for _ in range(MAX_MERGE_HOPS):
            if found is None or found.merged_into is None:
                break
            found = await self.get(found.merged_into)
        return found

    async def save(self, contact: Contact) -> None:
        await self.collection.replace_one(
            {"_id": contact.lead_id}, contact_document(contact), upsert=True, session=self.tx.session
        )


class MongoContentLibrary:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[CONTENT]

    async def get(self, content_id: str) -> ContentItem | None:
        doc = await self.collection.find_one({"_id": content_id}, session=self.tx.session)
        return content_from_document(doc) if doc else None

    async def add(self, item: ContentItem) -> None:
        try:
            await self.collection.insert_one(content_document(item), session=self.tx.session)
        except DuplicateKeyError as exc:
            raise DuplicateRecord(f"content {item.id} exists") from exc

    async def save(self, item: ContentItem) -> None:
        doc = {**content_document(item), "version": item.version + 1}
        result = await self.collection.replace_one(
            {"_id": item.id, "version": item.version}, doc, session=self.tx.session
        )
        if result.matched_count != 1:
            raise Conflict(f"content {item.id!r} was changed meanwhile; reload it and apply your edit again")
        item.version += 1

    async def active(self) -> list[ContentItem]:
        # A curated library of a few hundred pieces: read whole, once per transaction (a batch's events).
        async def load() -> list[Doc]:
            found = self.collection.find({"retired": False}, session=self.tx.session)
            return [doc async for doc in found.sort([("created_at", 1), ("_id", 1)])]

        return [content_from_document(doc) for doc in await self.tx.once("content:active", load)]

    async def page(
        self, *, tag: str | None, stage: str | None, retired: bool, limit: int, offset: int
    ) -> tuple[list[ContentItem], int]:
        query: Doc = {"retired": retired}
        if tag is not None:
            query["tags"] = tag
        if stage is not None:
            # An item that names no stage suits every one.
            query["$or"] = [{"stages": stage}, {"stages": []}]
        docs, total = await find_page(
            self.collection,
            query,
            sort=CONTENT_NEWEST_FIRST,
            limit=limit,
            offset=offset,
            session=self.tx.session,
        )
        return [content_from_document(doc) for doc in docs], total
