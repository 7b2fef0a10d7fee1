"""What a rep or an admin asks of qualification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kariz_qualification.domain.engagement import MarketingKind
from kariz_qualification.domain.methodologies import Given
from kariz_qualification.domain.rules import RuleSet
from kariz_shared.contracts.events import BantAnswers
from kariz_shared.contracts.identity import EVERYONE, Owners


@dataclass(frozen=True)
class RecordAnswers:
    """Record (or correct) the answers of a lead's qualification call; the lead is rescored."""

    lead_id: str
    answers: BantAnswers
    #: Whose leads the asker may change: another owner's is not there for them (checked in the unit).
    seen: Owners = EVERYONE
    #: Who records them (``Caller.actor``): a decision they bring about is theirs.
    by: str = field(kw_only=True)


@dataclass(frozen=True)
class RecordChecklist:
    """Record (or correct) some answers of a lead's qualification checklist; the lead is rescored."""

    lead_id: str
    methodology: str
    #: By item; items not given keep their answers. Who and when are set as they are recorded.
    answers: dict[str, Given]
    seen: Owners = EVERYONE
    by: str = field(kw_only=True)


@dataclass(frozen=True)
class RecordEngagement:
    """A marketing system (or a person) reports an engagement of a lead's contact, by lead id or by the
    contact's e-mail address."""

    kind: MarketingKind
    occurred_at: datetime
    lead_id: str | None = None
    email: str | None = None
    #: The sender's id of the signal: a repeat of it counts once.
    engagement_id: str | None = None
    seen: Owners = EVERYONE
    by: str = field(kw_only=True)


@dataclass(frozen=True)
class ReopenLead:
    """A manager re-opens a disqualified lead, with a reason: it is back in nurture."""

    lead_id: str
    reason: str
    seen: Owners = EVERYONE
    by: str = field(kw_only=True)


@dataclass(frozen=True)
class DisqualifyLead:
    """A rep disqualifies a lead by hand, with a reason."""

    lead_id: str
    reason: str
    seen: Owners = EVERYONE
    by: str = field(kw_only=True)


@dataclass(frozen=True)
class ReplaceRules:
    """An admin replaces the whole scoring rule set: a new version, recorded with who put it in force."""

    rules: RuleSet
    #: Who replaces it (``Caller.actor``).
    actor: str
    #: The version the admin edited (HTTP ``If-Match``): refused if another is in force by now. None:
    #: replace whatever is in force.
    edited_version: int | None = None


@dataclass(frozen=True)
class Calibrate:
    """An admin asks for a new calibration now, from the outcomes kept so far."""

    actor: str


@dataclass(frozen=True)
class ApplySuggestedPoints:
    """An admin puts the calibration's suggested points in force: a new version of the rule set."""

    actor: str
    #: The rule-set version the admin compared the suggestion with (If-Match); None: the one in force.
    edited_version: int | None = None
