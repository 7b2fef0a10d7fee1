"""The merges of leads a consumer heard of (``LeadsMerged``), by the merged lead, in the consumer's own
database: an event about the merged lead that comes later (its capture, its qualification: other topics,
so in no order with the merge) is the survivor's. Qualification and deals keep one each."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from kariz_shared.contracts.events import lead_id_of
from kariz_shared.persistence.store import Transaction

LEAD_MERGES = "lead_merges"


class LeadMerges(Protocol):
    async def record(self, merged_lead_id: str, survivor_id: str, at: datetime) -> None:
        """Remember that ``merged_lead_id`` was merged into ``survivor_id``; recording it again changes
        nothing."""
        ...

    async def survivor_of(self, lead_id: str) -> str | None:
        """The lead ``lead_id`` was merged into, if a merge of it was recorded. On MongoDB the first call
        reads the merges of every event of the consumed batch at once."""
        ...


class MongoLeadMerges:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def record(self, merged_lead_id: str, survivor_id: str, at: datetime) -> None:
        # An upsert that keeps the first: a redelivered merge writes nothing new.
        await self.tx.db[LEAD_MERGES].update_one(
            {"_id": merged_lead_id},
            {"$setOnInsert": {"survivor": survivor_id, "merged_at": at}},
            upsert=True,
            session=self.tx.session,
        )

    async def survivor_of(self, lead_id: str) -> str | None:
        doc = await self.tx.find_one_for_batch(LEAD_MERGES, "_id", lead_id, of_event=lead_id_of)
        return None if doc is None else str(doc["survivor"])


class InMemoryLeadMerges:
    def __init__(self) -> None:
        self.survivors: dict[str, str] = {}

    async def record(self, merged_lead_id: str, survivor_id: str, at: datetime) -> None:
        self.survivors.setdefault(merged_lead_id, survivor_id)

    async def survivor_of(self, lead_id: str) -> str | None:
        return self.survivors.get(lead_id)
