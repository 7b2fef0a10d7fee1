"""The subscriptions table: which consumed event goes to which handler.

Each entry runs as ``handle(uow, event)`` in the consumer's batch transaction, once per event id
(bootstrap wraps it with ``MongoUnitsOfWork.handler``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kariz_qualification.service_layer import handlers
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.events import Event, LeadCaptured

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Subscription(Generic[E]):
    event: type[E]
    handle: Callable[[QualificationUnitOfWork, E], Awaitable[None]]


async def on_lead_captured(uow: QualificationUnitOfWork, event: LeadCaptured) -> None:
    # The handler is looked up on each event, not bound at build: a test may replace it in a running
    # service (tests/test_poison_messages.py makes it fail for chosen events).
    await handlers.capture_lead(uow, event)


SUBSCRIPTIONS: tuple[Subscription[Any], ...] = (Subscription(LeadCaptured, on_lead_captured),)
