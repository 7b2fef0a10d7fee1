"""The mapping between qualification's domain objects and their MongoDB documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kariz_qualification.domain.calibration import WinModel
from kariz_qualification.domain.customers import WonAccount
from kariz_qualification.domain.engagement import Signal
from kariz_qualification.domain.lead import Decision, Lead, Reopening, Scoring
from kariz_qualification.domain.nurture import NurtureRun
from kariz_qualification.domain.outcomes import QualifiedLead
from kariz_qualification.domain.queries import LeadSummary
from kariz_qualification.domain.rule_versions import SEEDED_BY, UNRECORDED, RuleSetVersion
from kariz_qualification.domain.rules import RuleSet
from kariz_shared.contracts.events import (
    BantAnswers,
    ChecklistAnswer,
    Company,
    Contact,
    LeadSource,
    ScoreLine,
)

LEADS = "leads"
#: One document per version of the rule set, ``_id`` = the version number (unique: two replacements
#: cannot both become version n).
RULE_SET_VERSIONS = "rule_set_versions"
#: Before versions were kept: one document, ``_id`` = ``"current"``, with a counter ``version`` that the
#: seed set to 1 and each replacement raised by 1. Read once at start-up, to carry it over; never written.
RULE_SETS = "rule_sets"
CURRENT = "current"
#: The accounts with a won deal, ``_id`` = the account key (``domain:<domain>`` or ``name:<name>``).
WON_ACCOUNTS = "won_accounts"
#: The qualified leads and their deals' outcomes, ``_id`` = the lead id.
QUALIFIED_LEADS = "qualified_leads"
#: The calibrations, ``_id`` = the version number (unique: two calibrations cannot both be version n).
CALIBRATIONS = "calibrations"

#: The fields a review queue's row needs (see :func:`summary_from_document`).
SUMMARY_FIELDS = ("owner", "company.name", "status", "score", "captured_at", "decision.at")


def version_to_document(version: RuleSetVersion) -> dict[str, Any]:
    return {
        "_id": version.number,
        "rules": version.rules.model_dump(mode="json"),
        "took_effect_at": version.took_effect_at,
        "actor": version.actor,
        "changed": None if version.changed is None else list(version.changed),
    }


def version_from_document(doc: dict[str, Any]) -> RuleSetVersion:
    changed = doc.get("changed")
    return RuleSetVersion(
        number=doc["_id"],
        rules=RuleSet.model_validate(doc["rules"]),
        took_effect_at=doc["took_effect_at"],
        actor=doc["actor"],
        changed=None if changed is None else tuple(changed),
    )


def version_carried_over(legacy: dict[str, Any], at: datetime) -> RuleSetVersion:
    """The rule set a database from before versions were kept had in force, as the version its counter
    says (the seed was 1, so the number is the counter less one: as many as it was replaced). Who
    replaced it was not recorded; nor were the versions before it."""
    number = max(int(legacy.get("version", 1)) - 1, 0)
    return RuleSetVersion(
        number=number,
        rules=RuleSet.model_validate(legacy["rules"]),
        took_effect_at=legacy.get("updated_at") or at,
        actor=SEEDED_BY if number == 0 else UNRECORDED,
    )


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
        "methodology": lead.methodology,
        "checklist": [answer.model_dump() for answer in lead.checklist.values()],
        "scorings": [
            {
                "at": s.at,
                "score": s.score,
                "breakdown": [line.model_dump() for line in s.breakdown],
                "trigger": s.trigger,
                "rules_version": s.rules_version,
            }
            for s in lead.scorings
        ],
        "decision": None if lead.decision is None else decision_to_document(lead.decision),
        "past_decisions": [decision_to_document(d) for d in lead.past_decisions],
        "reopenings": [
            {"number": r.number, "reopened": r.reopened, "at": r.at, "reason": r.reason, "by": r.by}
            for r in lead.reopenings
        ],
        "merged_into": lead.merged_into,
        "merged_from": list(lead.merged_from),
        "signals": [
            {"kind": s.kind, "at": s.at, "origin": s.origin, "signal_id": s.signal_id, "by": s.by}
            for s in lead.signals
        ],
        "band": lead.band,
        "customer": None if lead.customer is None else vars(lead.customer),
        "nurture_runs": [dict(vars(run)) for run in lead.nurture_runs],
        "unsubscribed_at": lead.unsubscribed_at,
        # Denormalised for the queries that list leads.
        "status": lead.status,
        "score": lead.score,
    }


def decision_to_document(decision: Decision) -> dict[str, Any]:
    return {
        "outcome": decision.outcome,
        "at": decision.at,
        "reason": decision.reason,
        "threshold": decision.threshold,
        "manual": decision.manual,
        "by": decision.by,
        "number": decision.number,
        "reason_kind": decision.reason_kind,
    }


def decision_from_document(doc: dict[str, Any]) -> Decision:
    return Decision(
        outcome=doc["outcome"],
        at=doc["at"],
        reason=doc.get("reason"),
        threshold=doc.get("threshold"),
        manual=doc.get("manual", False),
        by=doc.get("by"),
        number=doc.get("number", 1),
        reason_kind=doc.get("reason_kind"),
    )


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
        # Both absent from leads stored before checklists were kept: BANT, its answers taken from answers.
        methodology=doc.get("methodology") or "bant",
        checklist={
            answer.item: answer
            for answer in (ChecklistAnswer.model_validate(raw) for raw in doc.get("checklist") or [])
        },
        scorings=[
            Scoring(
                at=s["at"],
                score=s["score"],
                breakdown=tuple(ScoreLine.model_validate(line) for line in s["breakdown"]),
                trigger=s["trigger"],
                # Absent from scorings stored before versions were kept.
                rules_version=s.get("rules_version"),
            )
            for s in doc.get("scorings", [])
        ],
        decision=None if decision is None else decision_from_document(decision),
        # Both absent from leads stored before decisions were a sequence: one decision, the first.
        past_decisions=[decision_from_document(d) for d in doc.get("past_decisions") or []],
        reopenings=[
            Reopening(r["number"], r["reopened"], r["at"], r["reason"], r.get("by"))
            for r in doc.get("reopenings") or []
        ],
        merged_into=doc.get("merged_into"),
        merged_from=list(doc.get("merged_from") or []),
        # Both absent from leads stored before engagement was scored.
        signals=[
            Signal(s["kind"], s["at"], s["origin"], signal_id=s.get("signal_id"), by=s.get("by"))
            for s in doc.get("signals") or []
        ],
        band=doc.get("band"),
        customer=None if doc.get("customer") is None else WonAccount(**doc["customer"]),
        # Both absent from leads stored before nurture tracks were run.
        nurture_runs=[NurtureRun(**run) for run in doc.get("nurture_runs") or []],
        unsubscribed_at=doc.get("unsubscribed_at"),
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


def qualified_lead_to_document(lead: QualifiedLead) -> dict[str, Any]:
    return {
        "_id": lead.lead_id,
        "qualified_at": lead.qualified_at,
        "score": lead.score,
        "features": list(lead.features),
        "rules_version": lead.rules_version,
        "result": lead.result,
        "closed_at": lead.closed_at,
        "deal_id": lead.deal_id,
    }


def qualified_lead_from_document(doc: dict[str, Any]) -> QualifiedLead:
    return QualifiedLead(
        lead_id=doc["_id"],
        qualified_at=doc["qualified_at"],
        score=doc["score"],
        features=tuple(doc["features"]),
        rules_version=doc.get("rules_version"),
        result=doc["result"],
        closed_at=doc.get("closed_at"),
        deal_id=doc.get("deal_id"),
    )


def calibration_to_document(model: WinModel) -> dict[str, Any]:
    return {
        "_id": model.number,
        "trained_at": model.trained_at,
        "rules_version": model.rules_version,
        "intercept": model.intercept,
        # Pairs, not a sub-document: a feature such as ``bant.need=yes`` holds a dot.
        "weights": [[feature, weight] for feature, weight in model.weights.items()],
        "won": model.won,
        "lost": model.lost,
        "auc": model.auc,
        "brier": model.brier,
        "folds": model.folds,
        "closed": model.closed,
    }


def calibration_from_document(doc: dict[str, Any]) -> WinModel:
    return WinModel(
        number=doc["_id"],
        trained_at=doc["trained_at"],
        rules_version=doc["rules_version"],
        intercept=doc["intercept"],
        weights={feature: weight for feature, weight in doc["weights"]},
        won=doc["won"],
        lost=doc["lost"],
        auc=doc["auc"],
        brier=doc["brier"],
        folds=doc["folds"],
        closed=doc["closed"],
    )
