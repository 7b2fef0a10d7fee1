"""The notification rules' versions in MongoDB (collection ``rule_set_versions``, ``_id`` = number):
each version whole, never changed once stored; version 0 seeded at the first start."""

from __future__ import annotations

from datetime import UTC, time, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from kariz_notifications.domain.automation import (
    Action,
    ActionKind,
    AutomationRule,
    ChatAction,
    Condition,
    ContentAction,
    CustomerMessage,
    EmailAction,
    Operator,
    QuietHours,
    RecipientRole,
    Recipients,
    RuleSetVersion,
    TaskAction,
    WebhookAction,
)
from kariz_notifications.domain.content import ContentChoice
from kariz_notifications.domain.templates import EmailTexts
from kariz_shared.contracts.events import TaskKind
from kariz_shared.persistence.in_force import InForce
from kariz_shared.persistence.store import Store, Transaction, find_page
from kariz_shared.runtime.clock import Clock

RULE_SET_VERSIONS = "rule_set_versions"
Doc = dict[str, Any]


def _recipients_doc(r: Recipients) -> Doc:
    return {"role": r.role.value, "field": r.field, "addresses": list(r.addresses)}


def _recipients(doc: Doc) -> Recipients:
    return Recipients(RecipientRole(doc["role"]), doc.get("field"), tuple(doc.get("addresses", ())))


def _action_doc(a: Action) -> Doc:
    return {**_action_fields(a), "delay_s": a.delay.total_seconds()}


def _action_fields(a: Action) -> Doc:
    if isinstance(a, EmailAction):
        quiet = a.quiet_hours
        return {
            "digest_s": a.digest.total_seconds(),
            "quiet_hours": None
            if quiet is None
            else {"start": quiet.start.isoformat(), "end": quiet.end.isoformat()},
            "kind": a.kind.value,
            "recipients": [_recipients_doc(r) for r in a.recipients],
            "builtin": a.builtin,
            "templates": {
                k: {"subject": t.subject, "text": t.text, "html": t.html} for k, t in a.templates.items()
            },
        }
    if isinstance(a, WebhookAction):
        return {"kind": a.kind.value, "subscriber": a.subscriber}
    if isinstance(a, ChatAction):
        return {"kind": a.kind.value, "destination": a.destination, "title": a.title, "text": a.text}
    if isinstance(a, ContentAction):
        c = a.choice
        return {
            "kind": a.kind.value,
            "message": a.message.value,
            "content_id": c.content_id,
            "tags": list(c.tags),
            "stage_field": c.stage_field,
            "segments": list(c.segments),
            "tags_field": c.tags_field,
        }
    return {
        "kind": a.kind.value,
        "assignee": _recipients_doc(a.assignee),
        "title": a.title,
        "task": a.task.value,
        "due_in_s": a.due_in.total_seconds(),
    }


def _action(doc: Doc) -> Action:
    kind = ActionKind(doc["kind"])
    delay = timedelta(seconds=doc.get("delay_s", 0))
    if kind is ActionKind.EMAIL:
        quiet = doc.get("quiet_hours")
        return EmailAction(
            delay=delay,
            digest=timedelta(seconds=doc.get("digest_s", 0)),
            quiet_hours=None
            if quiet is None
            else QuietHours(time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"])),
            recipients=tuple(_recipients(r) for r in doc["recipients"]),
            builtin=doc.get("builtin"),
            templates={
                k: EmailTexts(t["subject"], t["text"], t.get("html"))
                for k, t in doc.get("templates", {}).items()
            },
        )
    if kind is ActionKind.WEBHOOK:
        return WebhookAction(doc["subscriber"], delay=delay)
    if kind is ActionKind.CHAT:
        return ChatAction(doc["destination"], doc["title"], doc["text"], delay=delay)
    if kind is ActionKind.CONTENT:
        choice = ContentChoice(
            content_id=doc.get("content_id"),
            tags=tuple(doc.get("tags", ())),
            stage_field=doc.get("stage_field"),
            segments=tuple(doc.get("segments", ())),
            tags_field=doc.get("tags_field"),
        )
        return ContentAction(choice, CustomerMessage(doc.get("message", "content")), delay=delay)
    return TaskAction(
        assignee=_recipients(doc["assignee"]),
        title=doc["title"],
        task=TaskKind(doc["task"]),
        due_in=timedelta(seconds=doc["due_in_s"]),
        delay=delay,
    )


def rule_document(rule: AutomationRule) -> Doc:
    return {
        "id": rule.id,
        "trigger": rule.trigger,
        "enabled": rule.enabled,
        "description": rule.description,
        "conditions": [{"field": c.field, "op": c.op.value, "value": c.value} for c in rule.conditions],
        "actions": [_action_doc(a) for a in rule.actions],
    }


def rule_from_document(doc: Doc) -> AutomationRule:
    return AutomationRule(
        id=doc["id"],
        trigger=doc["trigger"],
        enabled=doc.get("enabled", True),
        description=doc.get("description", ""),
        conditions=tuple(Condition(c["field"], Operator(c["op"]), c.get("value")) for c in doc["conditions"]),
        actions=tuple(_action(a) for a in doc["actions"]),
    )


def version_document(version: RuleSetVersion) -> Doc:
    return {
        "_id": version.number,
        "took_effect_at": version.took_effect_at,
        "actor": version.actor,
        "rules": [rule_document(r) for r in version.rules],
    }


def version_from_document(doc: Doc) -> RuleSetVersion:
    return RuleSetVersion(
        number=int(doc["_id"]),
        rules=tuple(rule_from_document(r) for r in doc["rules"]),
        took_effect_at=doc["took_effect_at"].astimezone(UTC),
        actor=doc["actor"],
    )


class MongoRuleSetVersions:
    def __init__(
        self, tx: Transaction, clock: Clock, in_force: InForce[RuleSetVersion] | None = None
    ) -> None:
        self.tx, self.clock, self.cache = tx, clock, in_force
        self.versions = tx.db[RULE_SET_VERSIONS]

    async def current(self) -> RuleSetVersion:
        doc = await self.versions.find_one({}, sort=[("_id", DESCENDING)], session=self.tx.session)
        return version_from_document(doc) if doc else RuleSetVersion.seeded(self.clock.now())

    async def in_force(self) -> RuleSetVersion:
        if self.cache is None:
            return await self.current()
        return await self.cache.get(self.clock.now(), self._read_outside)

    async def _read_outside(self) -> RuleSetVersion:
        # The process's copy is shared by every unit: read outside this one's transaction.
        doc = await self.versions.find_one({}, sort=[("_id", DESCENDING)])
        return version_from_document(doc) if doc else RuleSetVersion.seeded(self.clock.now())

    async def get(self, number: int) -> RuleSetVersion | None:
        doc = await self.versions.find_one({"_id": number}, session=self.tx.session)
        if doc is None and number == 0:
            return RuleSetVersion.seeded(self.clock.now())
        return version_from_document(doc) if doc else None

    async def add(self, version: RuleSetVersion) -> None:
        await self.versions.insert_one(version_document(version), session=self.tx.session)
        if self.cache is not None:
            cache, now = self.cache, self.clock.now()
            self.tx.after_commit(lambda: cache.took_effect(version, now))

    async def page(self, *, limit: int, offset: int) -> tuple[list[RuleSetVersion], int]:
        docs, total = await find_page(
            self.versions, {}, sort=[("_id", DESCENDING)], limit=limit, offset=offset, session=self.tx.session
        )
        return [version_from_document(doc) for doc in docs], total


async def seed_rule_set(store: Store, clock: Clock) -> None:
    """Version 0 (the default rules), stored once: when the first start put it in force."""
    seeded = version_document(RuleSetVersion.seeded(clock.now()))
    del seeded["_id"]
    try:
        await store.db[RULE_SET_VERSIONS].update_one({"_id": 0}, {"$setOnInsert": seeded}, upsert=True)
    except DuplicateKeyError:
        pass  # another replica seeded it at the same time
