"""The use cases of the runtime rules (``/rules``): read the rules in force and their versions, add a
rule or replace one as the next version, and preview what a rule makes of a sample event."""

from __future__ import annotations

from dataclasses import dataclass

from kariz_notifications.domain import rules
from kariz_notifications.domain.automation import (
    WHAT,
    AutomationRule,
    ContentAction,
    RuleSetVersion,
    check_rule,
)
from kariz_notifications.domain.model import Delivery, EventContext
from kariz_notifications.service_layer.handlers import customer_reach
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.errors import DuplicateRecord, NotFound, RuleViolation
from kariz_shared.contracts.events import Event, TaskRequested
from kariz_shared.contracts.versions import raced
from kariz_shared.persistence.unit_of_work import UnitsOfWork

#: The ids a preview's deliveries are keyed by: nothing is recorded, so nothing can collide.
PREVIEW = EventContext(event_id="preview", correlation_id="preview")


async def in_force(units: UnitsOfWork[NotificationsUnitOfWork]) -> RuleSetVersion:
    async def read(uow: NotificationsUnitOfWork) -> RuleSetVersion:
        return await uow.rules.current()

    return await units.read(read)


async def version(units: UnitsOfWork[NotificationsUnitOfWork], number: int) -> RuleSetVersion:
    async def read(uow: NotificationsUnitOfWork) -> RuleSetVersion | None:
        return await uow.rules.get(number)

    found = await units.read(read)
    if found is None:
        current = await in_force(units)
        raise NotFound(f"no version {number} of {WHAT}; version {current.number} is in force")
    return found


async def versions(
    units: UnitsOfWork[NotificationsUnitOfWork], *, limit: int, offset: int
) -> tuple[list[RuleSetVersion], int]:
    async def read(uow: NotificationsUnitOfWork) -> tuple[list[RuleSetVersion], int]:
        return await uow.rules.page(limit=limit, offset=offset)

    return await units.read(read)


async def _change(
    units: UnitsOfWork[NotificationsUnitOfWork],
    rule: AutomationRule,
    actor: str,
    edited: int | None,
    *,
    add: bool,
) -> RuleSetVersion:
    numbers: list[int] = []

    async def work(uow: NotificationsUnitOfWork) -> RuleSetVersion:
        known = uow.audience
        rules.check_builtins(
            check_rule(rule, [s.name for s in known.subscribers], [c.name for c in known.chats])
        )
        for n, action in enumerate(rule.actions):
            # A piece named by id must be in the library now (one retired later is skipped, logged).
            named = action.choice.content_id if isinstance(action, ContentAction) else None
            if named is not None:
                item = await uow.content.get(named)
                if item is None or item.retired:
                    raise RuleViolation(f"actions[{n}].content_id: no active content {named!r} in /content")
        current = await uow.rules.current()
        at = uow.clock.now()
        changed = (
            current.adding(rule, at, actor, edited) if add else current.replacing(rule, at, actor, edited)
        )
        numbers.append(changed.number)
        await uow.rules.add(changed)
        return changed

    try:
        return await units.run(work)
    except DuplicateRecord as exc:
        raise raced(WHAT, numbers[-1]) from exc


async def add_rule(
    units: UnitsOfWork[NotificationsUnitOfWork], rule: AutomationRule, actor: str, edited: int | None
) -> RuleSetVersion:
    """Put the rule set with ``rule`` added in force as the next version (422 for a rule that cannot
    run, 409 for an id taken or a stale ``edited``)."""
    return await _change(units, rule, actor, edited, add=True)


async def replace_rule(
    units: UnitsOfWork[NotificationsUnitOfWork], rule: AutomationRule, actor: str, edited: int | None
) -> RuleSetVersion:
    """Put the rule set with the rule of ``rule.id`` replaced in force as the next version (404 for no
    such rule)."""
    return await _change(units, rule, actor, edited, add=False)


@dataclass(frozen=True)
class Preview:
    """What a rule would make of an event: nothing of it is recorded or sent."""

    matched: bool
    deliveries: list[Delivery]
    tasks: list[TaskRequested]
    notes: tuple[str, ...]


async def preview(units: UnitsOfWork[NotificationsUnitOfWork], rule_id: str, event: Event) -> Preview:
    """Rule ``rule_id`` of the version in force run on ``event`` (disabled or not), sending nothing."""

    async def read(uow: NotificationsUnitOfWork) -> Preview:
        rule = (await uow.rules.current()).rule(rule_id)
        matched = rule.matches(event.event_name(), event.model_dump())
        if not matched:
            return Preview(matched=False, deliveries=[], tasks=[], notes=())
        planned = rules.plan(
            event,
            PREVIEW,
            uow.audience,
            uow.reps,
            (rule,),
            at=uow.clock.now(),
            include_disabled=True,
            subscriptions=False,
            reach=await customer_reach(uow, event, (rule,)),
        )
        gathered = tuple(
            f"{email.to}: joins the {int(length.total_seconds() // 60)}-minute digest of {rid}: "
            f"{email.subject}"
            for rid, _, length, _, email in planned.digests
        )
        later = tuple(f"{d.recipient or 'the action'}: at {d.due_at.isoformat()}" for d in planned.deferrals)
        return Preview(True, planned.deliveries, planned.tasks, planned.notes + gathered + later)

    return await units.read(read)
