"""Engagement as the use cases run it: signals in (a marketing system's report, a rep reaching the
contact), the lead rescored and maybe qualified, and the one decay timer per lead that rescores it when
its fading engagement takes it below its band.

The timer, not a scan: after every scoring of a lead with engagement, its timer is armed for the moment
the decayed score falls below the band it is in (or disarmed when it never will, or the lead was
decided). When it fires, the lead is rescored (``LeadScored`` for the new band) and the next one armed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from kariz_qualification.domain.customers import account_key
from kariz_qualification.domain.engagement import Signal, knows
from kariz_qualification.domain.lead import Lead
from kariz_qualification.domain.rules import RuleSet
from kariz_qualification.service_layer.commands import RecordEngagement, ReopenLead
from kariz_qualification.service_layer.handlers import _publish_and_observe, _story_of, _survivor
from kariz_qualification.service_layer.nurture import follow_nurture
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_qualification.service_layer.views import lead_or_not_found, not_under_qualification
from kariz_shared.contracts.errors import NotFound, RuleViolation, found
from kariz_shared.contracts.events import ActivityLogged, LeadEngagementDecayDue, LeadTouched
from kariz_shared.contracts.normalisation import normalise_email
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.clock import to_millisecond

log = logging.getLogger(__name__)


#: How far ahead of this service's clock a sender's clock may be.
CLOCK_SKEW = timedelta(minutes=5)


def decay_timer_key(lead_id: str) -> str:
    return f"qualification:engagement-decay:{lead_id}"


# --- commands -------------------------------------------------------------------------------------


async def record_engagement(
    units: UnitsOfWork[QualificationUnitOfWork], command: RecordEngagement
) -> tuple[Lead, bool]:
    """Take a marketing system's signal for the lead it names (by id, else by its contact's address; a
    merged lead's go to the lead it lives on in). Returns the lead and whether the signal was new (a
    repeat of an ``engagement_id`` counts once)."""

    async def work(uow: QualificationUnitOfWork) -> tuple[Lead, bool]:
        if command.occurred_at > uow.clock.now() + CLOCK_SKEW:
            # A signal from the future would not start to fade until then.
            raise RuleViolation(f"occurred_at: {command.occurred_at.isoformat()} is in the future")
        lead = await _named_lead(uow, command)
        command.seen.sees(lead.owner, not_under_qualification(command.lead_id or command.email or ""))
        signal = Signal(
            kind=command.kind,
            at=command.occurred_at,
            origin="marketing",
            signal_id=None if command.engagement_id is None else f"marketing:{command.engagement_id}",
            by=command.by,
        )
        return lead, await _engage(uow, lead, signal)

    lead = await _lead_for_story(units, command)
    return await units.run(work, correlation_id=lead.correlation_id)


async def reopen_lead(units: UnitsOfWork[QualificationUnitOfWork], command: ReopenLead) -> Lead:
    """A manager puts a disqualified lead back in nurture (409 for one in nurture or qualified); it is
    decided again by its next answers or engagement."""

    async def work(uow: QualificationUnitOfWork) -> Lead:
        lead = await lead_or_not_found(uow, command.lead_id, command.seen)
        lead.reopen(command.reason, uow.clock.now(), command.by)
        # A manager's re-opening of a lead whose account has won a deal since is a request to qualify it
        # for upsell: the existing customers' rules decide it from now on.
        account = await uow.accounts.get(account_key(lead.company))
        if account is not None:
            lead.known_as_customer(account)
        follow_nurture(uow, lead, (await uow.rules.current()).rules)  # back in nurture: its track again
        await uow.leads.save(lead)
        uow.publish(lead)
        uow.after_commit(partial(uow.metrics.reopened, "manager"))
        return lead

    return await units.run(work, correlation_id=await _story_of(units, command.lead_id))


# --- consumed events ------------------------------------------------------------------------------


async def engage_on_activity(uow: QualificationUnitOfWork, event: ActivityLogged) -> None:
    """A rep got through to the lead's contact: a ``reached`` signal at the time of the activity. Other
    outcomes (no answer, a voicemail) are the rep's effort, not the contact's interest."""
    if not event.reaching:
        return
    lead = await _survivor(uow, event.lead_id)
    if lead is None:
        # Captured in leads but not here yet (its LeadCaptured is on another topic): the signal is lost,
        # which costs a lead a few points; failing the batch for it would hold up every other event.
        log.info("activity on a lead not under qualification; ignored", extra={"lead_id": event.lead_id})
        return
    signal = Signal("reached", event.occurred_at, "activity", f"activity:{event.activity_id}", event.actor)
    await _engage(uow, lead, signal)


async def engage_on_touch(uow: QualificationUnitOfWork, event: LeadTouched) -> None:
    """The contact was captured again (a repeat form fill, another list): a ``touched`` signal."""
    lead = await _survivor(uow, event.lead_id)
    if lead is None:
        log.info("touch of a lead not under qualification; ignored", extra={"lead_id": event.lead_id})
        return
    # The touch's number is unique per lead: a re-publication of the same touch counts once.
    signal_id = f"touch:{event.lead_id}:{event.touch_count}"
    await _engage(uow, lead, Signal("touched", event.touched_at, "capture", signal_id, event.actor))


async def fade_engagement(uow: QualificationUnitOfWork, event: LeadEngagementDecayDue) -> None:
    """The lead's decay timer fired: rescore it with its engagement decayed to now and arm the next."""
    lead = await uow.leads.get(event.lead_id)
    if lead is None:
        return  # nothing arms a timer for a lead not stored; a database emptied meanwhile
    in_force = await uow.rules.current()
    scoring = lead.fade(in_force.rules, uow.clock.now(), rules_version=in_force.number)
    if scoring is None:
        return  # decided or merged meanwhile: its timer is not armed again
    follow_nurture(uow, lead, in_force.rules)
    await uow.leads.save(lead)
    _publish_and_observe(uow, lead, scoring)
    keep_decay_timer(uow, lead, in_force.rules)


# --- the timer ------------------------------------------------------------------------------------


def keep_decay_timer(uow: QualificationUnitOfWork, lead: Lead, rules: RuleSet) -> None:
    """Arm the lead's decay timer for when its score will fall below its band, or disarm it."""
    now = uow.clock.now()
    drop = lead.band_drop_at(rules, now)
    key = decay_timer_key(lead.lead_id)
    if drop is None or lead.band is None:
        uow.timers.cancel(key)
        return
    # The bisection's moment has microseconds; the timer keeps milliseconds: its event says the same.
    due = to_millisecond(drop)
    uow.timers.arm(
        key,
        due,
        LeadEngagementDecayDue(lead_id=lead.lead_id, band=lead.band, due_at=due),
        correlation_id=lead.correlation_id,
    )


# --- internals ------------------------------------------------------------------------------------


async def _engage(uow: QualificationUnitOfWork, lead: Lead, signal: Signal) -> bool:
    """Give ``lead`` the signal; False when it had it already (nothing changed, nothing written)."""
    in_force = await uow.rules.current()
    if knows(lead.signals, signal.signal_id):
        return False
    reopenings = len(lead.reopenings)
    scoring = lead.engage(signal, in_force.rules, uow.clock.now(), rules_version=in_force.number)
    # A signal may qualify a nurtured lead (its track stops) or re-open a disqualified one (it starts).
    follow_nurture(uow, lead, in_force.rules)
    await uow.leads.save(lead)
    uow.after_commit(partial(uow.metrics.engaged, signal.kind))
    if len(lead.reopenings) > reopenings:
        uow.after_commit(partial(uow.metrics.reopened, "engagement"))
    if scoring is not None:
        # Not for a lead decided before: it was not rescored, and its decision was observed when made.
        _publish_and_observe(uow, lead, scoring)
    keep_decay_timer(uow, lead, in_force.rules)
    return True


async def _named_lead(uow: QualificationUnitOfWork, command: RecordEngagement) -> Lead:
    if command.lead_id is not None:
        lead = await _survivor(uow, command.lead_id)
        return found(lead, not_under_qualification(command.lead_id))
    email = normalise_email(command.email or "")
    lead = await uow.leads.by_email(email)
    if lead is None:
        raise NotFound(f"no lead under qualification has the contact address {email}")
    return lead


async def _lead_for_story(units: UnitsOfWork[QualificationUnitOfWork], command: RecordEngagement) -> Lead:
    """The lead as read before the change: its stored correlation id is the story its events continue."""

    async def read(uow: QualificationUnitOfWork) -> Lead:
        return await _named_lead(uow, command)

    return await units.read(read)
