"""``/subscriptions`` over HTTP: webhook endpoints for event types (``"*"``: every public event). An
admin manages every one; an integrator's API key with the scope ``events:subscribe`` (issued on this
service's ``/api-keys``) registers, sees, changes and removes its own only. The secret is in the
creation's answer only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kariz_notifications.domain.subscriptions import (
    DeliveryHealth,
    ManagedSubscription,
    Replay,
    ReplayState,
    SubscriptionState,
)
from kariz_notifications.entrypoints.rules_http import ConditionBody
from kariz_notifications.service_layer import subscriptions
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts import webhooks
from kariz_shared.contracts.identity import Caller, Role, Scope
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated

SubscriptionId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
EventNames = list[Annotated[str, Field(max_length=64)]]
URL = "https (http only where KARIZ_WEBHOOK_ALLOW_HTTP)"
DEBOUNCE = (
    "Collapse rapid events of one subject (a deal, a lead) within this many seconds (1..3600) into the "
    "latest, delivered when the window ends"
)
FILTERS = (
    "Value filters, as a rule's conditions (all must hold): only matching events are delivered; each "
    'field must be one of every named event type (with "*", of some)'
)


async def subscriber(caller: Authenticated) -> Caller:
    """An admin, or a machine whose key has the scope ``events:subscribe`` (403 otherwise)."""
    caller.require(Role.ADMIN, scope=Scope.EVENTS_SUBSCRIBE)
    return caller


Subscriber = Annotated[Caller, Depends(subscriber)]


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description=URL)
    events: EventNames = Field(
        min_length=1, max_length=50, description='Event types such as "DealWon", or "*" for every one'
    )
    filters: list[ConditionBody] = Field(default=[], max_length=20, description=FILTERS)
    debounce_seconds: int | None = Field(default=None, description=DEBOUNCE)


class SubscriptionChange(BaseModel):
    """What changes of a subscription: the fields given; those left out stay."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000, description=URL)
    events: EventNames | None = Field(default=None, min_length=1, max_length=50)
    filters: list[ConditionBody] | None = Field(default=None, max_length=20, description=FILTERS)
    debounce_seconds: int | None = Field(default=None, description=DEBOUNCE + "; null: none")


class SubscriptionView(BaseModel):
    id: str
    name: str = Field(description="What its deliveries' recipient is in GET /notifications")
    url: str
    events: list[str]
    filters: list[ConditionBody]
    debounce_seconds: int | None
    created_by: str = Field(description="Its owner: an admin's address or an integrator's key (key:<id>)")
    created_at: datetime
    state: SubscriptionState = Field(
        description="active: delivered to; paused by its owner; suspended by Kariz after persistent failure"
    )
    state_changed_at: datetime | None
    state_reason: str | None = Field(description="Who paused or resumed it, or why it was suspended")

    @classmethod
    def of(cls, s: ManagedSubscription) -> SubscriptionView:
        return cls(
            id=s.id,
            name=s.name,
            url=s.url,
            events=sorted(s.events),
            filters=[ConditionBody(field=c.field, op=c.op, value=c.value) for c in s.filters],
            debounce_seconds=s.debounce_seconds,
            created_by=s.created_by,
            created_at=s.created_at,
            state=s.state,
            state_changed_at=s.state_changed_at,
            state_reason=s.state_reason,
        )


class HealthView(BaseModel):
    delivered: int = Field(description="Deliveries its endpoint accepted")
    failed: int = Field(description="Deliveries given up after their last attempt")
    failed_attempts: int = Field(description="Attempts that failed, retried ones included")
    failing_in_a_row: int = Field(description="Deliveries given up since the last one accepted")
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    suspensions: int

    @classmethod
    def of(cls, h: DeliveryHealth) -> HealthView:
        return cls(
            delivered=h.delivered,
            failed=h.failed,
            failed_attempts=h.failed_attempts,
            failing_in_a_row=h.failing_in_a_row,
            last_success_at=h.last_success_at,
            last_failure_at=h.last_failure_at,
            last_error=h.last_error,
            suspensions=h.suspensions,
        )


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="Re-deliver the matching events published since then")


class ReplayView(BaseModel):
    id: str
    since: datetime
    state: ReplayState
    read: int = Field(description="Events read from the retained topics so far")
    matched: int = Field(description="Of them, those matching its event types and filters, recorded again")
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, r: Replay) -> ReplayView:
        return cls(
            id=r.id,
            since=r.since,
            state=r.state,
            read=r.read,
            matched=r.matched,
            requested_by=r.requested_by,
            requested_at=r.requested_at,
            finished_at=r.finished_at,
            error=r.error,
        )


class SubscriptionDetail(SubscriptionView):
    delivery: HealthView = Field(description="How its deliveries fare")
    last_replay: ReplayView | None = Field(description="Its newest replay and how far it got")


class CreatedSubscription(SubscriptionView):
    secret: str = Field(description="Verifies its deliveries' signatures; shown this once only")
    standard_secret: str = Field(
        description="The same secret as a Standard Webhooks library takes it (whsec_...), for the "
        "webhook-signature header"
    )

    @classmethod
    def showing(cls, s: ManagedSubscription) -> CreatedSubscription:
        return cls(
            **SubscriptionView.of(s).model_dump(),
            secret=s.secret,
            standard_secret=webhooks.standard_secret(s.secret),
        )


class RotatedSecret(CreatedSubscription):
    previous_secret_valid_until: datetime | None = Field(
        description="Until then deliveries carry the previous secret's signatures too"
    )


def router(
    units: UnitsOfWork[NotificationsUnitOfWork],
    *,
    allow_http: bool,
    secret_grace: timedelta = timedelta(days=1),
    on_replay: Callable[[], None] = lambda: None,
) -> APIRouter:
    api = APIRouter(
        tags=["subscriptions"],
        responses={
            **SIGN_IN_ERRORS,
            404: {"description": "No such subscription, or one of another owner"},
            422: {"description": "A bad url, an unknown event type or a filter's field, named"},
        },
    )

    @api.post("/subscriptions", status_code=201, summary="Register a webhook endpoint for event types")
    async def register(body: NewSubscription, caller: Subscriber, response: Response) -> CreatedSubscription:
        created = await subscriptions.register(
            units,
            body.url,
            body.events,
            caller,
            filters=[f.condition() for f in body.filters],
            debounce_seconds=body.debounce_seconds,
            allow_http=allow_http,
        )
        response.headers["Location"] = f"/subscriptions/{created.id}"
        return CreatedSubscription.showing(created)

    @api.get(
        "/subscriptions",
        summary="The caller's endpoints (an admin's: every one); their secrets are never shown again",
    )
    async def list_subscriptions(caller: Subscriber) -> list[SubscriptionView]:
        return [SubscriptionView.of(s) for s in await subscriptions.listed(units, caller)]

    @api.get("/subscriptions/{subscription_id}", summary="One endpoint and how its deliveries fare")
    async def get_subscription(subscription_id: SubscriptionId, caller: Subscriber) -> SubscriptionDetail:
        found, fared = await subscriptions.health(units, subscription_id, caller)
        replay = await subscriptions.last_replay(units, subscription_id)
        return SubscriptionDetail(
            **SubscriptionView.of(found).model_dump(),
            delivery=HealthView.of(fared),
            last_replay=ReplayView.of(replay) if replay is not None else None,
        )

    @api.post(
        "/subscriptions/{subscription_id}/replay",
        status_code=202,
        summary="Re-deliver the matching events the topics retain since a time, in the background",
        responses={409: {"description": "Not active, or a replay of it still runs"}},
    )
    async def replay(subscription_id: SubscriptionId, body: ReplayRequest, caller: Subscriber) -> ReplayView:
        requested = await subscriptions.request_replay(units, subscription_id, caller, body.since)
        on_replay()
        return ReplayView.of(requested)

    @api.post(
        "/subscriptions/{subscription_id}/pause", summary="Stop delivering new events to it until resumed"
    )
    async def pause(subscription_id: SubscriptionId, caller: Subscriber) -> SubscriptionView:
        return SubscriptionView.of(await subscriptions.pause(units, subscription_id, caller))

    @api.post(
        "/subscriptions/{subscription_id}/resume",
        summary="Deliver again from the next event on (a suspended one too)",
    )
    async def resume(subscription_id: SubscriptionId, caller: Subscriber) -> SubscriptionView:
        return SubscriptionView.of(await subscriptions.resume(units, subscription_id, caller))

    @api.patch("/subscriptions/{subscription_id}", summary="Change an endpoint's url, event types or filters")
    async def change(
        subscription_id: SubscriptionId, body: SubscriptionChange, caller: Subscriber
    ) -> SubscriptionView:
        changed = await subscriptions.change(
            units,
            subscription_id,
            caller,
            url=body.url,
            events=body.events,
            filters=[f.condition() for f in body.filters] if body.filters is not None else None,
            debounce_seconds=body.debounce_seconds
            if "debounce_seconds" in body.model_fields_set
            else subscriptions.Keep.KEEP,
            allow_http=allow_http,
        )
        return SubscriptionView.of(changed)

    @api.post(
        "/subscriptions/{subscription_id}/rotate-secret",
        summary="A new secret, shown this once; the previous one signs deliveries too for a grace period",
    )
    async def rotate_secret(subscription_id: SubscriptionId, caller: Subscriber) -> RotatedSecret:
        rotated = await subscriptions.rotate_secret(units, subscription_id, caller, grace=secret_grace)
        return RotatedSecret(
            **CreatedSubscription.showing(rotated).model_dump(),
            previous_secret_valid_until=rotated.previous_until,
        )

    @api.delete("/subscriptions/{subscription_id}", status_code=204, summary="Remove an endpoint")
    async def remove(subscription_id: SubscriptionId, caller: Subscriber) -> Response:
        await subscriptions.remove(units, subscription_id, caller)
        return Response(status_code=204)

    return api
