"""What a rep or an admin asks of qualification."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class DisqualifyLead:
    """A rep disqualifies a lead by hand, with a reason."""

    lead_id: str
    reason: str
    seen: Owners = EVERYONE


@dataclass(frozen=True)
class ReplaceRules:
    """An admin replaces the whole scoring rule set."""

    rules: RuleSet
