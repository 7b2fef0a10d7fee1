"""One function per command and per consumed event: load through the unit of work's repositories, let
the lead decide, store it, publish what it raised, arm or stop its timers.

A capture's unit of work may be retried whole, so it only reads, writes and emits through the unit; its
metrics are counted after commit, for the attempt that committed only.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from kariz_leads.domain.assignment import SalesTeam
from kariz_leads.domain.history import LeadChange
from kariz_leads.domain.intake import InvalidField, InvalidImport, LeadDetails
from kariz_leads.domain.lead import Lead
from kariz_leads.domain.response import ResponseSla
from kariz_leads.service_layer.address_locks import BEING_CAPTURED
from kariz_leads.service_layer.assignment import LeadFacts, plan_assignments
from kariz_leads.service_layer.commands import CaptureLead, ImportLeads
from kariz_leads.service_layer.merge import survivors_by_address, verdict_after_merge
from kariz_leads.service_layer.response import arm_response_timers, stop_response_timers_if_answered
from kariz_leads.service_layer.unit_of_work import ONE_LEAD_PER_ADDRESS, LeadsUnitOfWork
from kariz_shared.contracts.errors import DuplicateRecord, RuleViolation, found
from kariz_shared.contracts.events import LeadDisqualified, LeadPriority, LeadQualified, LeadSource
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.idempotency import SAME_REQUEST, Outcome, RequestKey
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.system import source_of


@dataclass(frozen=True)
class Captured:
    """What became of one capture: a new lead, or a touch of the lead its address already was."""

    lead: Lead
    duplicate: bool
    #: A repeat of a request already done (its Idempotency-Key): this is what it did then.
    replayed: bool = False


def new_lead_id() -> str:
    return str(uuid.uuid4())


# --- commands -------------------------------------------------------------------------------------


async def capture_lead(
    units: UnitsOfWork[LeadsUnitOfWork],
    team: SalesTeam,
    sla: ResponseSla,
    command: CaptureLead,
    *,
    correlation_id: str,
    by: Actor,
    request: RequestKey | None = None,
) -> Captured:
    """A new lead (assigned, ``LeadCaptured`` published, its response timer armed) or, for a known
    address, a touch of the existing one; for a repeat of ``request``, what it did the first time."""
    try:
        details = LeadDetails.clean(command.contact, command.company, command.campaign)
    except InvalidField as exc:
        raise RuleViolation(str(exc)) from exc
    line = CaptureLine(
        details, command.source, command.consent, new_lead_id(), correlation_id, command.priority
    )
    [captured] = await _capture(units, team, sla, [line], correlation_id, by, request)
    return captured


async def import_leads(
    units: UnitsOfWork[LeadsUnitOfWork],
    team: SalesTeam,
    sla: ResponseSla,
    command: ImportLeads,
    *,
    correlation_id: str,
    by: Actor,
    request: RequestKey | None = None,
    timeout_s: float | None = None,
) -> list[Captured]:
    """Capture a list of leads at once: all of them or, when one line breaks a rule, none
    (``InvalidImport`` naming each bad line and field). Each new lead starts a story of its own (its own
    correlation id, its own ``LeadCaptured``); a known address, or one repeated in the list, is a
    touch, as for one capture. One unit of work and a few bulk writes for the whole list, bounded by
    ``timeout_s`` (default: a single capture's limit).

    A list of hundreds takes the embedded database seconds to insert, and a unit given up on at a
    single capture's 10 s leaves its statement running on the server while the caller's retry queues
    another behind it: the retries pile up faster than the database drains them (a 3,000-lead bench
    run gave up on "/leads/import kept failing"). The entrypoint gives an import a background unit's
    limit instead."""
    problems: dict[int, InvalidField] = {}
    lines: list[CaptureLine] = []
    for n, lead in enumerate(command.leads):
        try:
            details = LeadDetails.clean(lead.contact, lead.company, lead.campaign)
        except InvalidField as exc:
            problems[n] = exc
            continue
        lines.append(
            CaptureLine(details, lead.source, lead.consent, new_lead_id(), str(uuid.uuid4()), lead.priority)
        )
    if problems:
        raise InvalidImport(problems)
    return await _capture(units, team, sla, lines, correlation_id, by, request, timeout_s)


# --- consumed events ------------------------------------------------------------------------------


async def record_qualified(uow: LeadsUnitOfWork, event: LeadQualified) -> None:
    lead = await _lead_of(uow, event.lead_id)
    if lead.is_merged:  # decided before qualification learnt of the merge: it counts for the survivor
        now, by = uow.clock.now(), _decided_by(event)
        await verdict_after_merge(uow, lead, lambda merged: merged.qualify(event.score, now, by), by)
        return
    lead.qualify(event.score, uow.clock.now(), _decided_by(event))
    await uow.leads.save_verdict(lead)
    uow.history.add(lead.pull_changes())
    stop_response_timers_if_answered(uow, lead)


async def record_disqualified(uow: LeadsUnitOfWork, event: LeadDisqualified) -> None:
    lead = await _lead_of(uow, event.lead_id)
    if lead.is_merged:
        now, by = uow.clock.now(), _decided_by(event)

        def decide(merged: Lead) -> None:
            merged.disqualify(event.reason, event.score, now, by)

        await verdict_after_merge(uow, lead, decide, by)
        return
    lead.disqualify(event.reason, event.score, uow.clock.now(), _decided_by(event))
    await uow.leads.save_verdict(lead)
    uow.history.add(lead.pull_changes())
    stop_response_timers_if_answered(uow, lead)


def _decided_by(event: LeadQualified | LeadDisqualified) -> Actor:
    """The person behind a verdict (a BANT call, a disqualification by hand), or qualification itself
    for one its scoring made."""
    return Actor(event.actor or source_of(type(event)))


# --- internals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureLine:
    """One lead to capture, cleaned, with the id and story it gets if it turns out new."""

    details: LeadDetails
    source: LeadSource
    consent: bool
    lead_id: str
    correlation_id: str
    priority: LeadPriority = LeadPriority.NORMAL


class TurnsTaken:
    """The rotation turns taken for one command, kept across the retries of its unit of work: a retry
    hands out the same turns again rather than taking (and skipping) new ones."""

    def __init__(self) -> None:
        self.taken: dict[str, list[int]] = {}

    async def hand_out(self, uow: LeadsUnitOfWork, wanted: Counter[str]) -> dict[str, Iterator[int]]:
        """``wanted[key]`` turns of each rotation, one increment per rotation that needs more."""
        for key, count in wanted.items():
            have = self.taken.setdefault(key, [])
            if len(have) < count:
                have.extend(await uow.turns.take(key, count - len(have)))
        return {key: iter(self.taken[key][:count]) for key, count in wanted.items()}


async def _capture(
    units: UnitsOfWork[LeadsUnitOfWork],
    team: SalesTeam,
    sla: ResponseSla,
    lines: Sequence[CaptureLine],
    correlation_id: str,
    by: Actor,
    request: RequestKey | None = None,
    timeout_s: float | None = None,
) -> list[Captured]:
    turns = TurnsTaken()

    async def work(uow: LeadsUnitOfWork) -> list[Captured]:
        if request is None:
            return await capture_lines(uow, team, sla, lines, turns, by)
        done = await uow.requests.recall(request)
        if done is not None:
            return await _replayed(uow, done)
        captured = await capture_lines(uow, team, sla, lines, turns, by)
        await uow.requests.remember(
            request,
            {"leads": [{"id": c.lead.id, "email": c.lead.email, "duplicate": c.duplicate} for c in captured]},
        )
        return captured

    async with BEING_CAPTURED.holding(line.details.email for line in lines):
        return await _run_capture(units, work, correlation_id, request, timeout_s)


async def _run_capture(
    units: UnitsOfWork[LeadsUnitOfWork],
    work: Callable[[LeadsUnitOfWork], Awaitable[list[Captured]]],
    correlation_id: str,
    request: RequestKey | None,
    timeout_s: float | None,
) -> list[Captured]:
    try:
        return await units.run(work, correlation_id=correlation_id, timeout_s=timeout_s)
    except DuplicateRecord as exc:
        # A concurrent request with the same Idempotency-Key committed first: run again to answer as it.
        if request is not None and exc.index == SAME_REQUEST:
            return await units.run(work, correlation_id=correlation_id, timeout_s=timeout_s)
        if exc.index != ONE_LEAD_PER_ADDRESS:
            raise
        # A concurrent capture of one of these addresses committed first: the address is known now, so
        # running it again makes this capture a touch.
        return await units.run(work, correlation_id=correlation_id, timeout_s=timeout_s)


async def _replayed(uow: LeadsUnitOfWork, done: Outcome) -> list[Captured]:
    """What a request did the first time, with its leads as they are now."""
    lines = done["leads"]
    leads = await uow.leads.with_emails(list(dict.fromkeys(line["email"] for line in lines)))
    replayed: list[Captured] = []
    for line in lines:
        lead = leads.get(line["email"])
        if lead is None or lead.id != line["id"]:  # merged into another record since
            lead = found(await uow.leads.get(line["id"]), f"no lead with id {line['id']!r}")
        replayed.append(Captured(lead, duplicate=bool(line["duplicate"]), replayed=True))
    return replayed


async def capture_lines(
    uow: LeadsUnitOfWork,
    team: SalesTeam,
    sla: ResponseSla,
    lines: Sequence[CaptureLine],
    turns: TurnsTaken,
    by: Actor,
) -> list[Captured]:
    at = uow.clock.now()
    # Addresses are normalised, so equal addresses are one lead (the duplicate rule).
    known = await uow.leads.with_emails(list(dict.fromkeys(line.details.email for line in lines)))
    known = await survivors_by_address(uow, known)  # a merged record's address touches its survivor
    new_leads: dict[str, LeadFacts] = {}  # by address: the first line of each unknown one makes its lead
    for line in lines:
        details = line.details
        if details.email not in known and details.email not in new_leads:
            new_leads[details.email] = LeadFacts(details.company, line.source, details.campaign)
    # A rule's team and its rotation, or the settings' rotation; a known address takes no turn.
    plan = await plan_assignments(uow, team, new_leads)
    turns_of = await turns.hand_out(uow, plan.wanted)
    new: dict[str, Lead] = {}  # by address: inserted together at the end
    results: list[Captured] = []
    for line in lines:
        email = line.details.email
        lead = known.get(email) or new.get(email)
        if lead is not None:
            touch = lead.touch(line.source, line.details.campaign, at, by)
            for event in lead.pull_events():  # LeadTouched
                uow.emit(event, correlation_id=lead.correlation_id)
            if email not in new:  # a lead of this unit carries its touches into its insert
                await uow.leads.add_touch(lead, touch)
            uow.after_commit(partial(uow.metrics.touched, line.source))
            results.append(Captured(lead, duplicate=True))
            continue
        decision = plan.decide(email, turns_of)
        lead = Lead.capture(
            lead_id=line.lead_id,
            contact=line.details.contact,
            company=line.details.company,
            source=line.source,
            campaign=line.details.campaign,
            consent=line.consent,
            assignment=decision.assignment,
            correlation_id=line.correlation_id,
            at=at,
            by=by,
            priority=line.priority,
        )
        new[email] = lead
        arm_response_timers(uow, sla, lead)
        # Each lead's events belong to its own story (an import's leads each start one).
        for event in lead.pull_events():
            uow.emit(event, correlation_id=lead.correlation_id)
        if decision.queued is not None:  # its team's manager is alerted on it (notifications)
            uow.emit(decision.queued.event(lead.id, at), correlation_id=lead.correlation_id)
            uow.after_commit(partial(uow.metrics.queued, decision.queued.team))
        uow.after_commit(partial(uow.metrics.captured, line.source))
        results.append(Captured(lead, duplicate=False))
    await uow.leads.add_all(list(new.values()))
    # Each lead's changes in the order they happened: a capture, then its touches in this unit.
    changes: list[LeadChange] = []
    for lead in {id(c.lead): c.lead for c in results}.values():
        changes.extend(lead.pull_changes())
    uow.history.add(changes)
    return results


async def _lead_of(uow: LeadsUnitOfWork, lead_id: str) -> Lead:
    return found(await uow.leads.get_for_event(lead_id), f"no lead with id {lead_id!r}")
