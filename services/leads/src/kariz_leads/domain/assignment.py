"""Who works a new lead: the territory's team when its country has one, otherwise every rep, taking
turns. The turn counter lives in the database (shared by replicas); choosing from it is pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from kariz_shared.contracts.normalisation import normalise_country, normalise_email


class AssignedBy(StrEnum):
    TERRITORY = "territory"
    ROUND_ROBIN = "round_robin"
    #: Reassigned by a manager or an admin (``POST /leads/{id}/assign``).
    MANUAL = "manual"
    #: Handed to the next rep of its rotation when its response SLA's escalation threshold passed.
    ESCALATION = "escalation"
    #: An assignment rule chose the team, its weighted rotation the rep (domain.assignment_rules).
    RULE = "rule"
    #: An assignment rule chose the team and none of its reps was available: the team's queue owns it.
    QUEUE = "queue"


@dataclass(frozen=True)
class Assignment:
    owner: str
    assigned_by: AssignedBy


@dataclass(frozen=True)
class Rotation:
    """A group of reps taking turns. ``key`` names its turn counter, so each group rotates on its own."""

    key: str
    reps: tuple[str, ...]
    assigned_by: AssignedBy

    def pick(self, turn: int) -> Assignment:
        """The rep whose turn it is; ``turn`` counts from 0 and grows by one per lead given to this group."""
        if turn < 0:
            raise ValueError(f"a turn counts from 0, got {turn}")
        return Assignment(owner=self.reps[turn % len(self.reps)], assigned_by=self.assigned_by)

    def after(self, owner: str) -> str | None:
        """The rep who comes after ``owner`` in this rotation (its first when ``owner`` is not in it);
        None when there is nobody else to hand a lead to."""
        start = self.reps.index(owner) + 1 if owner in self.reps else 0
        for n in range(len(self.reps)):
            rep = self.reps[(start + n) % len(self.reps)]
            if rep != owner:
                return rep
        return None


ROUND_ROBIN_KEY = "round_robin"


@dataclass(frozen=True)
class SalesTeam:
    """The reps, and the countries that have a team of their own."""

    reps: tuple[str, ...]
    territories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Whether the runtime assignment rules come first (``/assignment-rules``); an import that names
    #: its owner says no.
    follows_assignment_rules: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.reps:
            raise ValueError("a sales team needs at least one rep")
        for country, team in self.territories.items():
            if not team:
                raise ValueError(f"territory {country!r} has no reps")

    @classmethod
    def of(cls, reps: Sequence[str], territories: Mapping[str, Sequence[str]] | None = None) -> SalesTeam:
        """Built from configuration: rep addresses normalised, countries upper-case ISO codes."""
        return cls(
            reps=tuple(normalise_email(rep) for rep in reps),
            territories={
                normalise_country(country): tuple(normalise_email(rep) for rep in team)
                for country, team in (territories or {}).items()
            },
        )

    def rotation_for(self, country: str | None) -> Rotation:
        team = self.territories.get(country) if country else None
        if team:
            return Rotation(key=f"territory:{country}", reps=team, assigned_by=AssignedBy.TERRITORY)
        return Rotation(key=ROUND_ROBIN_KEY, reps=self.reps, assigned_by=AssignedBy.ROUND_ROBIN)
