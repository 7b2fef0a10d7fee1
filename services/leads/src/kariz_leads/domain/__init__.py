"""The leads domain: plain Python, no I/O."""

from kariz_leads.domain.assignment import AssignedBy, Assignment, Rotation, SalesTeam
from kariz_leads.domain.lead import Lead, LeadStatus, Touch
from kariz_leads.domain.search import LeadFilter
from kariz_shared.contracts.normalisation import InvalidValue

__all__ = [
    "AssignedBy",
    "Assignment",
    "InvalidValue",
    "Lead",
    "LeadFilter",
    "LeadStatus",
    "Rotation",
    "SalesTeam",
    "Touch",
]
