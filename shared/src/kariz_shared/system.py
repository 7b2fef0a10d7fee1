"""The one registry of Kariz's services: name, package, port, and the events each writes and reads.

The dev stack, the deploy generator, the bench, the AsyncAPI generator and the docs all read this list;
a new service is added here and nowhere else. Names only: ``shared`` imports no service (a tool that
needs a service's code imports ``<package>.bootstrap`` by name).
"""

from __future__ import annotations

from dataclasses import dataclass

from kariz_shared.contracts.events import (
    EVENTS,
    ActivityLogged,
    ContactUnsubscribed,
    DealLost,
    DealOpened,
    DealStalled,
    DealUpdated,
    DealWon,
    DigestDue,
    Event,
    FollowUpDue,
    ForecastSnapshotDue,
    LeadCaptured,
    LeadDisqualified,
    LeadEngagementDecayDue,
    LeadQualified,
    LeadQueued,
    LeadReassigned,
    LeadReopened,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadScored,
    LeadsMerged,
    LeadTouched,
    NotificationDue,
    NurtureStepDue,
    ObjectionRecorded,
    QuoteAccepted,
    QuoteApprovalRequested,
    QuoteExpired,
    QuoteSent,
    RepProfile,
    RfpResponseDue,
    StageChanged,
    SubscriptionDebounceDue,
    TaskRequested,
)


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    #: Its port on a developer's machine (``make run``); in Kubernetes every service listens on 8000.
    port: int
    publishes: tuple[type[Event], ...]
    consumes: tuple[type[Event], ...]
    summary: str

    @property
    def package(self) -> str:
        return f"kariz_{self.name}"

    @property
    def distribution(self) -> str:
        return f"kariz-{self.name}"

    @property
    def bootstrap(self) -> str:
        """Where its composition root is: ``build(settings) -> Service``."""
        return f"{self.package}.bootstrap"

    @property
    def database(self) -> str:
        return f"kariz_{self.name}"


SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry(
        "leads",
        8001,
        publishes=(
            LeadCaptured,
            LeadResponseOverdue,
            ActivityLogged,
            FollowUpDue,
            LeadReassigned,
            LeadResponseEscalationDue,
            LeadQueued,
            LeadsMerged,
            RepProfile,
            LeadTouched,
        ),
        # LeadResponseEscalationDue is its own response timer's: it reassigns the lead when it fires.
        # A task step of a nurture track (NurtureStepDue) is a follow-up for the lead's owner.
        consumes=(LeadQualified, LeadDisqualified, TaskRequested, LeadResponseEscalationDue, NurtureStepDue),
        summary="capture, normalisation, duplicates, assignment, response SLA, activities, follow-ups, "
        "imports, merges, the roster and assignment rules",
    ),
    ServiceEntry(
        "qualification",
        8002,
        publishes=(
            LeadQualified,
            LeadDisqualified,
            LeadScored,
            LeadEngagementDecayDue,
            LeadReopened,
            NurtureStepDue,
        ),
        # LeadEngagementDecayDue is its own decay timer's: it rescores the lead when it fires; a reaching
        # ActivityLogged is an engagement signal.
        # DealWon makes its account an existing customer: its next leads are upsell opportunities.
        # DealWon and DealLost close the loop: the outcomes of qualified leads calibrate the score.
        # NurtureStepDue is its own nurture timer's: it arms the track's next step; ContactUnsubscribed
        # stops the lead's track.
        consumes=(
            LeadCaptured,
            LeadsMerged,
            ActivityLogged,
            LeadEngagementDecayDue,
            LeadTouched,
            DealWon,
            DealLost,
            NurtureStepDue,
            ContactUnsubscribed,
        ),
        summary="scoring, BANT answers, engagement with decay, thresholds, disqualification, "
        "outcomes that calibrate the score",
    ),
    ServiceEntry(
        "deals",
        8003,
        publishes=(
            DealOpened,
            StageChanged,
            DealWon,
            DealLost,
            DealUpdated,
            DealStalled,
            RfpResponseDue,
            # Quotes (issue E): QuoteExpired is its own quote's expiry timer; consumed, it marks the quote.
            QuoteApprovalRequested,
            QuoteSent,
            QuoteAccepted,
            QuoteExpired,
            ObjectionRecorded,
        ),
        # DealWon and DealLost are its own: the objection answers used on a deal count its outcome.
        consumes=(LeadQualified, LeadsMerged, ActivityLogged, QuoteExpired, DealWon, DealLost),
        summary="accounts, deals, pipeline stages, won and lost, forecast",
    ),
    ServiceEntry(
        "notifications",
        8004,
        # TaskRequested is the task action of the automation rules (issue G); its contract is here now.
        # NotificationDue, DigestDue: a rule's action deferred, a digest window ended (timers), consumed by
        # notifications itself; SubscriptionDebounceDue too, a subscription's debounce window ended.
        publishes=(TaskRequested, NotificationDue, DigestDue, SubscriptionDebounceDue, ContactUnsubscribed),
        # Every public event but its own and the roster (followed by every service): a runtime rule may
        # name any event type as its trigger, and a "*" webhook subscriber sees every one (issue G).
        consumes=tuple(e for e in EVENTS.values() if e not in (RepProfile, TaskRequested)),
        summary="rules that turn events into e-mails and signed webhooks, delivery log",
    ),
    ServiceEntry(
        "reports",
        8006,
        # ForecastSnapshotDue is its own weekly snapshot timer's: consumed, it keeps the forecast's standing.
        publishes=(ForecastSnapshotDue,),
        # A read model of the public topics, as an outside subscriber reads them (issue F).
        consumes=(
            LeadCaptured,
            LeadQualified,
            LeadDisqualified,
            ActivityLogged,
            LeadResponseOverdue,
            LeadsMerged,
            DealOpened,
            StageChanged,
            DealWon,
            DealLost,
            DealUpdated,
            ForecastSnapshotDue,
        ),
        summary="projections of the sales events per day and dimension: funnel, win rate, cycle, "
        "velocity, outcomes, stages, activity; the forecast against quotas",
    ),
)

SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)

#: State topics every replica of every service reads whole, from the beginning and without a consumer
#: group (:mod:`kariz_shared.messaging.state`; the roster, for managers' teams). Not in any ``consumes``:
#: that lists the consumer groups, whose offsets, lag and handlers are the service's own.
FOLLOWED_BY_EVERY_SERVICE: tuple[type[Event], ...] = (RepProfile,)


def service(name: str) -> ServiceEntry:
    for entry in SERVICES:
        if entry.name == name:
            return entry
    raise KeyError(f"no Kariz service named {name!r}; the services are {', '.join(SERVICE_NAMES)}")


def source_of(event_cls: type[Event]) -> str:
    """The ``ce_source`` of the one service that publishes ``event_cls``: consumers take it from no one
    else (a record claiming another source is dead-lettered as ``invalid_envelope``)."""
    owners = [s.name for s in SERVICES if event_cls in s.publishes]
    if len(owners) != 1:
        raise LookupError(f"{event_cls.__name__} must have exactly one publisher, has {owners}")
    return f"/kariz/{owners[0]}"
