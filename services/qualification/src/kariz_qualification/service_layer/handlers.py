"""One function per command and per consumed event: load through the unit of work's repositories, let
the lead decide, add or save it, publish what it raised.

Events raised for a lead carry the correlation id stored with it, so a decision taken over HTTP days
later still belongs to the lead's original story.
"""

from __future__ import annotations

import logging

from kariz_qualification.domain.customers import WonAccount, account_key
from kariz_qualification.domain.lead import Lead, Scoring
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.service_layer.commands import (
    DisqualifyLead,
    RecordAnswers,
    RecordChecklist,
    ReplaceRules,
)
from kariz_qualification.service_layer.nurture import follow_nurture
from kariz_qualification.service_layer.outcomes import keep_if_qualified
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_qualification.service_layer.views import lead_or_not_found
from kariz_qualification.service_layer.views import survivor as _survivor
from kariz_shared.contracts.errors import DuplicateRecord
from kariz_shared.contracts.events import DealWon, LeadCaptured, LeadsMerged
from kariz_shared.contracts.versions import raced
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.logging import correlation_id as current_correlation_id

log = logging.getLogger(__name__)


# --- consumed events ------------------------------------------------------------------------------


async def capture_lead(uow: QualificationUnitOfWork, event: LeadCaptured) -> None:
    """Take a captured lead into qualification: snapshot, score, and decide if the score says so."""
    if await uow.leads.is_known(event.lead_id):
        # The same lead captured again (a re-publication with a new event id): it has been scored already
        # and may be decided; scoring it again could decide it twice.
        log.info("lead already under qualification; ignoring", extra={"lead_id": event.lead_id})
        return
    in_force = await uow.rules.current()
    # The consumer sets the incoming event's correlation id; the lead id is a last resort.
    story = current_correlation_id.get() or event.lead_id
    customer = await uow.accounts.get(account_key(event.company))
    lead = Lead.capture(
        event, story, in_force.rules, uow.clock.now(), rules_version=in_force.number, customer=customer
    )
    survivor_id = await uow.merges.survivor_of(event.lead_id)
    if survivor_id is not None:
        # Merged in leads before its capture got here. Its own scoring's verdict is published as any
        # capture's (leads and deals take it to the survivor), and folded into the survivor here.
        lead.merge_into(survivor_id)
    follow_nurture(uow, lead, in_force.rules)
    uow.leads.add(lead)
    _publish_and_observe(uow, lead, lead.scorings[-1])
    if survivor_id is not None:
        survivor = await _survivor(uow, survivor_id)
        if survivor is not None:
            survivor.absorb(lead, uow.clock.now())
            follow_nurture(uow, survivor, in_force.rules)
            await uow.leads.save(survivor)


async def follow_merge(uow: QualificationUnitOfWork, event: LeadsMerged) -> None:
    """Two leads were merged in leads: the survivor's record takes the better qualification of the two
    (``Lead.absorb``) and the duplicate's is marked merged into it. Nothing is published: the better
    verdict was published when it was made (a ``LeadQualified`` of the duplicate opened its deal, which
    deals points to the survivor), and a ``LeadQualified`` now would open a second deal.

    Idempotent (a redelivered merge finds the duplicate merged already) and order-tolerant: a duplicate
    not seen yet is remembered (its capture is folded in when it comes); a survivor not seen yet leaves
    the duplicate merged with nothing to fold into."""
    duplicate = await uow.leads.get(event.merged_lead_id)
    if duplicate is None:
        await uow.merges.record(event.merged_lead_id, event.lead_id, event.merged_at)
        log.info("merge of a lead not captured here yet; remembered", extra={"lead_id": event.merged_lead_id})
        return
    if duplicate.merged_into is not None:
        return  # this merge (or one before it) was applied
    duplicate.merge_into(event.lead_id)
    rules = (await uow.rules.current()).rules
    follow_nurture(uow, duplicate, rules)  # the survivor is nurtured for both
    await uow.leads.save(duplicate)
    survivor = await _survivor(uow, event.lead_id)
    if survivor is None:
        log.info("merge into a lead not captured here yet", extra={"lead_id": event.lead_id})
        return
    survivor.absorb(duplicate, uow.clock.now())
    follow_nurture(uow, survivor, rules)
    await uow.leads.save(survivor)


async def record_won_account(uow: QualificationUnitOfWork, event: DealWon) -> None:
    """A deal was won: its lead's account is an existing customer from now on, so its next leads are
    qualified as upsell or cross-sell opportunities. A deal of a lead not held here is remembered by
    nothing: qualification knows an account only by its leads' companies."""
    lead = await _survivor(uow, event.lead_id)
    if lead is None:
        log.info("deal won for a lead not under qualification", extra={"lead_id": event.lead_id})
        return
    await uow.accounts.add(
        WonAccount(
            account_key(lead.company), event.account_id, event.account_name, event.won_at, event.deal_id
        )
    )


# --- commands -------------------------------------------------------------------------------------


async def record_answers(units: UnitsOfWork[QualificationUnitOfWork], command: RecordAnswers) -> Lead:
    async def work(uow: QualificationUnitOfWork) -> Lead:
        lead = await lead_or_not_found(uow, command.lead_id, command.seen)
        in_force = await uow.rules.current()
        scoring = lead.record_answers(
            command.answers, in_force.rules, uow.clock.now(), rules_version=in_force.number, by=command.by
        )
        follow_nurture(uow, lead, in_force.rules)
        await uow.leads.save(lead)
        _publish_and_observe(uow, lead, scoring)
        return lead

    return await units.run(work, correlation_id=await _story_of(units, command.lead_id))


async def record_checklist(units: UnitsOfWork[QualificationUnitOfWork], command: RecordChecklist) -> Lead:
    """Record some answers of a lead's checklist (its methodology's: another is refused, 422); the lead
    is rescored and may be decided: qualified once the required items are in and the score is enough,
    disqualified by a hard no."""

    async def work(uow: QualificationUnitOfWork) -> Lead:
        lead = await lead_or_not_found(uow, command.lead_id, command.seen)
        in_force = await uow.rules.current()
        scoring = lead.record_checklist(
            command.methodology,
            command.answers,
            in_force.rules,
            uow.clock.now(),
            rules_version=in_force.number,
            by=command.by,
        )
        follow_nurture(uow, lead, in_force.rules)
        await uow.leads.save(lead)
        _publish_and_observe(uow, lead, scoring)
        return lead

    return await units.run(work, correlation_id=await _story_of(units, command.lead_id))


async def disqualify_lead(units: UnitsOfWork[QualificationUnitOfWork], command: DisqualifyLead) -> Lead:
    async def work(uow: QualificationUnitOfWork) -> Lead:
        lead = await lead_or_not_found(uow, command.lead_id, command.seen)
        in_force = await uow.rules.current()
        lead.disqualify(command.reason, uow.clock.now(), command.by, rules=in_force.rules)
        follow_nurture(uow, lead, in_force.rules)
        await uow.leads.save(lead)
        _publish_and_observe(uow, lead, None)
        return lead

    return await units.run(work, correlation_id=await _story_of(units, command.lead_id))


async def replace_rules(units: UnitsOfWork[QualificationUnitOfWork], command: ReplaceRules) -> RuleSetVersion:
    """Put the rule set in force as a new version; leads already scored keep their scorings, later
    scorings use the new one. Refused (409) when the admin edited a version no longer in force, or when
    a concurrent replacement took the same version number first."""
    numbers: list[int] = []

    async def work(uow: QualificationUnitOfWork) -> RuleSetVersion:
        in_force = await uow.rules.current()
        version = in_force.replaced_by(
            command.rules, uow.clock.now(), command.actor, edited=command.edited_version
        )
        numbers.append(version.number)
        await uow.rules.add(version)
        return version

    try:
        return await units.run(work)
    except DuplicateRecord as exc:
        # Both read the same version in force; the other's new version committed first (a unique _id).
        raise raced("the rule set", numbers[-1]) from exc


# --- internals ------------------------------------------------------------------------------------


async def _story_of(units: UnitsOfWork[QualificationUnitOfWork], lead_id: str) -> str:
    """The correlation id stored with the lead at capture: its events continue that story."""

    async def read(uow: QualificationUnitOfWork) -> str:
        return (await lead_or_not_found(uow, lead_id)).correlation_id

    return await units.read(read)


def _publish_and_observe(uow: QualificationUnitOfWork, lead: Lead, scoring: Scoring | None) -> None:
    uow.publish(lead)
    # A decision is final and a decided lead refuses every change, so a decision here was made just now.
    decided = lead.decision
    if decided is not None and decided.outcome == "qualified":
        keep_if_qualified(uow, lead)
    metrics = uow.metrics

    def observe() -> None:
        if scoring is not None:
            metrics.scored(scoring)
        if decided is not None:
            metrics.decided(decided)

    uow.after_commit(observe)
