"""The read side: what the HTTP API answers with, read outside any transaction (``units.read``)."""

from __future__ import annotations

from kariz_leads.domain.duplicates import DuplicateCandidate, rank_duplicates
from kariz_leads.domain.history import LeadChange
from kariz_leads.domain.lead import Lead
from kariz_leads.domain.queries import LeadFilter
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import found
from kariz_shared.contracts.identity import Owners
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.unit_of_work import UnitsOfWork


async def lead(units: UnitsOfWork[LeadsUnitOfWork], lead_id: str) -> Lead:
    async def read(uow: LeadsUnitOfWork) -> Lead:
        return await lead_or_not_found(uow, lead_id)

    return await units.read(read)


async def leads_matching(
    units: UnitsOfWork[LeadsUnitOfWork], criteria: LeadFilter, *, limit: int, offset: int
) -> tuple[list[Lead], int]:
    """Leads matching every criterion, newest first, one page of them, and how many match in all."""

    async def read(uow: LeadsUnitOfWork) -> tuple[list[Lead], int]:
        return await uow.leads.search(criteria, limit=limit, offset=offset)

    return await units.read(read)


async def leads_after(
    units: UnitsOfWork[LeadsUnitOfWork], criteria: LeadFilter, *, after: Cursor, limit: int
) -> tuple[list[Lead], bool]:
    """The page after ``after`` of the leads matching every criterion, newest first, and whether more
    follow: keyset paging, as cheap however deep, nothing counted."""

    async def read(uow: LeadsUnitOfWork) -> tuple[list[Lead], bool]:
        return await uow.leads.search_after(criteria, after=after, limit=limit)

    return await units.read(read)


async def duplicate_candidates(
    units: UnitsOfWork[LeadsUnitOfWork], lead_id: str, seen: Owners, *, limit: int
) -> list[DuplicateCandidate]:
    """The leads that may be ``lead_id``'s contact again, best first, at most ``limit``, among those
    the caller sees; 404 for a lead out of their reach."""

    async def read(uow: LeadsUnitOfWork) -> list[DuplicateCandidate]:
        lead = await lead_or_not_found(uow, lead_id)
        seen.sees(lead.owner, f"no lead with id {lead_id!r}")
        # A merged record is its survivor's already: no candidate to merge again.
        candidates = [other for other in await uow.leads.candidates(lead, seen) if not other.is_merged]
        return rank_duplicates(lead, candidates, limit=limit)

    return await units.read(read)


async def history(
    units: UnitsOfWork[LeadsUnitOfWork], lead_id: str, seen: Owners, *, limit: int, offset: int
) -> tuple[list[LeadChange], int]:
    """One page of a lead's changes, newest first, for a caller who sees the lead (404 otherwise)."""

    async def read(uow: LeadsUnitOfWork) -> tuple[list[LeadChange], int]:
        lead = await lead_or_not_found(uow, lead_id)
        seen.sees(lead.owner, f"no lead with id {lead_id!r}")
        return await uow.history.of(lead_id, limit=limit, offset=offset)

    return await units.read(read)


async def lead_or_not_found(uow: LeadsUnitOfWork, lead_id: str) -> Lead:
    return found(await uow.leads.get(lead_id), f"no lead with id {lead_id!r}")
