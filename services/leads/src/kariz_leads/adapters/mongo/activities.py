"""Activities and follow-ups on MongoDB: their documents and repositories, inside one transaction.

Collections: ``activities`` (one document per activity, ``_id`` = its id, never changed) and ``tasks``
(one per follow-up, ``_id`` = its id; a requested follow-up's id is its request's, so a repeated request
finds it). Their indexes are declared in :mod:`.indexes`.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from kariz_leads.adapters.mongo.documents import LEADS, OPEN_FOLLOW_UPS, Document, utc
from kariz_leads.domain.activity import Activity
from kariz_leads.domain.task import Task, TaskFilter, TaskStatus
from kariz_shared.contracts.events import ActivityChannel, ActivityDirection, ActivityOutcome, TaskKind
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.store import Transaction, find_page

ACTIVITIES = "activities"
TASKS = "tasks"


def activity_to_document(activity: Activity) -> Document:
    return {
        "_id": activity.id,
        "lead_id": activity.lead_id,
        "deal_id": activity.deal_id,
        "owner": activity.owner,
        "channel": activity.channel.value,
        "direction": activity.direction.value,
        "outcome": activity.outcome.value,
        "duration_s": activity.duration_s,
        "note": activity.note,
        "agreed": activity.agreed,
        "occurred_at": activity.occurred_at,
        "logged_at": activity.logged_at,
        "logged_by": activity.logged_by.who,
        "on_behalf_of": activity.logged_by.on_behalf_of,
    }


def activity_from_document(doc: Document) -> Activity:
    return Activity(
        id=doc["_id"],
        lead_id=doc["lead_id"],
        deal_id=doc.get("deal_id"),
        owner=doc["owner"],
        channel=ActivityChannel(doc["channel"]),
        direction=ActivityDirection(doc["direction"]),
        outcome=ActivityOutcome(doc["outcome"]),
        duration_s=doc.get("duration_s"),
        note=doc.get("note"),
        agreed=doc.get("agreed"),
        occurred_at=utc(doc["occurred_at"]),
        logged_at=utc(doc["logged_at"]),
        logged_by=Actor(doc["logged_by"], doc.get("on_behalf_of")),
    )


def task_to_document(task: Task) -> Document:
    return {
        "_id": task.id,
        "lead_id": task.lead_id,
        "deal_id": task.deal_id,
        "assignee": task.assignee,
        "kind": task.kind.value,
        "title": task.title,
        "note": task.note,
        "due_at": task.due_at,
        "status": task.status.value,
        "created_by": task.created_by,
        "created_at": task.created_at,
        "correlation_id": task.correlation_id,
        "completed_by": task.completed_by,
        "completed_at": task.completed_at,
        "completed_activity_id": task.completed_activity_id,
        "cancelled_by": task.cancelled_by,
        "cancelled_at": task.cancelled_at,
        "snoozed": task.snoozed,
        "request_id": task.request_id,
        "updated_at": task.updated_at,
    }


def _at(value: Any) -> Any:
    return utc(value) if value is not None else None


def task_from_document(doc: Document) -> Task:
    return Task(
        id=doc["_id"],
        lead_id=doc["lead_id"],
        deal_id=doc.get("deal_id"),
        assignee=doc["assignee"],
        kind=TaskKind(doc["kind"]),
        title=doc["title"],
        note=doc.get("note"),
        due_at=utc(doc["due_at"]),
        status=TaskStatus(doc["status"]),
        created_by=doc["created_by"],
        created_at=utc(doc["created_at"]),
        correlation_id=doc["correlation_id"],
        completed_by=doc.get("completed_by"),
        completed_at=_at(doc.get("completed_at")),
        completed_activity_id=doc.get("completed_activity_id"),
        cancelled_by=doc.get("cancelled_by"),
        cancelled_at=_at(doc.get("cancelled_at")),
        snoozed=int(doc.get("snoozed", 0)),
        request_id=doc.get("request_id"),
        updated_at=_at(doc.get("updated_at")),
    )


def task_selector(criteria: TaskFilter) -> Document:
    """The query of the follow-ups ``criteria`` match (served by the ``tasks`` indexes)."""
    query: Document = {}
    if criteria.assignees.these is not None:
        query["assignee"] = {"$in": sorted(criteria.assignees.these)}
    if criteria.status is not None:
        query["status"] = criteria.status.value
    if criteria.due_before is not None:
        query["due_at"] = {"$lt": criteria.due_before}
    return query


class MongoActivityRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.activities = tx.db[ACTIVITIES]

    async def get(self, activity_id: str) -> Activity | None:
        doc = await self.activities.find_one({"_id": activity_id}, session=self.tx.session)
        return activity_from_document(doc) if doc else None

    async def add(self, activity: Activity) -> None:
        await self.activities.insert_one(activity_to_document(activity), session=self.tx.session)

    async def of_lead(self, lead_id: str, *, limit: int, offset: int) -> tuple[list[Activity], int]:
        docs, total = await find_page(
            self.activities,
            {"lead_id": lead_id},
            sort=[("occurred_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit,
            offset=offset,
            session=self.tx.session,
        )
        return [activity_from_document(doc) for doc in docs], total

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        await self.activities.update_many(
            {"lead_id": from_lead_id}, {"$set": {"lead_id": to_lead_id}}, session=self.tx.session
        )


class MongoTaskRepository:
    """Written at once (not at commit), so a later read in the same transaction sees it: two requests of
    one follow-up in one consumed batch make one."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.tasks = tx.db[TASKS]

    async def get(self, task_id: str) -> Task | None:
        doc = await self.tasks.find_one({"_id": task_id}, session=self.tx.session)
        return task_from_document(doc) if doc else None

    async def add(self, task: Task) -> None:
        await self.tasks.insert_one(task_to_document(task), session=self.tx.session)
        await self._count_open(task.lead_id, 1 if task.status is TaskStatus.OPEN else 0)

    async def save(self, task: Task) -> None:
        before = await self.tasks.find_one_and_replace(
            {"_id": task.id}, task_to_document(task), projection={"status": 1}, session=self.tx.session
        )
        was_open = before is not None and before.get("status") == TaskStatus.OPEN.value
        await self._count_open(task.lead_id, (task.status is TaskStatus.OPEN) - was_open)

    async def _count_open(self, lead_id: str, change: int) -> None:
        """Keep the lead's count of open follow-ups (``GET /leads?has_open_follow_up=``) in this
        transaction."""
        if change:
            await self.tx.db[LEADS].update_one(
                {"_id": lead_id}, {"$inc": {OPEN_FOLLOW_UPS: change}}, session=self.tx.session
            )

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        still_open = await self.tasks.count_documents(
            {"lead_id": from_lead_id, "status": TaskStatus.OPEN.value}, session=self.tx.session
        )
        await self.tasks.update_many(
            {"lead_id": from_lead_id}, {"$set": {"lead_id": to_lead_id}}, session=self.tx.session
        )
        if still_open:
            await self._count_open(from_lead_id, -still_open)
            await self._count_open(to_lead_id, still_open)

    async def open_of_lead(self, lead_id: str) -> list[Task]:
        found = self.tasks.find(
            {"lead_id": lead_id, "status": TaskStatus.OPEN.value}, session=self.tx.session
        ).sort([("due_at", ASCENDING), ("_id", ASCENDING)])
        return [task_from_document(doc) async for doc in found]

    async def search(self, criteria: TaskFilter, *, limit: int, offset: int) -> tuple[list[Task], int]:
        docs, total = await find_page(
            self.tasks,
            task_selector(criteria),
            sort=[("due_at", ASCENDING), ("_id", ASCENDING)],
            limit=limit,
            offset=offset,
            session=self.tx.session,
        )
        return [task_from_document(doc) for doc in docs], total
