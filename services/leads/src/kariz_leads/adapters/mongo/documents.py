"""The mapping between leads and their MongoDB documents, and from lead filters to queries."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from kariz_leads.domain.assignment import AssignedBy
from kariz_leads.domain.duplicates import DOMAIN_SCAN, PER_REASON, LookupKeys
from kariz_leads.domain.history import LeadChange, LeadChangeKind
from kariz_leads.domain.lead import ContactAttempts, Lead, LeadStatus, Touch
from kariz_leads.domain.queries import LeadFilter
from kariz_leads.domain.search import prefix_end, search_keys
from kariz_shared.contracts.events import Company, Contact, LeadPriority, LeadSource
from kariz_shared.contracts.identity import Actor, Owners

LEADS = "leads"
HISTORY = "lead_history"
TURNS = "assignment_turns"
ONE_MILLISECOND = timedelta(milliseconds=1)

Document = dict[str, Any]


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def lead_to_document(lead: Lead) -> Document:
    return {
        "_id": lead.id,
        "contact": lead.contact.model_dump(),
        "company": lead.company.model_dump(),
        "source": lead.source.value,
        "campaign": lead.campaign,
        "consent": lead.consent,
        "owner": lead.owner,
        "assigned_by": lead.assigned_by.value,
        "status": lead.status.value,
        "priority": lead.priority.value,
        "score": lead.score,
        "disqualification_reason": lead.disqualification_reason,
        "merged_into": lead.merged_into,
        "touches": [touch_to_document(t) for t in lead.touches],
        "touch_count": lead.touch_count,
        "touches_by_source": lead.touches_by_source,
        "correlation_id": lead.correlation_id,
        "captured_by": lead.captured_by,
        **lookup_to_document(lead),
        **contact_to_document(lead),
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
    }


#: The version of the lookup keys below: a lead stored with an older one (or none) gets them at start-up
#: (2: with ``open_follow_ups``, counted from its follow-ups then; 3: with ``last_activity_at``, from
#: its activities then).
LOOKUP_VERSION = 3
#: A lead's open follow-ups, counted by the follow-ups' repository in the transaction that opens or
#: closes one (adapters.mongo.activities); absent is none. Not written by ``lead_to_document``: a new
#: lead has none, and no write of the whole lead replaces a stored one.
OPEN_FOLLOW_UPS = "open_follow_ups"


def lookup_to_document(lead: Lead) -> Document:
    """What leads are found by beyond their own fields, derived from them and stored with every write of
    the whole lead (an update of the contact or company must write these again): the folded search
    words, and the duplicate candidates' keys (phone in E.164, folded name and company name)."""
    keys = LookupKeys.of(lead)
    return {
        "search": search_keys(lead.contact, lead.company),
        "phone_e164": keys.phone,
        "name_key": keys.name,
        "company_key": keys.company,
        "lookup_version": LOOKUP_VERSION,
    }


def contact_to_document(lead: Lead) -> Document:
    """What activities change on a lead: the attempts by channel, the first contact."""
    return {
        "attempts": {
            channel: {"count": a.count, "first_at": a.first_at, "last_at": a.last_at}
            for channel, a in lead.attempts.items()
        },
        "first_contact_at": lead.first_contact_at,
        "last_activity_at": lead.last_activity_at,
    }


def touch_to_document(touch: Touch) -> Document:
    return {"source": touch.source.value, "campaign": touch.campaign, "at": touch.at}


def lead_from_document(doc: Document) -> Lead:
    touches = [
        Touch(source=LeadSource(t["source"]), campaign=t.get("campaign"), at=utc(t["at"]))
        for t in doc.get("touches", [])
    ]
    return Lead(
        id=doc["_id"],
        contact=Contact.model_validate(doc["contact"]),
        company=Company.model_validate(doc["company"]),
        source=LeadSource(doc["source"]),
        campaign=doc.get("campaign"),
        consent=bool(doc.get("consent", False)),
        owner=doc["owner"],
        assigned_by=AssignedBy(doc["assigned_by"]),
        status=LeadStatus(doc["status"]),
        # Leads stored before priorities were kept: normal, as a capture naming none.
        priority=LeadPriority(doc.get("priority") or LeadPriority.NORMAL.value),
        score=doc.get("score"),
        disqualification_reason=doc.get("disqualification_reason"),
        merged_into=doc.get("merged_into"),
        touches=touches,
        # Leads stored before touches were counted: their list was whole, so it is the count.
        touch_count=doc.get("touch_count", len(touches)),
        touches_by_source=doc.get("touches_by_source") or dict(Counter(t.source.value for t in touches)),
        correlation_id=doc["correlation_id"],
        captured_by=doc.get("captured_by"),
        attempts={
            channel: ContactAttempts(int(a["count"]), utc(a["first_at"]), utc(a["last_at"]))
            for channel, a in (doc.get("attempts") or {}).items()
        },
        first_contact_at=utc(doc["first_contact_at"]) if doc.get("first_contact_at") else None,
        last_activity_at=utc(doc["last_activity_at"]) if doc.get("last_activity_at") else None,
        created_at=utc(doc["created_at"]),
        updated_at=utc(doc["updated_at"]),
    )


def change_to_document(change: LeadChange) -> Document:
    # An ObjectId grows with time within a process: changes of one instant keep their order.
    return {
        "_id": ObjectId(),
        "lead_id": change.lead_id,
        "kind": change.kind.value,
        "at": change.at,
        "by": change.by.who,
        "on_behalf_of": change.by.on_behalf_of,
        "details": dict(change.details),
    }


def change_from_document(doc: Document) -> LeadChange:
    return LeadChange(
        lead_id=doc["lead_id"],
        kind=LeadChangeKind(doc["kind"]),
        at=utc(doc["at"]),
        by=Actor(doc["by"], doc.get("on_behalf_of")),
        details=doc.get("details") or {},
    )


def owner_to_document(lead: Lead) -> Document:
    """What a reassignment changes on a lead."""
    return {"owner": lead.owner, "assigned_by": lead.assigned_by.value, "updated_at": lead.updated_at}


def merge_to_document(lead: Lead) -> Document:
    """What a merge changes on a lead, the survivor or the duplicate."""
    return {
        **verdict_to_document(lead),
        **contact_to_document(lead),
        "merged_into": lead.merged_into,
        "touches": [touch_to_document(t) for t in lead.touches],
        "touch_count": lead.touch_count,
        "touches_by_source": lead.touches_by_source,
    }


def verdict_to_document(lead: Lead) -> Document:
    return {
        "status": lead.status.value,
        "score": lead.score,
        "disqualification_reason": lead.disqualification_reason,
        "updated_at": lead.updated_at,
    }


def selector(criteria: LeadFilter) -> Document:
    """The query of the leads ``criteria`` match (each served by an index of :mod:`.indexes`)."""
    query: Document = {}
    if criteria.source is not None:
        query["source"] = criteria.source.value
    if criteria.status is not None:
        query["status"] = criteria.status.value
    if criteria.owner is not None:
        query["owner"] = criteria.owner
    if criteria.seen.these is not None:  # narrowed_to kept the owner asked for, if it is in reach
        query["owner"] = {"$in": sorted(criteria.seen.these)}
    if criteria.industry is not None:
        query["company.industry"] = criteria.industry
    countries = criteria.countries
    if countries is not None:
        only = next(iter(countries)) if len(countries) == 1 else None
        query["company.country"] = only or {"$in": sorted(countries)}
    if criteria.campaign is not None:
        query["campaign"] = criteria.campaign
    # Whole numbers, so "at least n" is "more than n - 1": strict bounds, as for the dates below.
    size: Document = {}
    if criteria.size_min is not None:
        size["$gt"] = criteria.size_min - 1
    if criteria.size_max is not None:
        size["$lt"] = criteria.size_max + 1
    if size:
        query["company.size"] = size
    if criteria.text:
        # Each word begins one of the lead's search keys: a prefix range on the indexed array, within one
        # element ($elemMatch; two bare bounds on an array may hold for two different elements).
        ranges = [{"$elemMatch": {"$gte": term, "$lt": prefix_end(term)}} for term in criteria.text]
        query["search"] = ranges[0] if len(ranges) == 1 else {"$all": ranges}
    last_activity: Document = {}
    if criteria.last_activity_after is not None:
        last_activity["$gt"] = criteria.last_activity_after - ONE_MILLISECOND
    if criteria.last_activity_before is not None:
        last_activity["$lt"] = criteria.last_activity_before + ONE_MILLISECOND
    if last_activity:  # a lead with no activity has none: it is before or after no moment
        query["last_activity_at"] = last_activity
    if criteria.has_open_follow_up is not None:
        # None (absent: a lead whose follow-ups were never counted has none) or 0 is no open one.
        query[OPEN_FOLLOW_UPS] = {"$gt": 0} if criteria.has_open_follow_up else {"$in": [None, 0]}
    # BSON dates count milliseconds (and the filter's bounds are cut to them), so "at or after t" is
    # exactly "after t minus one millisecond". Written with strict bounds because the embedded SecantusDB
    # drops the boundary value of an inclusive range on a compound index with a field after the range
    # (our filter indexes).
    created: Document = {}
    if criteria.created_from is not None:
        created["$gt"] = criteria.created_from - ONE_MILLISECOND
    if criteria.created_to is not None:
        created["$lt"] = criteria.created_to + ONE_MILLISECOND
    if created:
        query["created_at"] = created
    return query


def candidate_queries(lead: Lead, seen: Owners) -> list[tuple[Document, str, int]]:
    """The reads that find ``lead``'s duplicate candidates among the leads of ``seen``: the query, its
    index and how many to read (newest first; the lead itself may be among them), one per reason the
    lead has keys for."""
    keys = LookupKeys.of(lead)
    reach: Document = {} if seen.these is None else {"owner": {"$in": sorted(seen.these)}}
    reads: list[tuple[Document, str, int]] = []
    if keys.phone is not None:
        reads.append(({"phone_e164": keys.phone, **reach}, "phone_newest_first", PER_REASON + 1))
    if keys.name and keys.company:
        reads.append(
            (
                {"name_key": keys.name, "company_key": keys.company, **reach},
                "name_at_company_newest_first",
                PER_REASON + 1,
            )
        )
    if lead.company.domain:
        domain = {"company.domain": lead.company.domain, **reach}
        reads.append((domain, "domain_newest_first", DOMAIN_SCAN + 1))
    return reads


#: The fields of each list index before its newest-first order (``created_at``, ``_id``; see .indexes).
INDEX_FIELDS: dict[str, tuple[str, ...]] = {
    "newest_first": (),
    "source_newest_first": ("source",),
    "status_newest_first": ("status",),
    "owner_newest_first": ("owner",),
    "industry_newest_first": ("company.industry",),
    "country_newest_first": ("company.country",),
    "campaign_newest_first": ("campaign",),
    "size_newest_first": ("company.size",),
    "search_newest_first": ("search",),
    "follow_up_newest_first": (OPEN_FOLLOW_UPS,),
    "last_activity_newest_first": ("last_activity_at",),
}


def hint_for(criteria: LeadFilter, *, after: bool = False) -> str | None:
    """The index the query names (its hint), or None to leave the choice to the planner; ``after``: for
    the reads of a page after a cursor (their ``created_at`` and ``_id`` bounds added).

    The embedded SecantusDB's planner takes no index unless every field of the query is in the index's
    key (a rep's search by country, on owner and country, is a collection scan there), does not plan
    ``$elemMatch`` (text), nor a range or ``$in`` followed by the cursor's bounds; a hinted read there
    goes along the index but without its bounds (50 of 20,000 leads by a rare industry: 0.8 s hinted,
    10 ms planned). So the index is named only where the planner would scan the collection. MongoDB's
    planner chooses the same indexes by itself."""
    index = index_for(criteria)
    query = selector(criteria)
    fields = set(query) - {"created_at"}
    if criteria.text or not fields <= set(INDEX_FIELDS[index]):
        return index
    if after and any(isinstance(query[field], dict) for field in fields):
        return index
    return None


def index_for(criteria: LeadFilter) -> str:
    """The index a search by ``criteria`` reads along, all of them ending in the newest-first order:
    that of the criterion likely to match fewest leads, the others checked on what it finds (see
    :func:`hint_for` for when the query names it)."""
    if criteria.text:
        return "search_newest_first"
    if criteria.campaign is not None:
        return "campaign_newest_first"
    if criteria.has_open_follow_up:  # the leads being worked: few
        return "follow_up_newest_first"
    if criteria.owner is not None:
        return "owner_newest_first"
    if criteria.industry is not None:
        return "industry_newest_first"
    if criteria.countries is not None:
        return "country_newest_first"
    if criteria.size_min is not None or criteria.size_max is not None:
        return "size_newest_first"
    if criteria.last_activity_after is not None or criteria.last_activity_before is not None:
        return "last_activity_newest_first"
    if criteria.source is not None:
        return "source_newest_first"
    if criteria.status is not None:
        return "status_newest_first"
    if criteria.has_open_follow_up is not None:  # none open: most leads
        return "follow_up_newest_first"
    if criteria.seen.these is not None:
        return "owner_newest_first"
    return "newest_first"
