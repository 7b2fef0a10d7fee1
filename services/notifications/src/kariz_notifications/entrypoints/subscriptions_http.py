"""``/subscriptions`` over HTTP: admins register webhook endpoints for event types (``"*"``: every
public event), see them, and remove them. The secret is in the creation's answer only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from kariz_notifications.domain.subscriptions import ManagedSubscription
from kariz_notifications.service_layer import subscriptions
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.identity import Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, requiring

SubscriptionId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="https (http only where KARIZ_WEBHOOK_ALLOW_HTTP)")
    events: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=50, description='Event types such as "DealWon", or "*" for every one'
    )


class SubscriptionView(BaseModel):
    id: str
    name: str = Field(description="What its deliveries' recipient is in GET /notifications")
    url: str
    events: list[str]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, s: ManagedSubscription) -> SubscriptionView:
        return cls(
            id=s.id,
            name=s.name,
            url=s.url,
            events=sorted(s.events),
            created_by=s.created_by,
            created_at=s.created_at,
        )


class CreatedSubscription(SubscriptionView):
    secret: str = Field(description="Verifies its deliveries' signatures; shown this once only")


def router(units: UnitsOfWork[NotificationsUnitOfWork], *, allow_http: bool) -> APIRouter:
    api = APIRouter(
        tags=["subscriptions"],
        dependencies=[Depends(requiring(Role.ADMIN))],
        responses={**SIGN_IN_ERRORS, 422: {"description": "A bad url or an unknown event type, named"}},
    )

    @api.post("/subscriptions", status_code=201, summary="Register a webhook endpoint for event types")
    async def register(
        body: NewSubscription, caller: Authenticated, response: Response
    ) -> CreatedSubscription:
        created = await subscriptions.register(
            units, body.url, body.events, caller.actor, allow_http=allow_http
        )
        response.headers["Location"] = f"/subscriptions/{created.id}"
        return CreatedSubscription(**SubscriptionView.of(created).model_dump(), secret=created.secret)

    @api.get("/subscriptions", summary="The registered endpoints (their secrets are never shown again)")
    async def list_subscriptions() -> list[SubscriptionView]:
        return [SubscriptionView.of(s) for s in await subscriptions.listed(units)]

    @api.delete("/subscriptions/{subscription_id}", status_code=204, summary="Remove an endpoint")
    async def remove(subscription_id: SubscriptionId) -> Response:
        await subscriptions.remove(units, subscription_id)
        return Response(status_code=204)

    return api
