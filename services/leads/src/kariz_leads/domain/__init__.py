"""The leads domain: plain Python, no I/O."""

from kariz_leads.domain.assignment import AssignedBy, Assignment, Rotation, SalesTeam
from kariz_leads.domain.intake import InvalidField, InvalidImport, LeadDetails
from kariz_leads.domain.lead import Lead, LeadStatus, Touch
from kariz_leads.domain.queries import LeadFilter
from kariz_leads.domain.response import ResponseSla, ResponseTimer
from kariz_shared.contracts.normalisation import InvalidValue

__all__ = [
    "AssignedBy",
    "Assignment",
    "InvalidField",
    "InvalidImport",
    "InvalidValue",
    "Lead",
    "LeadDetails",
    "LeadFilter",
    "LeadStatus",
    "ResponseSla",
    "ResponseTimer",
    "Rotation",
    "SalesTeam",
    "Touch",
]
