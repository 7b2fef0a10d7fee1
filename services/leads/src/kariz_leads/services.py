"""Use cases of the leads service: capture a lead, record qualification's verdict, find leads.

Each write loads and saves through the repository inside one ``store.transaction``; its events go
through the transactional outbox. Work functions may be retried whole, so they only touch the database
and emit; metrics are counted by ``tx.after_commit``, for the attempt that committed only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pymongo.errors import DuplicateKeyError

from kariz_leads import metrics
from kariz_leads.adapters.mongo import EMAIL_INDEX, LeadRepository
from kariz_leads.domain import InvalidValue, Lead, LeadFilter, SalesTeam
from kariz_leads.domain.lead import now
from kariz_leads.domain.normalisation import (
    duplicate_key,
    normalise_company,
    normalise_contact,
    normalise_optional_text,
)
from kariz_shared.errors import NotFound, RuleViolation
from kariz_shared.events import Company, Contact, LeadDisqualified, LeadQualified, LeadSource
from kariz_shared.persistence import Store, Transaction


@dataclass(frozen=True)
class CaptureLead:
    """A lead as a source hands it over, before normalisation."""

    contact: Contact
    company: Company
    source: LeadSource
    campaign: str | None = None
    consent: bool = False


@dataclass(frozen=True)
class Captured:
    lead: Lead
    duplicate: bool


def new_lead_id() -> str:
    return str(uuid.uuid4())


async def capture_lead(
    store: Store, team: SalesTeam, command: CaptureLead, *, correlation_id: str
) -> Captured:
    """A new lead (assigned, LeadCaptured emitted) or, for a known address, a touch of the existing one."""
    try:
        contact = normalise_contact(command.contact)
        company = normalise_company(command.company, email=contact.email)
    except InvalidValue as exc:
        raise RuleViolation(str(exc)) from exc
    campaign = normalise_optional_text(command.campaign)
    lead_id = new_lead_id()
    rotation = team.rotation_for(company.country)
    # The turn is taken before the transaction, by one atomic increment of its own: inside, every capture
    # would write the same counter document and concurrent captures would conflict and retry each other
    # into timeouts. A turn whose capture then fails or turns out a duplicate is skipped; the rotation
    # stays fair. A known address (most repeats) takes no turn.
    turn: int | None = None
    if await LeadRepository(store.db).with_email(duplicate_key(contact.email)) is None:
        turn = await LeadRepository(store.db).next_turn(rotation.key)

    async def work(tx: Transaction) -> Captured:
        leads = LeadRepository(tx.db, tx.session)
        at = now()
        existing = await leads.with_email(duplicate_key(contact.email))
        if existing is not None:
            touch = existing.touch(command.source, campaign, at)
            await leads.add_touch(existing, touch)
            tx.after_commit(metrics.duplicates.labels(command.source.value).inc)
            return Captured(existing, duplicate=True)
        assignment = rotation.pick(turn if turn is not None else await leads.next_turn(rotation.key))
        lead = Lead.capture(
            lead_id=lead_id,
            contact=contact,
            company=company,
            source=command.source,
            campaign=campaign,
            consent=command.consent,
            assignment=assignment,
            correlation_id=correlation_id,
            at=at,
        )
        await leads.add(lead)
        tx.emit(lead.captured())
        tx.after_commit(metrics.captured.labels(command.source.value).inc)
        return Captured(lead, duplicate=False)

    try:
        return await store.transaction(work, correlation_id=correlation_id)
    except DuplicateKeyError as exc:
        if EMAIL_INDEX not in str(exc):
            raise
        # A concurrent capture of the same address committed first; this one is a touch of that lead.
        return await store.transaction(work, correlation_id=correlation_id)


async def get_lead(store: Store, lead_id: str) -> Lead:
    lead = await LeadRepository(store.db).get(lead_id)
    if lead is None:
        raise NotFound(f"no lead with id {lead_id!r}")
    return lead


async def find_leads(
    store: Store, criteria: LeadFilter, *, limit: int, offset: int
) -> tuple[list[Lead], int]:
    """Leads matching every criterion, newest first, one page of them, and how many match in all."""
    return await LeadRepository(store.db).search(criteria, limit=limit, offset=offset)


async def _known_lead(leads: LeadRepository, lead_id: str) -> Lead:
    lead = await leads.get(lead_id)
    if lead is None:
        raise NotFound(f"no lead with id {lead_id!r}")
    return lead


async def record_qualified(tx: Transaction, event: LeadQualified) -> Lead:
    leads = LeadRepository(tx.db, tx.session)
    lead = await _known_lead(leads, event.lead_id)
    lead.qualify(event.score, now())
    await leads.save_verdict(lead)
    return lead


async def record_disqualified(tx: Transaction, event: LeadDisqualified) -> Lead:
    leads = LeadRepository(tx.db, tx.session)
    lead = await _known_lead(leads, event.lead_id)
    lead.disqualify(event.reason, event.score, now())
    await leads.save_verdict(lead)
    return lead
