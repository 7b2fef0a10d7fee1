"""Deals and accounts as MongoDB documents, and the read side's criteria as MongoDB filters."""

from __future__ import annotations

from typing import Any

from kariz_deals.domain import Account, AccountRef, Deal, DealCriteria, StageVisit, pipeline_named

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
        "blocking_objections": deal.blocking_objections,
    }


def deal_from_document(doc: Document) -> Deal:
    account = doc["account"]
    return Deal(
        id=doc["_id"],
        lead_id=doc["lead_id"],
        account=AccountRef(account["id"], account["name"], account.get("domain")),
        owner=doc["owner"],
        # A deal knows its own pipeline.
        pipeline=pipeline_named(doc["pipeline"]),
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
        blocking_objections=doc.get("blocking_objections", 0),
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
    if where.seen.these is not None:  # narrowed_to kept the owner asked for, if it is in reach
        selected["owner"] = {"$in": sorted(where.seen.these)}
    return selected
