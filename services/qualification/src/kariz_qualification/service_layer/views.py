"""The read side: what the HTTP API answers with."""

from __future__ import annotations

from datetime import datetime

from kariz_qualification.domain.calibration import WinModel
from kariz_qualification.domain.lead import Lead
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.domain.rules import RuleSet
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.errors import NotFound, found
from kariz_shared.contracts.identity import EVERYONE, Owners
from kariz_shared.persistence.unit_of_work import UnitsOfWork


async def qualification_of(
    units: UnitsOfWork[QualificationUnitOfWork], lead_id: str, seen: Owners = EVERYONE
) -> Lead:
    async def read(uow: QualificationUnitOfWork) -> Lead:
        return await lead_or_not_found(uow, lead_id, seen)

    return await units.read(read)


async def qualification_and_rules(
    units: UnitsOfWork[QualificationUnitOfWork], lead_id: str, seen: Owners = EVERYONE
) -> tuple[Lead, RuleSet]:
    """The lead and the rule set in force, whose verdict rules say what its checklist still misses."""

    async def read(uow: QualificationUnitOfWork) -> tuple[Lead, RuleSet]:
        return await lead_or_not_found(uow, lead_id, seen), (await uow.rules.current()).rules

    return await units.read(read)


async def qualification_and_rules_now(
    units: UnitsOfWork[QualificationUnitOfWork], lead_id: str, seen: Owners = EVERYONE
) -> tuple[Lead, RuleSet, datetime, WinModel | None]:
    """The lead, the rule set in force, the time now (its engagement is decayed to now) and the
    calibration in force (its probability of winning), in one read."""

    async def read(uow: QualificationUnitOfWork) -> tuple[Lead, RuleSet, datetime, WinModel | None]:
        lead = await lead_or_not_found(uow, lead_id, seen)
        rules = (await uow.rules.current()).rules
        return lead, rules, uow.clock.now(), await uow.calibrations.latest()

    return await units.read(read)


async def rules_and_calibration(
    units: UnitsOfWork[QualificationUnitOfWork],
) -> tuple[RuleSet, WinModel | None]:
    """The rule set in force and the calibration in force, in one read."""

    async def read(uow: QualificationUnitOfWork) -> tuple[RuleSet, WinModel | None]:
        return (await uow.rules.current()).rules, await uow.calibrations.latest()

    return await units.read(read)


async def current_rules(units: UnitsOfWork[QualificationUnitOfWork]) -> RuleSetVersion:
    """The version of the rule set in force."""

    async def read(uow: QualificationUnitOfWork) -> RuleSetVersion:
        return await uow.rules.current()

    return await units.read(read)


async def rule_set_versions(
    units: UnitsOfWork[QualificationUnitOfWork], limit: int, offset: int
) -> tuple[list[RuleSetVersion], int]:
    """One page of the rule set's versions, newest first, and how many there are."""

    async def read(uow: QualificationUnitOfWork) -> tuple[list[RuleSetVersion], int]:
        return await uow.rules.page(limit, offset)

    return await units.read(read)


async def rule_set_version(units: UnitsOfWork[QualificationUnitOfWork], number: int) -> RuleSetVersion:
    async def read(uow: QualificationUnitOfWork) -> RuleSetVersion:
        version = await uow.rules.get(number)
        if version is None:
            # Only on a miss: say where the numbers end, so the asker need not list them.
            in_force = (await uow.rules.current()).number
            raise NotFound(f"the rule set has no version {number}; version {in_force} is in force")
        return version

    return await units.read(read)


async def leads_by_status(
    units: UnitsOfWork[QualificationUnitOfWork], query: LeadsByStatus, limit: int, offset: int
) -> tuple[list[LeadSummary], int]:
    async def read(uow: QualificationUnitOfWork) -> tuple[list[LeadSummary], int]:
        return await uow.leads.page(query, limit, offset)

    return await units.read(read)


def not_under_qualification(lead_id: str) -> str:
    """What an absent lead answers, and a lead out of the asker's reach too (it is not there for them)."""
    return (
        f"lead {lead_id} is not under qualification: its LeadCaptured event has not arrived "
        "(yet); if the lead was captured just now, try again in a moment"
    )


async def lead_or_not_found(uow: QualificationUnitOfWork, lead_id: str, seen: Owners = EVERYONE) -> Lead:
    lead = found(await uow.leads.get(lead_id), not_under_qualification(lead_id))
    seen.sees(lead.owner, not_under_qualification(lead_id))
    return lead


#: How many merges a survivor is followed through (merged meanwhile into a third lead).
MAX_HOPS = 20


async def survivor(uow: QualificationUnitOfWork, lead_id: str) -> Lead | None:
    """The lead ``lead_id`` lives on in: itself, or the lead it was merged into since (None: unknown)."""
    lead = await uow.leads.get(lead_id)
    for _ in range(MAX_HOPS):
        if lead is None or lead.merged_into is None:
            return lead
        lead = await uow.leads.get(lead.merged_into)
    return None
