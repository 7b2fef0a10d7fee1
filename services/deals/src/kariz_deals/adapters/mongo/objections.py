"""Objections and the answer library in MongoDB: their documents, repositories (inside the unit of
work's transaction, ``session=`` on every call) and indexes.

An answer's usage and outcomes move by atomic updates (``$inc``, ``$push`` of a deal's outcome), never
by a save of a loaded answer: two reps giving the same answer at once are two writes to one document,
which MongoDB resolves by retrying one transaction, not a 409 for the rep. A curator's edit is a
versioned save of the words alone.
"""

from __future__ import annotations

import re
from typing import Any

from pymongo import ASCENDING

from kariz_deals.domain.objection import (
    AnswerGiven,
    Objection,
    ObjectionAnswer,
    ObjectionChange,
    Outcome,
    search_words,
)
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import ObjectionCategory, ObjectionJudgement, ObjectionStatus
from kariz_shared.persistence.store import Store, Transaction

OBJECTIONS = "objections"
ANSWERS = "objection_answers"

Document = dict[str, Any]


def objection_to_document(objection: Objection) -> Document:
    answer = objection.answer
    return {
        "_id": objection.id,
        "deal_id": objection.deal_id,
        "category": objection.category.value,
        "words": objection.words,
        "judgement": objection.judgement.value if objection.judgement else None,
        "status": objection.status.value,
        "answer": None if answer is None else {"text": answer.text, "answer_id": answer.answer_id},
        "recorded_by": objection.recorded_by,
        "recorded_at": objection.recorded_at,
        "updated_at": objection.updated_at,
        "history": [
            {"at": c.at, "by": c.by, "changed": dict(c.changed), "note": c.note} for c in objection.history
        ],
        "version": objection.version,
    }


def objection_from_document(doc: Document) -> Objection:
    answer = doc.get("answer")
    return Objection(
        id=doc["_id"],
        deal_id=doc["deal_id"],
        category=ObjectionCategory(doc["category"]),
        words=doc["words"],
        judgement=ObjectionJudgement(doc["judgement"]) if doc.get("judgement") else None,
        status=ObjectionStatus(doc["status"]),
        answer=None if answer is None else AnswerGiven(answer["text"], answer.get("answer_id")),
        recorded_by=doc["recorded_by"],
        recorded_at=doc["recorded_at"],
        updated_at=doc["updated_at"],
        history=[ObjectionChange(c["at"], c["by"], c["changed"], c.get("note")) for c in doc["history"]],
        version=doc.get("version", 0),
    )


def answer_to_document(answer: ObjectionAnswer) -> Document:
    return {
        "_id": answer.id,
        **_words_of(answer),
        "written_by": answer.written_by,
        "written_at": answer.written_at,
        "version": answer.version,
        "times_used": answer.times_used,
        "outcomes": [
            {"deal_id": deal_id, "outcome": outcome.value} for deal_id, outcome in answer.outcomes.items()
        ],
    }


def _words_of(answer: ObjectionAnswer) -> Document:
    """What a curator writes (and a save replaces)."""
    return {
        "category": answer.category.value,
        "title": answer.title,
        "title_key": answer.title.casefold(),
        "text": answer.text,
        "updated_by": answer.updated_by,
        "updated_at": answer.updated_at,
    }


def answer_from_document(doc: Document) -> ObjectionAnswer:
    return ObjectionAnswer(
        id=doc["_id"],
        category=ObjectionCategory(doc["category"]),
        title=doc["title"],
        text=doc["text"],
        written_by=doc["written_by"],
        written_at=doc["written_at"],
        updated_by=doc["updated_by"],
        updated_at=doc["updated_at"],
        version=doc.get("version", 0),
        times_used=doc.get("times_used", 0),
        outcomes={o["deal_id"]: Outcome(o["outcome"]) for o in doc.get("outcomes") or []},
    )


def answer_filter(text: str | None, category: ObjectionCategory | None) -> Document:
    """The answers ``ObjectionAnswer.matches``: the category, every word in the title or the text."""
    where: Document = {}
    if category is not None:
        where["category"] = category.value
    words = [re.escape(word) for word in search_words(text)]
    if words:
        # Case-insensitive substrings, as in memory; the library is a few hundred answers, scanned.
        where["$and"] = [
            {"$or": [{"title": {"$regex": w, "$options": "i"}}, {"text": {"$regex": w, "$options": "i"}}]}
            for w in words
        ]
    return where


class MongoObjectionRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.objections = tx.db[OBJECTIONS]

    async def get(self, objection_id: str) -> Objection | None:
        doc = await self.objections.find_one({"_id": objection_id}, session=self.tx.session)
        return objection_from_document(doc) if doc else None

    async def of_deal(self, deal_id: str) -> list[Objection]:
        docs = await self.objections.find(
            {"deal_id": deal_id},
            sort=[("recorded_at", ASCENDING), ("_id", ASCENDING)],
            session=self.tx.session,
        ).to_list()
        return [objection_from_document(doc) for doc in docs]

    async def add(self, objection: Objection) -> None:
        # Written now, not at commit: the same unit recounts the deal's blocking objections.
        await self.objections.insert_one(objection_to_document(objection), session=self.tx.session)

    async def save(self, objection: Objection) -> None:
        read_version = objection.version
        doc = objection_to_document(objection)
        doc["version"] = read_version + 1
        result = await self.objections.replace_one(
            {"_id": objection.id, "version": read_version}, doc, session=self.tx.session
        )
        if result.matched_count != 1:
            raise Conflict(
                f"objection {objection.id} was changed by another request meanwhile; reload it and try again"
            )
        objection.version = read_version + 1


class MongoObjectionAnswerRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.answers = tx.db[ANSWERS]

    async def get(self, answer_id: str) -> ObjectionAnswer | None:
        doc = await self.answers.find_one({"_id": answer_id}, session=self.tx.session)
        return answer_from_document(doc) if doc else None

    async def search(
        self, text: str | None, category: ObjectionCategory | None, *, limit: int, offset: int
    ) -> tuple[list[ObjectionAnswer], int]:
        where = answer_filter(text, category)
        docs = await self.answers.find(
            where,
            sort=[("category", ASCENDING), ("title_key", ASCENDING), ("_id", ASCENDING)],
            skip=offset,
            limit=limit,
            session=self.tx.session,
        ).to_list()
        total = await self.answers.count_documents(where, session=self.tx.session)
        return [answer_from_document(doc) for doc in docs], total

    async def add(self, answer: ObjectionAnswer) -> None:
        await self.answers.insert_one(answer_to_document(answer), session=self.tx.session)

    async def save(self, answer: ObjectionAnswer) -> None:
        read_version = answer.version
        result = await self.answers.update_one(
            {"_id": answer.id, "version": read_version},
            {"$set": {**_words_of(answer), "version": read_version + 1}},
            session=self.tx.session,
        )
        if result.matched_count != 1:
            raise Conflict(
                f"answer {answer.id} was changed by another request meanwhile; reload it and try again"
            )
        answer.version = read_version + 1

    async def count_use(self, answer_id: str) -> None:
        await self.answers.update_one(
            {"_id": answer_id}, {"$inc": {"times_used": 1}}, session=self.tx.session
        )

    async def count_outcome(self, answer_id: str, deal_id: str, outcome: Outcome) -> None:
        # Pushed only when the deal is not there yet: once per deal, whatever its id's characters.
        await self.answers.update_one(
            {"_id": answer_id, "outcomes.deal_id": {"$ne": deal_id}},
            {"$push": {"outcomes": {"deal_id": deal_id, "outcome": outcome.value}}},
            session=self.tx.session,
        )


async def ensure_indexes(store: Store) -> None:
    # A deal's objections, oldest first (GET, the blocking recount, the outcome count).
    await store.db[OBJECTIONS].create_index(
        [("deal_id", ASCENDING), ("recorded_at", ASCENDING)], name="deal_recorded"
    )
    # The library's order, within a category.
    await store.db[ANSWERS].create_index(
        [("category", ASCENDING), ("title_key", ASCENDING)], name="category_title"
    )
