"""The mapping between qualification's domain objects and their MongoDB documents."""

from __future__ import annotations

from typing import Any

from kariz_qualification.domain.lead import Decision, Lead, Scoring
from kariz_qualification.domain.queries import LeadSummary
from kariz_qualification.domain.rules import RuleSet
from kariz_shared.contracts.events import BantAnswers, Company, Contact, LeadSource, ScoreLine

LEADS = "leads"
RULE_SETS = "rule_sets"
#: The ``_id`` of the one rule-set document.
CURRENT = "current"

#: The fields a review queue's row needs (see :func:`summary_from_document`).
SUMMARY_FIELDS = ("owner", "company.name", "status", "score", "captured_at", "decision.at")


def rules_to_document(rules: RuleSet) -> dict[str, Any]:
    return rules.model_dump(mode="json")


def rules_from_document(doc: dict[str, Any]) -> RuleSet:
    return RuleSet.model_validate(doc["rules"])


def lead_to_document(lead: Lead) -> dict[str, Any]:
    """Everything but the version, which the repository writes."""
    return {
        "_id": lead.lead_id,
        "owner": lead.owner,
        "contact": lead.contact.model_dump(),
        "company": lead.company.model_dump(),
        "source": lead.source.value,
        "campaign": lead.campaign,
        "correlation_id": lead.correlation_id,
        "captured_at": lead.captured_at,
        "answers": None if lead.answers is None else lead.answers.model_dump(),
        "scorings": [
            {
                "at": s.at,
                "score": s.score,
                "breakdown": [line.model_dump() for line in s.breakdown],
                "trigger": s.trigger,
            }
            for s in lead.scorings
        ],
        "decision": None
        if lead.decision is None
        else {
            "outcome": lead.decision.outcome,
            "at": lead.decision.at,
            "reason": lead.decision.reason,
            "threshold": lead.decision.threshold,
            "manual": lead.decision.manual,
        },
        # Denormalised for the queries that list leads.
        "status": lead.status,
        "score": lead.score,
    }


def lead_from_document(doc: dict[str, Any]) -> Lead:
    decision = doc.get("decision")
    return Lead(
        lead_id=doc["_id"],
        owner=doc["owner"],
        contact=Contact.model_validate(doc["contact"]),
        company=Company.model_validate(doc["company"]),
        source=LeadSource(doc["source"]),
        campaign=doc.get("campaign"),
        correlation_id=doc["correlation_id"],
        captured_at=doc["captured_at"],
        answers=None if doc.get("answers") is None else BantAnswers.model_validate(doc["answers"]),
        scorings=[
            Scoring(
                at=s["at"],
                score=s["score"],
                breakdown=tuple(ScoreLine.model_validate(line) for line in s["breakdown"]),
                trigger=s["trigger"],
            )
            for s in doc.get("scorings", [])
        ],
        decision=None
        if decision is None
        else Decision(
            outcome=decision["outcome"],
            at=decision["at"],
            reason=decision.get("reason"),
            threshold=decision.get("threshold"),
            manual=decision.get("manual", False),
        ),
        version=doc.get("version", 0),
    )


def summary_from_document(doc: dict[str, Any]) -> LeadSummary:
    """A review queue's row from a document projected to :data:`SUMMARY_FIELDS`."""
    return LeadSummary(
        lead_id=doc["_id"],
        owner=doc["owner"],
        company=doc["company"]["name"],
        status=doc["status"],
        score=doc["score"],
        captured_at=doc["captured_at"],
        decided_at=(doc.get("decision") or {}).get("at"),
    )
