"""API keys for machines (web forms, partner feeds, trade-show scanners), kept in the service's own
database: issued and revoked by an admin, stored as a SHA-256 of the secret (the secret is shown once,
at issue), each with scopes and an optional source and campaign it captures for.

A key reads ``kariz_<id>_<secret>``: the id finds nothing by itself, the secret is 32 random bytes, so a
plain hash suffices (no password stretching: nothing here is guessable).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from kariz_shared.contracts.errors import found
from kariz_shared.contracts.identity import Caller, KeyGrant, Scope
from kariz_shared.persistence.store import Store
from kariz_shared.runtime.auth import IssuedKey, KeyRequest, KeyView

API_KEYS = "api_keys"
PREFIX = "kariz_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class MongoApiKeys:
    """The service's keys in its ``api_keys`` collection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def ensure_indexes(self, store: Store) -> None:
        await store.db[API_KEYS].create_index([("digest", ASCENDING)], unique=True, name="digest_unique")

    async def issue(self, request: KeyRequest, *, by: str, at: datetime) -> IssuedKey:
        key_id = secrets.token_hex(6)
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        doc = {
            "_id": key_id,
            "digest": _digest(secret),
            "name": request.name,
            "scopes": sorted(request.scopes),
            "source": request.source.value if request.source else None,
            "campaign": request.campaign,
            "on_behalf_of": request.on_behalf_of or by,
            "created_at": at,
            "created_by": by,
            "revoked_at": None,
            "revoked_by": None,
        }
        await self.store.db[API_KEYS].insert_one(doc)
        return IssuedKey(**_view(doc).model_dump(), key=secret)

    async def caller(self, secret: str) -> Caller | None:
        if not secret.startswith(PREFIX):
            return None
        doc = await self.store.db[API_KEYS].find_one({"digest": _digest(secret), "revoked_at": None})
        if doc is None:
            return None
        grant = KeyGrant(doc["_id"], doc["name"], doc.get("source"), doc.get("campaign"), _on_behalf_of(doc))
        return Caller.with_key(
            grant, frozenset(Scope(s) for s in doc["scopes"] if s in Scope.__members__.values())
        )

    async def revoke(self, key_id: str, *, by: str, at: datetime) -> KeyView:
        keys = self.store.db[API_KEYS]
        doc = await keys.find_one_and_update(
            {"_id": key_id, "revoked_at": None},
            {"$set": {"revoked_at": at, "revoked_by": by}},
            return_document=ReturnDocument.AFTER,
        )
        # Revoking a revoked key changes nothing: it answers the key as it was revoked.
        return _view(found(doc or await keys.find_one({"_id": key_id}), f"no API key {key_id!r}"))

    async def listing(self) -> list[KeyView]:
        docs = await self.store.db[API_KEYS].find({}).sort("created_at", -1).to_list(1000)
        return [_view(d) for d in docs]


def _view(doc: dict[str, Any]) -> KeyView:
    return KeyView(
        id=doc["_id"],
        name=doc["name"],
        scopes=doc["scopes"],
        source=doc.get("source"),
        campaign=doc.get("campaign"),
        on_behalf_of=_on_behalf_of(doc),
        created_at=doc["created_at"],
        created_by=doc["created_by"],
        revoked_at=doc.get("revoked_at"),
        revoked_by=doc.get("revoked_by"),
    )


def _on_behalf_of(doc: dict[str, Any]) -> str:
    # Keys issued before keys named whom they act for act for the admin who issued them.
    return str(doc.get("on_behalf_of") or doc["created_by"])
