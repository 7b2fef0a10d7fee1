"""Finding leads by criteria (source, status, owner, industry, geography, capture date)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from kariz_leads.domain.lead import Lead, LeadStatus
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import LeadSource
from kariz_shared.contracts.identity import EVERYONE, Caller, Owners
from kariz_shared.contracts.normalisation import (
    InvalidValue,
    normalise_country,
    normalise_email,
    normalise_industry,
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
        return cls(
            source=source,
            status=status,
            owner=owner_key,
            industry=normalise_industry(industry) if industry else None,
            country=country_code,
            created_from=start,
            created_to=end,
        )

    def matches(self, lead: Lead) -> bool:
        """Whether ``lead`` meets every criterion (both ends of the capture range included)."""
        return (
            (self.source is None or lead.source == self.source)
            and (self.status is None or lead.status == self.status)
            and (self.owner is None or lead.owner == self.owner)
            and self.seen.include(lead.owner)
            and (self.industry is None or lead.company.industry == self.industry)
            and (self.country is None or lead.company.country == self.country)
            and (self.created_from is None or lead.created_at >= self.created_from)
            and (self.created_to is None or lead.created_at <= self.created_to)
        )
