"""Deals and accounts as MongoDB documents, and the read side's criteria as MongoDB filters."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from kariz_deals.adapters.mongo.pipelines import pipeline_from_document, pipeline_to_document
from kariz_deals.domain import (
    DEFAULT_PIPELINE,
    Account,
    AccountRef,
    Deal,
    DealCriteria,
    DealType,
    Pipeline,
    StageVisit,
    pipeline_named,
)
from kariz_deals.domain.rfp import RfpDecision, RfpDetails

DEALS = "deals"
ACCOUNTS = "accounts"

Document = dict[str, Any]


def deal_to_document(deal: Deal) -> Document:
    return {
        "_id": deal.id,
        "lead_id": deal.lead_id,
        "opened_for": deal.qualified_lead,
        "account": {"id": deal.account.id, "name": deal.account.name, "domain": deal.account.domain},
        "owner": deal.owner,
        "pipeline": deal.pipeline.name,
        "stage": deal.stage,
        "amount": deal.amount,
        "currency": deal.currency,
        "correlation_id": deal.correlation_id,
        "opened_at": deal.opened_at,
        "closed_at": deal.closed_at,
        "lost_reason": deal.lost_reason,
        "history": [
            {"stage": v.stage, "entered_at": v.entered_at, "left_at": v.left_at, "note": v.note, "by": v.by}
            for v in deal.history
        ],
        "contact": deal.contact,
        "source": deal.source,
        "version": deal.version,
        "accepted_quote_id": deal.accepted_quote_id,
        "contract_status": deal.contract_status,
        "blocking_objections": deal.blocking_objections,
        **_sales_fields_to_document(deal),
    }


def _sales_fields_to_document(deal: Deal) -> Document:
    """The fields of pipelines an admin defines, exit criteria and stalling (``PATCH /deals/{id}``)."""
    doc: Document = {
        # BSON has no date: the ISO form sorts as the date does.
        "expected_close_date": deal.expected_close_date.isoformat() if deal.expected_close_date else None,
        "next_step": deal.next_step,
        "deal_type": deal.deal_type.value,
        "product_line": deal.product_line,
        "decision_maker": deal.decision_maker,
        "win_reason": deal.win_reason,
        "competitor": deal.competitor,
        "checklist": sorted(deal.checklist),
        "rots_at": deal.rots_at,
        "first_contact_after_win_at": deal.first_contact_after_win_at,
        "rfp": _rfp_to_document(deal.rfp) if deal.rfp else None,
        "linked_deal_ids": list(deal.linked_deal_ids),
    }
    # A deal in another pipeline than the built-in one carries the version it follows (it follows each
    # new one: see replace_pipeline); one in the built-in pipeline names it, as before.
    if deal.pipeline != DEFAULT_PIPELINE:
        doc["pipeline_definition"] = pipeline_to_document(deal.pipeline)
    return doc


def _rfp_to_document(rfp: RfpDetails) -> Document:
    return {
        "issuer": rfp.issuer,
        "response_due_at": rfp.response_due_at,
        "requirements": list(rfp.requirements),
        "reminder_before_s": rfp.reminder_before.total_seconds(),
        "decision": rfp.decision.value if rfp.decision else None,
        "decided_at": rfp.decided_at,
        "decided_by": rfp.decided_by,
    }


def _rfp_from_document(doc: Document | None) -> RfpDetails | None:
    if not doc:
        return None
    return RfpDetails(
        issuer=doc["issuer"],
        response_due_at=doc["response_due_at"],
        requirements=tuple(doc.get("requirements", [])),
        reminder_before=timedelta(seconds=doc.get("reminder_before_s", 0)),
        decision=RfpDecision(doc["decision"]) if doc.get("decision") else None,
        decided_at=doc.get("decided_at"),
        decided_by=doc.get("decided_by"),
    )


def _pipeline_of(doc: Document) -> Pipeline:
    definition = doc.get("pipeline_definition")
    return pipeline_from_document(definition) if definition else pipeline_named(doc["pipeline"])


def deal_from_document(doc: Document) -> Deal:
    account = doc["account"]
    return Deal(
        id=doc["_id"],
        lead_id=doc["lead_id"],
        account=AccountRef(account["id"], account["name"], account.get("domain")),
        owner=doc["owner"],
        # A deal knows its own pipeline.
        pipeline=_pipeline_of(doc),
        stage=doc["stage"],
        amount=doc.get("amount"),
        currency=doc["currency"],
        correlation_id=doc["correlation_id"],
        opened_at=doc["opened_at"],
        closed_at=doc.get("closed_at"),
        lost_reason=doc.get("lost_reason"),
        history=[
            StageVisit(v["stage"], v["entered_at"], v.get("left_at"), v.get("note"), v.get("by"))
            for v in doc["history"]
        ],
        version=doc.get("version", 0),
        contact=doc.get("contact") or {},
        source=doc.get("source"),
        # Stored before merges were followed: opened for its lead (start-up writes it, see indexes).
        opened_for=doc.get("opened_for") or doc["lead_id"],
        accepted_quote_id=doc.get("accepted_quote_id"),
        contract_status=doc.get("contract_status"),
        blocking_objections=doc.get("blocking_objections", 0),
        expected_close_date=date.fromisoformat(doc["expected_close_date"])
        if doc.get("expected_close_date")
        else None,
        next_step=doc.get("next_step"),
        deal_type=DealType(doc.get("deal_type") or DealType.NEW_BUSINESS),
        product_line=doc.get("product_line"),
        decision_maker=doc.get("decision_maker"),
        win_reason=doc.get("win_reason"),
        competitor=doc.get("competitor"),
        checklist=frozenset(doc.get("checklist") or ()),
        rots_at=doc.get("rots_at"),
        first_contact_after_win_at=doc.get("first_contact_after_win_at"),
        rfp=_rfp_from_document(doc.get("rfp")),
        linked_deal_ids=tuple(doc.get("linked_deal_ids") or ()),
    )


def account_to_document(account: Account) -> Document:
    return {
        "_id": account.id,
        "key": account.key,
        "name": account.name,
        "domain": account.domain,
        "name_key": account.name_key,
        "industry": account.industry,
        "size": account.size,
        "country": account.country,
        "created_at": account.created_at,
    }


def account_from_document(doc: Document) -> Account:
    return Account(
        id=doc["_id"],
        name=doc["name"],
        domain=doc.get("domain"),
        name_key=doc["name_key"],
        created_at=doc["created_at"],
        industry=doc.get("industry"),
        size=doc.get("size"),
        country=doc.get("country"),
    )


def deal_filter(where: DealCriteria) -> Document:
    """The filter of the deals ``where`` selects (each field backed by an index, see ``indexes``)."""
    fields = {
        "lead_id": where.lead_id,
        "owner": where.owner,
        "stage": where.stage,
        "account.id": where.account_id,
    }
    selected: Document = {k: v for k, v in fields.items() if v is not None}
    if where.stalled_at is not None:
        selected["rots_at"] = {"$lte": where.stalled_at}
    if where.seen.these is not None:  # narrowed_to kept the owner asked for, if it is in reach
        selected["owner"] = {"$in": sorted(where.seen.these)}
    return selected
