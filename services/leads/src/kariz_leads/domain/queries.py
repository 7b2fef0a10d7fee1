"""Finding leads by criteria (source, status, owner, industry, geography, company size, campaign,
capture date, text)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from kariz_leads.domain.lead import Lead, LeadStatus
from kariz_leads.domain.regions import Region
from kariz_leads.domain.search import found_by, search_keys, search_terms
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import LeadSource
from kariz_shared.contracts.identity import EVERYONE, Caller, Owners
from kariz_shared.contracts.normalisation import (
    InvalidValue,
    normalise_country,
    normalise_email,
    normalise_industry,
    normalise_optional_text,
)


def as_utc(moment: datetime) -> datetime:
    """A moment without a zone is read as UTC, the zone every lead is stored in; cut to the millisecond,
    the precision capture times have, so "from t" includes a lead captured in t's millisecond."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class LeadFilter:
    """Criteria that all must hold; an absent one matches every lead. Values are normalised the way
    captured data is, so 'de' finds leads from 'DE'."""

    source: LeadSource | None = None
    status: LeadStatus | None = None
    owner: str | None = None
    industry: str | None = None
    country: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    campaign: str | None = None
    #: The company's number of employees, both ends included.
    size_min: int | None = None
    size_max: int | None = None
    #: The company's country is one of the region's (and ``country``, when both are given).
    region: Region | None = None
    #: Words that each begin a word of the lead's name, company name or e-mail (see domain.search).
    text: tuple[str, ...] = ()
    #: The lead has a follow-up still open (True) or none (False). Held by the repositories, which keep
    #: each lead's count of open follow-ups; ``matches`` does not see follow-ups.
    has_open_follow_up: bool | None = None
    #: The latest activity on the lead happened within these (both included); a lead with none matches
    #: neither.
    last_activity_after: datetime | None = None
    last_activity_before: datetime | None = None
    #: Whose leads the asker may see (their roles, team and the roster): applied in the query.
    seen: Owners = EVERYONE

    def seen_by(self, caller: Caller) -> LeadFilter:
        """These criteria, narrowed to the leads ``caller`` may see."""
        return replace(self, seen=caller.seen.narrowed_to(self.owner))

    @classmethod
    def of(
        cls,
        *,
        source: LeadSource | None = None,
        status: LeadStatus | None = None,
        owner: str | None = None,
        industry: str | None = None,
        country: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        campaign: str | None = None,
        size_min: int | None = None,
        size_max: int | None = None,
        region: Region | None = None,
        text: str | None = None,
        has_open_follow_up: bool | None = None,
        last_activity_after: datetime | None = None,
        last_activity_before: datetime | None = None,
    ) -> LeadFilter:
        """Criteria from a query, or RuleViolation saying which one is wrong."""
        try:
            owner_key = normalise_email(owner) if owner and owner.strip() else None
        except InvalidValue as exc:
            raise RuleViolation(f"owner: {exc}") from exc
        try:
            country_code = normalise_country(country) if country and country.strip() else None
        except InvalidValue as exc:
            raise RuleViolation(f"country: {exc}") from exc
        start = as_utc(created_from) if created_from else None
        end = as_utc(created_to) if created_to else None
        if start and end and start > end:
            raise RuleViolation(
                f"created_from ({start.isoformat()}) is after created_to ({end.isoformat()}): "
                "no lead can match"
            )
        worked_after = as_utc(last_activity_after) if last_activity_after else None
        worked_before = as_utc(last_activity_before) if last_activity_before else None
        if worked_after and worked_before and worked_after > worked_before:
            raise RuleViolation(
                f"last_activity_after ({worked_after.isoformat()}) is after last_activity_before "
                f"({worked_before.isoformat()}): no lead can match"
            )
        if size_min is not None and size_max is not None and size_min > size_max:
            raise RuleViolation(f"size_min ({size_min}) is above size_max ({size_max}): no lead can match")
        try:
            terms = search_terms(text) if text is not None and text.strip() else ()
        except ValueError as exc:
            raise RuleViolation(f"q: {exc}") from exc
        return cls(
            source=source,
            status=status,
            owner=owner_key,
            industry=normalise_industry(industry) if industry else None,
            country=country_code,
            created_from=start,
            created_to=end,
            campaign=normalise_optional_text(campaign),
            size_min=size_min,
            size_max=size_max,
            region=region,
            text=terms,
            has_open_follow_up=has_open_follow_up,
            last_activity_after=worked_after,
            last_activity_before=worked_before,
        )

    @property
    def countries(self) -> frozenset[str] | None:
        """The countries a lead's company may be in (None: any); empty when country and region disagree."""
        if self.region is None:
            return None if self.country is None else frozenset({self.country})
        if self.country is None:
            return self.region.countries
        return self.region.countries & {self.country}

    def matches(self, lead: Lead) -> bool:
        """Whether ``lead`` meets every criterion (both ends of the capture range included)."""
        return (
            (self.source is None or lead.source == self.source)
            and (self.status is None or lead.status == self.status)
            and (self.owner is None or lead.owner == self.owner)
            and self.seen.include(lead.owner)
            and (self.industry is None or lead.company.industry == self.industry)
            and (self.countries is None or lead.company.country in self.countries)
            and (self.created_from is None or lead.created_at >= self.created_from)
            and (self.created_to is None or lead.created_at <= self.created_to)
            and (self.campaign is None or lead.campaign == self.campaign)
            and self.size_fits(lead.company.size)
            and self.worked_within(lead.last_activity_at)
            and (not self.text or found_by(search_keys(lead.contact, lead.company), self.text))
        )

    def worked_within(self, last_activity_at: datetime | None) -> bool:
        if self.last_activity_after is None and self.last_activity_before is None:
            return True
        return (
            last_activity_at is not None
            and (self.last_activity_after is None or last_activity_at >= self.last_activity_after)
            and (self.last_activity_before is None or last_activity_at <= self.last_activity_before)
        )

    def size_fits(self, size: int | None) -> bool:
        if self.size_min is None and self.size_max is None:
            return True
        return (
            size is not None
            and (self.size_min is None or size >= self.size_min)
            and (self.size_max is None or size <= self.size_max)
        )
