"""The qualification domain: plain Python, no I/O."""

from kariz_qualification.domain.lead import Decision, Lead, Scoring, Verdict, decide
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet, SizeBand, Thresholds, seniority_of

__all__ = [
    "DEFAULT_RULES",
    "Decision",
    "Lead",
    "LeadSummary",
    "LeadsByStatus",
    "RuleSet",
    "RuleSetVersion",
    "Scoring",
    "SizeBand",
    "Thresholds",
    "Verdict",
    "decide",
    "seniority_of",
]
