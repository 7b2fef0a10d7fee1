"""A lead's audit trail: who changed what on it, and when (``GET /leads/{id}/history``).

The lead records a change with each thing that happens to it; the use case stores them beside the lead,
append-only, so the trail outlives the bounded lists the lead itself keeps (its last touches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kariz_shared.contracts.identity import Actor

Detail = str | int | bool | None


class LeadChangeKind(StrEnum):
    CAPTURED = "captured"
    TOUCHED = "touched"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    #: A CSV import's row filled fields the lead had empty (its duplicate policy ``update_empty``).
    FILLED = "filled"
    #: Another rep owns the lead: a manager's reassignment or the response SLA's escalation.
    REASSIGNED = "reassigned"
    # Issue C, the rep's working day (the timeline): activities, the status they moved, follow-ups.
    ACTIVITY_LOGGED = "activity_logged"
    STATUS_CHANGED = "status_changed"
    FOLLOW_UP_OPENED = "follow_up_opened"
    FOLLOW_UP_COMPLETED = "follow_up_completed"
    FOLLOW_UP_SNOOZED = "follow_up_snoozed"
    FOLLOW_UP_REASSIGNED = "follow_up_reassigned"
    FOLLOW_UP_CANCELLED = "follow_up_cancelled"
    #: Another record of the same person was folded into this lead (the survivor of a merge).
    DUPLICATE_MERGED = "duplicate_merged"
    #: This lead was folded into another one (``merged_into``, the survivor) and is ``merged`` now.
    MERGED_INTO = "merged_into"


@dataclass(frozen=True)
class LeadChange:
    """One change: what happened to which lead, when, by whom (a person, a machine for someone, or a
    service deciding by itself), and the facts of it (source and campaign of a touch, a verdict's score
    and reason)."""

    lead_id: str
    kind: LeadChangeKind
    at: datetime
    by: Actor
    details: Mapping[str, Detail] = field(default_factory=dict)
