"""Kafka event handlers: each runs inside the consumer's transaction, once per event id."""

from __future__ import annotations

from kariz_qualification import service_layer
from kariz_shared.contracts.events import LeadCaptured
from kariz_shared.persistence.store import Transaction


async def on_lead_captured(event: LeadCaptured, tx: Transaction) -> None:
    await service_layer.capture(tx, event)
