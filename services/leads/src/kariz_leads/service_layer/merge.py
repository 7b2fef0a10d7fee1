"""Merging two records of one person: the duplicate is folded into the survivor (``POST /leads/{id}/merge``).

One unit of work does all of it or nothing: the survivor takes the duplicate's touches, contact attempts,
first contact and (when better) its verdict (see ``Lead.merge``); the duplicate's activities, follow-ups
and history entries become the survivor's (one update each); its open follow-ups of the duplicate's
owner go to the survivor's owner, and every open one's timer is armed again so that its ``FollowUpDue``
names the survivor; the duplicate's response-SLA timers are disarmed; ``LeadsMerged`` goes to the outbox.

Afterwards the merged record stays readable (status ``merged``, ``merged_into``) and everything that
arrives for it later goes to its survivor: a capture of its address touches the survivor, a requested
follow-up opens there, and a verdict counts for the survivor when it is the better one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kariz_leads.domain.lead import Lead
from kariz_leads.service_layer.response import stop_response_timers_if_answered
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import NotFound, RuleViolation, found
from kariz_shared.contracts.identity import Actor, Owners
from kariz_shared.persistence.unit_of_work import UnitsOfWork

#: How many merges a record's survivor is followed through (a survivor merged later into a third lead).
#: Merges into a merged lead are refused, so a chain only grows one merge at a time; this bounds a read.
MAX_HOPS = 20


@dataclass(frozen=True)
class MergeLeads:
    """Fold ``duplicate_id`` into ``lead_id`` (the survivor), saying why if the person merging wants."""

    lead_id: str
    duplicate_id: str
    reason: str | None = None


async def merge_leads(
    units: UnitsOfWork[LeadsUnitOfWork],
    command: MergeLeads,
    *,
    seen: Owners,
    by: Actor,
    correlation_id: str,
) -> Lead:
    """Merge two leads the caller sees (404 for either out of reach, as if absent); the survivor as it
    is after the merge."""
    if command.duplicate_id == command.lead_id:
        raise RuleViolation(f"duplicate_id: lead {command.lead_id} cannot be merged into itself")

    async def work(uow: LeadsUnitOfWork) -> Lead:
        survivor = await _in_reach(uow, command.lead_id, seen, "")
        duplicate = await _in_reach(uow, command.duplicate_id, seen, "duplicate_id: ")
        at = uow.clock.now()
        survivor.merge(duplicate, at, by, command.reason)
        open_follow_ups = await uow.tasks.open_of_lead(duplicate.id)
        await uow.tasks.move(duplicate.id, survivor.id)
        await uow.activities.move(duplicate.id, survivor.id)
        await uow.history.move(duplicate.id, survivor.id)
        await uow.leads.save_merge(survivor)
        await uow.leads.save_merge(duplicate)
        uow.history.add([*survivor.pull_changes(), *duplicate.pull_changes()])
        for task in open_follow_ups:
            task.move_to_lead(survivor.id)
            # The duplicate's owner no longer works this person; someone else's follow-up stays theirs.
            if task.assignee == duplicate.owner:
                task.reassign(survivor.owner, at, by)
            await uow.tasks.save(task)
            # The armed FollowUpDue is a copy naming the duplicate: armed again, due when it was.
            uow.timers.arm(task.timer_key(), task.due_at, task.due(), correlation_id=task.correlation_id)
            uow.history.add(task.pull_changes())
        for event in survivor.pull_events():
            uow.emit(event)
        # Nobody owes the merged record an answer; the survivor may be answered now by the other's attempts.
        uow.timers.cancel(duplicate.response_timer_key())
        uow.timers.cancel(duplicate.escalation_timer_key())
        stop_response_timers_if_answered(uow, survivor)
        uow.after_commit(uow.metrics.merged)
        return survivor

    return await units.run(work, correlation_id=correlation_id)


async def survivor_of(uow: LeadsUnitOfWork, lead: Lead) -> Lead:
    """``lead`` itself or, for a merged record, the lead it lives on in (through later merges too)."""
    hops = 0
    while lead.merged_into is not None:
        hops += 1
        if hops > MAX_HOPS:
            raise RuntimeError(f"lead {lead.id} is merged through more than {MAX_HOPS} leads")
        lead = found(
            await uow.leads.get(lead.merged_into), f"lead {lead.id} was merged into a lead that is not stored"
        )
    return lead


async def survivors_by_address(uow: LeadsUnitOfWork, known: dict[str, Lead]) -> dict[str, Lead]:
    """Known leads by address, each merged one replaced by its survivor: a capture of a merged record's
    address touches the survivor. Two addresses of one survivor get the one copy of it."""
    survivors: dict[str, Lead] = {lead.id: lead for lead in known.values() if lead.merged_into is None}
    found_by: dict[str, Lead] = {}
    for email, lead in known.items():
        if lead.merged_into is not None:
            survivor = await survivor_of(uow, lead)
            lead = survivors.setdefault(survivor.id, survivor)
        found_by[email] = lead
    return found_by


async def verdict_after_merge(
    uow: LeadsUnitOfWork, merged: Lead, decide: Callable[[Lead], None], by: Actor
) -> None:
    """Qualification's verdict on a record merged meanwhile (it decided before it learnt of the merge):
    the merged record's history keeps the verdict and its status stays ``merged``; the survivor takes
    it when it is the better one (the rule of the merge itself)."""
    decide(merged)  # the verdict as the record would have had it, never stored on it
    uow.history.add(merged.pull_changes())
    survivor = await survivor_of(uow, merged)
    if survivor.take_verdict_of_merged(merged, uow.clock.now(), by):
        await uow.leads.save_verdict(survivor)
        uow.history.add(survivor.pull_changes())
        stop_response_timers_if_answered(uow, survivor)


async def _in_reach(uow: LeadsUnitOfWork, lead_id: str, seen: Owners, field: str) -> Lead:
    missing = f"{field}no lead with id {lead_id!r}"
    lead = await uow.leads.get(lead_id)
    if lead is None or not seen.include(lead.owner):
        raise NotFound(missing)
    return lead
