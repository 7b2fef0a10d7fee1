"""One handler per consumed event: fold it into its lead's or deal's facts, then move the figures by
what the facts now contribute that they did not before (see :mod:`kariz_reports.domain.facts`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kariz_reports.domain.facts import Attribution, DealFacts, LeadFacts, difference
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork
from kariz_shared.contracts.events import (
    ActivityLogged,
    DealLost,
    DealOpened,
    DealUpdated,
    DealWon,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadResponseOverdue,
    LeadsMerged,
    StageChanged,
)


def _who(uow: ReportsUnitOfWork, owner: str) -> Attribution:
    return Attribution(owner, uow.teams.team_of(owner))


async def _lead(uow: ReportsUnitOfWork, lead_id: str) -> LeadFacts:
    return await uow.facts.lead(lead_id) or LeadFacts(lead_id)


async def _settle_lead(uow: ReportsUnitOfWork, facts: LeadFacts, dims_before: tuple[Any, ...]) -> None:
    """Move the figures to what ``facts`` contribute now; its deals' too when the lead's dimensions
    changed (a capture told after the deal's win)."""
    now = facts.contributions(uow.zone)
    change = difference(facts.applied, now)
    if not change.empty:
        await uow.figures.change(change.retract, change.add)
    facts.applied = now
    await uow.facts.keep_lead(facts)
    if facts.dims() != dims_before:
        for deal in await uow.facts.deals_of(facts.lead_id):
            await _settle_deal(uow, deal, facts)


async def _settle_deal(uow: ReportsUnitOfWork, deal: DealFacts, lead: LeadFacts | None) -> None:
    now = deal.contributions(uow.zone, lead.dims() if lead else ())
    change = difference(deal.applied, now)
    if not change.empty:
        await uow.figures.change(change.retract, change.add)
    deal.applied = now
    await uow.facts.keep_deal(deal)


def _on_lead(
    lead_id: Callable[[Any], str], fold: Callable[[ReportsUnitOfWork, LeadFacts, Any], None]
) -> Callable[[ReportsUnitOfWork, Any], Awaitable[None]]:
    async def handle(uow: ReportsUnitOfWork, event: Any) -> None:
        facts = await _lead(uow, lead_id(event))
        before = facts.dims()
        fold(uow, facts, event)
        await _settle_lead(uow, facts, before)

    return handle


count_lead_captured = _on_lead(lambda e: e.lead_id, lambda uow, f, e: f.fold_captured(e, _who(uow, e.owner)))
count_lead_qualified = _on_lead(
    lambda e: e.lead_id, lambda uow, f, e: f.fold_qualified(e, _who(uow, e.owner))
)
count_lead_disqualified = _on_lead(
    lambda e: e.lead_id, lambda uow, f, e: f.fold_disqualified(e, _who(uow, e.owner))
)
count_activity = _on_lead(lambda e: e.lead_id, lambda uow, f, e: f.fold_activity(e, _who(uow, e.owner)))
count_response_overdue = _on_lead(
    lambda e: e.lead_id, lambda uow, f, e: f.fold_overdue(e, _who(uow, e.owner))
)
#: The duplicate leaves the funnel: the survivor already counts as the lead.
uncount_merged_lead = _on_lead(lambda e: e.merged_lead_id, lambda uow, f, e: f.fold_merged_away(e))


def _on_deal(
    fold: Callable[[ReportsUnitOfWork, DealFacts, Any], None],
) -> Callable[[ReportsUnitOfWork, Any], Awaitable[None]]:
    async def handle(uow: ReportsUnitOfWork, event: Any) -> None:
        deal = await uow.facts.deal(event.deal_id) or DealFacts(event.deal_id, event.lead_id)
        fold(uow, deal, event)
        await _settle_deal(uow, deal, await uow.facts.lead(deal.lead_id))

    return handle


count_deal_opened = _on_deal(lambda uow, d, e: d.fold_opened(e, _who(uow, e.owner)))
count_stage_change = _on_deal(lambda uow, d, e: d.fold_stage_changed(e, _who(uow, e.owner)))
count_deal_won = _on_deal(lambda uow, d, e: d.fold_won(e, _who(uow, e.owner)))
count_deal_lost = _on_deal(lambda uow, d, e: d.fold_lost(e, _who(uow, e.owner)))
#: An edit moves the deal in the forecast (its amount, close date or owner).
count_deal_update = _on_deal(lambda uow, d, e: d.fold_updated(e, _who(uow, e.owner)))

#: Which handler folds which event.
HANDLERS: dict[type, Callable[[ReportsUnitOfWork, Any], Awaitable[None]]] = {
    LeadCaptured: count_lead_captured,
    LeadQualified: count_lead_qualified,
    LeadDisqualified: count_lead_disqualified,
    ActivityLogged: count_activity,
    LeadResponseOverdue: count_response_overdue,
    LeadsMerged: uncount_merged_lead,
    DealOpened: count_deal_opened,
    StageChanged: count_stage_change,
    DealWon: count_deal_won,
    DealLost: count_deal_lost,
    DealUpdated: count_deal_update,
}
