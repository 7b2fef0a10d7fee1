"""Use cases: load through the repositories inside one transaction, let the domain decide, save, emit.

Events emitted for a lead carry the correlation id stored with it, so a decision taken over HTTP days
later still belongs to the lead's original story.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kariz_qualification import metrics
from kariz_qualification.adapters.mongo import LeadRepository, RuleSetRepository, ensure_indexes, seed_rules
from kariz_qualification.domain.lead import Lead, Scoring, Status
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_shared.contracts.errors import NotFound
from kariz_shared.contracts.events import BantAnswers, LeadCaptured
from kariz_shared.persistence.store import Store, Transaction

log = logging.getLogger(__name__)


def now() -> datetime:
    """The current time at MongoDB's precision, so what an event says equals what is stored."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


async def prepare(store: Store) -> None:
    """Start-up: indexes, and the default rule set when the database has none."""
    await ensure_indexes(store.db)
    if await seed_rules(store.db, DEFAULT_RULES):
        log.info("seeded the default scoring rule set")


# --- consumed events ------------------------------------------------------------------------------


async def capture(tx: Transaction, event: LeadCaptured) -> None:
    """Take a captured lead into qualification: snapshot, score, and decide if the score says so."""
    if LeadRepository.is_queued(tx, event.lead_id) or await LeadRepository.get_in_batch(tx, event.lead_id):
        # The same lead captured again (a re-publication with a new event id): it has been scored already
        # and may be decided; scoring it again could decide it twice.
        log.info("lead already under qualification; ignoring", extra={"lead_id": event.lead_id})
        return
    rules = await _rules(tx)
    # The consumer always sets the incoming event's correlation id; the lead id is a last resort.
    lead = Lead.capture(event, tx.correlation_id or event.lead_id, rules, now())
    LeadRepository.add(tx, lead)
    _emit_and_observe(tx, lead, lead.scorings[-1])


# --- commands -------------------------------------------------------------------------------------


async def record_answers(store: Store, lead_id: str, answers: BantAnswers) -> Lead:
    correlation_id = await _correlation_id_of(store, lead_id)

    async def work(tx: Transaction) -> Lead:
        leads = LeadRepository(tx.db, tx.session)
        lead = await _load(leads, lead_id)
        scoring = lead.record_answers(answers, await _rules(tx), now())
        await leads.save(lead)
        _emit_and_observe(tx, lead, scoring)
        return lead

    return await store.transaction(work, correlation_id=correlation_id)


async def disqualify(store: Store, lead_id: str, reason: str) -> Lead:
    correlation_id = await _correlation_id_of(store, lead_id)

    async def work(tx: Transaction) -> Lead:
        leads = LeadRepository(tx.db, tx.session)
        lead = await _load(leads, lead_id)
        lead.disqualify(reason, now())
        await leads.save(lead)
        _emit_and_observe(tx, lead, None)
        return lead

    return await store.transaction(work, correlation_id=correlation_id)


async def replace_rules(store: Store, rules: RuleSet) -> RuleSet:
    """Replace the rule set; leads already scored keep their scorings, later scorings use the new one."""

    async def work(tx: Transaction) -> None:
        await RuleSetRepository(tx.db, tx.session).replace(rules, now())

    await store.transaction(work)
    return rules


# --- queries --------------------------------------------------------------------------------------


async def qualification_of(store: Store, lead_id: str) -> Lead:
    return await _load(LeadRepository(store.db), lead_id)


async def current_rules(store: Store) -> RuleSet:
    return await RuleSetRepository(store.db).get() or DEFAULT_RULES


async def leads_by_status(
    store: Store, status: Status, owner: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    return await LeadRepository(store.db).page(status, owner, limit, offset)


# --- internals ------------------------------------------------------------------------------------


async def _rules(tx: Transaction) -> RuleSet:
    # Seeded at start-up; the defaults only matter if someone deleted the document meanwhile. Read once
    # per transaction: a batch of captures is scored under one rule set.
    async def load() -> RuleSet:
        return await RuleSetRepository(tx.db, tx.session).get() or DEFAULT_RULES

    return await tx.once("rule_set", load)


async def _load(leads: LeadRepository, lead_id: str) -> Lead:
    lead = await leads.get(lead_id)
    if lead is None:
        raise NotFound(
            f"lead {lead_id} is not under qualification: its LeadCaptured event has not arrived "
            "(yet); if the lead was captured just now, try again in a moment"
        )
    return lead


async def _correlation_id_of(store: Store, lead_id: str) -> str:
    return (await _load(LeadRepository(store.db), lead_id)).correlation_id


def _emit_and_observe(tx: Transaction, lead: Lead, scoring: Scoring | None) -> None:
    for event in lead.events:
        tx.emit(event)
    decided = lead.decision.outcome if lead.events and lead.decision else None

    def observe() -> None:
        if scoring is not None:
            metrics.scores.labels(scoring.trigger).observe(scoring.score)
        if decided is not None:
            metrics.decisions.labels(decided).inc()

    tx.after_commit(observe)
