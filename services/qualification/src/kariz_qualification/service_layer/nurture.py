"""Nurture tracks as the use cases run them: one timer per lead for the step its track has armed.

Every use case that changes a lead calls :func:`follow_nurture` before saving it, so the track starts
when the lead is (again) in nurture and stops, its timer disarmed in the same commit, the moment it is
qualified, disqualified, merged away or unsubscribed. The step's timer fires ``NurtureStepDue`` through
the outbox; this service consumes its own event (:func:`take_nurture_step`) to arm the next step, and
the leads service (task steps) and notifications (content steps) act on it.
"""

from __future__ import annotations

import logging

from kariz_qualification.domain.lead import Lead
from kariz_qualification.domain.nurture import NurtureMove
from kariz_qualification.domain.rules import RuleSet
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_qualification.service_layer.views import survivor
from kariz_shared.contracts.events import ContactUnsubscribed, NurtureStepDue

log = logging.getLogger(__name__)


def nurture_timer_key(lead_id: str) -> str:
    return f"qualification:nurture-step:{lead_id}"


def follow_nurture(uow: QualificationUnitOfWork, lead: Lead, rules: RuleSet) -> None:
    """Start or stop the lead's nurture track as its state now says (call it before saving the lead)."""
    apply(uow, lead, lead.follow_nurture(rules, uow.clock.now()))


def apply(uow: QualificationUnitOfWork, lead: Lead, move: NurtureMove | None) -> None:
    """Arm the step ``move`` armed (replacing the one armed), or disarm a stopped track's; observe it."""
    if move is None:
        return
    key = nurture_timer_key(lead.lead_id)
    if move.armed is not None:
        uow.timers.arm(key, move.armed.due_at, move.armed, correlation_id=lead.correlation_id)
    elif move.stopped is not None:
        uow.timers.cancel(key)
    metrics, track = uow.metrics, move.track or ""

    def observe() -> None:
        if move.taken is not None:
            metrics.nurture_step_fired(track, move.taken.kind)
        if move.armed is not None:
            metrics.nurture_step_armed(track, move.armed.kind)
        if move.stopped is not None:
            metrics.nurture_stopped(move.stopped)

    uow.after_commit(observe)


# --- consumed events ------------------------------------------------------------------------------


async def take_nurture_step(uow: QualificationUnitOfWork, event: NurtureStepDue) -> None:
    """A step of a lead's track fell due: arm the next (or end the track). A step the lead's run no
    longer expects (a repeat, one that fell due as the lead qualified) changes nothing."""
    lead = await uow.leads.get(event.lead_id)
    if lead is None:
        return  # nothing arms a step for a lead not stored; a database emptied meanwhile
    in_force = await uow.rules.current()
    move = lead.take_nurture_step(event, in_force.rules, uow.clock.now())
    if move is None:
        log.info("nurture step not expected (any more); ignored", extra={"step_id": event.step_id})
        return
    apply(uow, lead, move)
    await uow.leads.save(lead)


async def stop_nurture_on_unsubscribe(uow: QualificationUnitOfWork, event: ContactUnsubscribed) -> None:
    """The lead's contact unsubscribed: its track stops for good (a re-opening does not start it again).
    For a merged lead, the lead it lives on in is the one nurtured."""
    lead = await survivor(uow, event.lead_id)
    if lead is None:
        # Not captured here (yet): its track has not started, so there is nothing to stop. Kept unknown,
        # a lead captured after its own unsubscribe would be nurtured (its content steps still meet
        # notifications' consent check).
        log.info("unsubscribe of a lead not under qualification; ignored", extra={"lead_id": event.lead_id})
        return
    if not lead.unsubscribe(event.unsubscribed_at):
        return  # a repeat of the unsubscribe (or another channel's): stopped already
    follow_nurture(uow, lead, (await uow.rules.current()).rules)
    await uow.leads.save(lead)
