"""What notifications is asked to do, as data. Deliveries come from consumed events (see
``handlers.record_notifications``); the one command is the sender's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kariz_notifications.domain.model import DeliveryRecord


@dataclass(frozen=True)
class Deliver:
    """Send these deliveries, claimed under ``token`` at ``at``, and record what became of each."""

    claimed: tuple[DeliveryRecord, ...]
    token: str
    at: datetime
