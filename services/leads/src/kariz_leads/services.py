"""Use cases of the leads service: capture a lead, record qualification's verdict, find leads.

Each write loads and saves through the repository inside one ``store.transaction``; its events go
through the transactional outbox. Work functions may be retried whole, so they only touch the database
and emit; metrics are counted by ``tx.after_commit``, for the attempt that committed only.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo.errors import DuplicateKeyError

from kariz_leads import metrics
from kariz_leads.adapters.mongo import EMAIL_INDEX, LeadRepository
from kariz_leads.domain import InvalidValue, Lead, LeadFilter, SalesTeam
from kariz_leads.domain.lead import now
from kariz_shared.contracts.errors import NotFound, RuleViolation
from kariz_shared.contracts.events import Company, Contact, LeadDisqualified, LeadQualified, LeadSource
from kariz_shared.contracts.normalisation import (
    duplicate_key,
    normalise_company,
    normalise_contact,
    normalise_optional_text,
)
from kariz_shared.persistence.store import Store, Transaction

T = TypeVar("T")


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

    return await _once_more_if_raced(store, work, correlation_id)


class InvalidImport(RuleViolation):
    """Some leads of an import break a rule; nothing of the import was stored."""

    def __init__(self, problems: dict[int, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"leads.{n}: {problem}" for n, problem in sorted(problems.items())))


async def import_leads(
    store: Store, team: SalesTeam, commands: list[CaptureLead], *, correlation_id: str
) -> list[Captured]:
    """Capture a list of leads at once (a trade-show list, a partner's nightly file): all of them or,
    when one breaks a rule, none. Each new lead starts a story of its own (its own correlation id, its
    own ``LeadCaptured``); a known address, or one repeated in the list, is a touch, as for one capture.

    One transaction and a few bulk writes for the whole list instead of one transaction per lead."""
    problems: dict[int, str] = {}
    cleaned: list[tuple[CaptureLead, str | None]] = []
    for n, command in enumerate(commands):
        try:
            contact = normalise_contact(command.contact)
            company = normalise_company(command.company, email=contact.email)
        except InvalidValue as exc:
            problems[n] = str(exc)
            continue
        clean = CaptureLead(contact, company, command.source, command.campaign, command.consent)
        cleaned.append((clean, normalise_optional_text(command.campaign)))
    if problems:
        raise InvalidImport(problems)
    emails = list(dict.fromkeys(duplicate_key(c.contact.email) for c, _ in cleaned))
    # Turns are taken before the transaction, as for one capture, one increment per rotation.
    known = await LeadRepository(store.db).with_emails(emails)
    first_of_each: dict[str, CaptureLead] = {}
    for command, _ in cleaned:
        first_of_each.setdefault(duplicate_key(command.contact.email), command)
    wanted = Counter(
        team.rotation_for(command.company.country).key
        for key, command in first_of_each.items()
        if key not in known
    )
    turns = {key: await LeadRepository(store.db).next_turns(key, n) for key, n in wanted.items()}

    async def work(tx: Transaction) -> list[Captured]:
        leads = LeadRepository(tx.db, tx.session)
        at = now()
        existing = await leads.with_emails(emails)
        new: dict[str, Lead] = {}  # by address: inserted together at the end
        results: list[Captured] = []
        used: Counter[str] = Counter()  # per attempt: a retried transaction hands out the same turns
        for command, campaign in cleaned:
            key = duplicate_key(command.contact.email)
            if key in existing:
                lead = existing[key]
                touch = lead.touch(command.source, campaign, at)
                if key not in new:  # a lead of this import carries its touches into its insert
                    await leads.add_touch(lead, touch)
                tx.after_commit(metrics.duplicates.labels(command.source.value).inc)
                results.append(Captured(lead, duplicate=True))
                continue
            rotation = team.rotation_for(command.company.country)
            taken = turns.get(rotation.key, range(0))
            # A turn taken inside only if the ones taken before ran out (a lead deleted meanwhile).
            turn = taken[used[rotation.key]] if used[rotation.key] < len(taken) else None
            used[rotation.key] += 1
            lead = Lead.capture(
                lead_id=new_lead_id(),
                contact=command.contact,
                company=command.company,
                source=command.source,
                campaign=campaign,
                consent=command.consent,
                assignment=rotation.pick(turn if turn is not None else await leads.next_turn(rotation.key)),
                correlation_id=str(uuid.uuid4()),
                at=at,
            )
            existing[key] = lead
            new[key] = lead
            tx.emit(lead.captured(), correlation_id=lead.correlation_id)
            tx.after_commit(metrics.captured.labels(command.source.value).inc)
            results.append(Captured(lead, duplicate=False))
        await leads.add_all(list(new.values()))
        return results

    return await _once_more_if_raced(store, work, correlation_id)


async def _once_more_if_raced(
    store: Store, work: Callable[[Transaction], Awaitable[T]], correlation_id: str
) -> T:
    """Run a capture's work; when a concurrent capture of the same address committed first (the unique
    e-mail index says so), run it again: the address is known now, so this capture is a touch."""
    try:
        return await store.transaction(work, correlation_id=correlation_id)
    except DuplicateKeyError as exc:
        if EMAIL_INDEX not in str(exc):
            raise
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


async def _lead_in_batch(tx: Transaction, lead_id: str) -> Lead:
    lead = await LeadRepository.get_in_batch(tx, lead_id)
    if lead is None:
        raise NotFound(f"no lead with id {lead_id!r}")
    return lead


async def record_qualified(tx: Transaction, event: LeadQualified) -> Lead:
    leads = LeadRepository(tx.db, tx.session)
    lead = await _lead_in_batch(tx, event.lead_id)
    lead.qualify(event.score, now())
    await leads.save_verdict(lead)
    return lead


async def record_disqualified(tx: Transaction, event: LeadDisqualified) -> Lead:
    leads = LeadRepository(tx.db, tx.session)
    lead = await _lead_in_batch(tx, event.lead_id)
    lead.disqualify(event.reason, event.score, now())
    await leads.save_verdict(lead)
    return lead
