"""The roster: the reps who take new leads, kept at runtime by admins and managers (``/reps``), and who
of a team may get the next lead.

A rep belongs to one team; ``weight`` is their share of the team's new leads relative to its other reps,
``capacity`` the open leads (new or working) they may hold at most, ``away_until`` a time before which
they get none. A rep who leaves is kept, inactive: leads and events keep naming them. Every change to a
rep is published as ``RepProfile`` (the compacted topic ``kariz.reps.v1``, keyed by e-mail).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kariz_leads.domain.intake import InvalidField
from kariz_shared.contracts.errors import Forbidden, NotFound
from kariz_shared.contracts.events import RepProfile
from kariz_shared.contracts.identity import team_queue
from kariz_shared.contracts.normalisation import InvalidValue, normalise_email, normalise_optional_text

#: The largest weight: a rep's slots in the team's rotation are as many as their weight.
MAX_WEIGHT = 100
#: The largest capacity (open leads); anything larger is no limit in practice.
MAX_CAPACITY = 100_000
#: Team names: letters, digits and ``_ . -`` (no colon: an owner ``queue:<team>`` names a team's queue).
_TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: A BCP 47 language tag, roughly: a language and optional subtags (``en``, ``fa-IR``, ``zh-Hant-TW``).
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")
#: How the owner of a lead that waits in a team's queue begins (kariz_shared's ``team_queue``).
QUEUE_PREFIX = team_queue("")


def team_name(value: str, field: str = "team") -> str:
    """A team's name as rules and reps name it: trimmed, compared exactly."""
    name = value.strip()
    if not name:
        raise InvalidField(field, "a team needs a name")
    if not _TEAM.match(name):
        raise InvalidField(field, f"{name!r} is not a team name (letters, digits, _ . - up to 64)")
    return name


def queue_of(team: str) -> str:
    """The owner a lead has while it waits in ``team``'s queue (its manager sees it)."""
    return team_queue(team)


def queued_team(owner: str) -> str | None:
    """The team whose queue ``owner`` is, or None for a person."""
    return owner[len(QUEUE_PREFIX) :] if owner.startswith(QUEUE_PREFIX) else None


def time_zone_name(value: str, field: str = "time_zone") -> str:
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidField(field, f"{value!r} is not an IANA time zone, e.g. Europe/Berlin") from exc
    return name


def locale_tag(value: str, field: str = "locale") -> str:
    tag = value.strip()
    if not _LOCALE.match(tag):
        raise InvalidField(field, f"{value!r} is not a language tag, e.g. en or fa-IR")
    return tag


def _address(value: str, field: str) -> str:
    try:
        return normalise_email(value)
    except InvalidValue as exc:
        raise InvalidField(field, str(exc)) from exc


@dataclass(frozen=True)
class Rep:
    email: str
    team: str
    updated_at: datetime
    actor: str
    name: str | None = None
    manager: str | None = None
    time_zone: str = "UTC"
    locale: str = "en"
    active: bool = True
    capacity: int | None = None
    weight: int = 1
    away_until: datetime | None = None

    @classmethod
    def of(
        cls,
        *,
        email: str,
        team: str,
        at: datetime,
        actor: str,
        name: str | None = None,
        manager: str | None = None,
        time_zone: str = "UTC",
        locale: str = "en",
        active: bool = True,
        capacity: int | None = None,
        weight: int = 1,
        away_until: datetime | None = None,
    ) -> Rep:
        """A rep as given, each value checked (``InvalidField`` naming it) and normalised."""
        if capacity is not None and not 1 <= capacity <= MAX_CAPACITY:
            raise InvalidField("capacity", f"open leads at most: 1..{MAX_CAPACITY}, or null for no limit")
        if not 1 <= weight <= MAX_WEIGHT:
            raise InvalidField("weight", f"a share of the team's new leads: 1..{MAX_WEIGHT}")
        if away_until is not None and away_until.tzinfo is None:
            raise InvalidField("away_until", "a time with its zone (ISO 8601, e.g. 2026-12-24T09:00:00Z)")
        return cls(
            email=_address(email, "email"),
            team=team_name(team),
            updated_at=at,
            actor=actor,
            name=normalise_optional_text(name),
            manager=_address(manager, "manager") if manager and manager.strip() else None,
            time_zone=time_zone_name(time_zone),
            locale=locale_tag(locale),
            active=active,
            capacity=capacity,
            weight=weight,
            away_until=away_until,
        )

    def takes_leads_at(self, now: datetime) -> bool:
        """Active and not away: the rep may get new leads (capacity aside)."""
        return self.active and (self.away_until is None or self.away_until <= now)

    def profile(self) -> RepProfile:
        return RepProfile(
            email=self.email,
            name=self.name,
            team=self.team,
            manager=self.manager,
            time_zone=self.time_zone,
            locale=self.locale,
            active=self.active,
            capacity=self.capacity,
            weight=self.weight,
            away_until=self.away_until,
            updated_at=self.updated_at,
            actor=self.actor,
        )


@dataclass(frozen=True)
class RosterAccess:
    """What a caller may do with the roster: an admin everything; a manager the reps of their own team
    (``team``), and nobody else's; nobody else anything."""

    admin: bool
    team: str | None = None

    def sees(self, rep: Rep) -> bool:
        return self.admin or (self.team is not None and rep.team == self.team)

    def check_change(self, before: Rep | None, after: Rep) -> None:
        """Refuse (403) a change the caller may not make; a rep of another team is not confirmed (404)."""
        if self.admin:
            return
        if self.team is None:
            raise Forbidden("a manager keeps the reps of their team, and your sign-in names no team")
        if before is not None and before.team != self.team:
            raise NotFound(f"no rep {before.email!r} in your team")
        if after.team != self.team:
            raise Forbidden(
                f"team: a manager keeps the reps of their own team ({self.team!r}); an admin moves a rep "
                "to another team"
            )


@dataclass
class OpenLeads:
    """How many open leads (new or working) each rep holds, counted once per unit of work, and the
    leads this unit hands out on top: a rep at capacity is skipped."""

    counts: dict[str, int]

    def has_room(self, rep: Rep) -> bool:
        return rep.capacity is None or self.counts.get(rep.email, 0) < rep.capacity

    def given(self, email: str) -> None:
        self.counts[email] = self.counts.get(email, 0) + 1


@dataclass(frozen=True)
class TeamRotation:
    """A team's reps taking turns by weight: ``slots`` holds each rep who takes leads now (active, not
    away) as many times as their weight, spread evenly (smooth weighted round robin: weights 2 and 1 give
    A B A, not A A B). A turn starts at its slot and goes on to the next rep with room."""

    team: str
    slots: tuple[Rep, ...]

    @property
    def key(self) -> str:
        """Its turn counter's key: one per team, shared by replicas."""
        return f"team:{self.team}"

    @classmethod
    def of(cls, team: str, reps: Iterable[Rep], now: datetime) -> TeamRotation:
        taking = sorted((r for r in reps if r.team == team and r.takes_leads_at(now)), key=lambda r: r.email)
        return cls(team, tuple(_smooth(taking)))

    def pick(self, turn: int, load: OpenLeads) -> Rep | None:
        """The rep whose turn ``turn`` is, or the next of the team with room; None when nobody has room."""
        if turn < 0:
            raise ValueError(f"a turn counts from 0, got {turn}")
        for n in range(len(self.slots)):
            rep = self.slots[(turn + n) % len(self.slots)]
            if load.has_room(rep):
                return rep
        return None

    def after(self, owner: str, load: OpenLeads) -> Rep | None:
        """The next rep of the team after ``owner`` (from their first slot; from the start when they
        take no leads now) with room, never ``owner``: whom an unanswered lead is escalated to."""
        emails = [r.email for r in self.slots]
        start = emails.index(owner) + 1 if owner in emails else 0
        for n in range(len(self.slots)):
            rep = self.slots[(start + n) % len(self.slots)]
            if rep.email != owner and load.has_room(rep):
                return rep
        return None

    def why_nobody(self, reps: Sequence[Rep]) -> str:
        """Why no rep of the team could take the lead, for ``LeadQueued.reason``."""
        if not [r for r in reps if r.team == self.team]:
            return f"team {self.team!r} has no reps in the roster"
        if not self.slots:
            return "every rep of the team is away or inactive"
        return "every available rep of the team is at capacity"


def _smooth(reps: Sequence[Rep]) -> list[Rep]:
    """One cycle of smooth weighted round robin: each rep ``weight`` times, interleaved."""
    total = sum(r.weight for r in reps)
    current = [0] * len(reps)
    order: list[Rep] = []
    for _ in range(total):
        for i, rep in enumerate(reps):
            current[i] += rep.weight
        best = max(range(len(reps)), key=lambda i: (current[i], -i))
        current[best] -= total
        order.append(reps[best])
    return order


def by_team(reps: Iterable[Rep]) -> Mapping[str, list[Rep]]:
    teams: dict[str, list[Rep]] = {}
    for rep in reps:
        teams.setdefault(rep.team, []).append(rep)
    return teams
