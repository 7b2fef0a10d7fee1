"""Who asks, and what they may see: the caller of a request and the record-level rules. No I/O: the
token check that makes a :class:`Caller` lives in :mod:`kariz_shared.runtime.auth`.

A ``rep`` reads and changes their own leads and deals (owner = the token's subject); a ``manager`` those
of their team (the reps the roster, :class:`LiveRoster`, puts in the team named by the token); an
``admin`` everything and the configuration. Lists are filtered in the query by :class:`Owners`, never
padded; a record the caller may not see answers 404 (its existence is not confirmed), a change the
caller's role may not make 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from kariz_shared.contracts.errors import Forbidden, NotFound
from kariz_shared.contracts.events import RepProfile


def same_person(address: str) -> str:
    """An owner or subject as records compare them (owners are stored trimmed and lower-case)."""
    return address.strip().lower()


def team_queue(team: str) -> str:
    """The owner of a record waiting in a team's queue (a lead an assignment rule gave a team none of
    whose reps was available) until its manager hands it to a rep; the manager sees it."""
    return f"queue:{team}"


class Role(StrEnum):
    REP = "rep"
    MANAGER = "manager"
    ADMIN = "admin"


#: The people's roles, in the order of what they may see.
PEOPLE = (Role.REP, Role.MANAGER, Role.ADMIN)


@dataclass(frozen=True)
class Roster:
    """Which reps make up each team (team name -> rep addresses), as configured (``KARIZ_TEAMS``): the seed
    of the :class:`LiveRoster`."""

    teams: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, teams: Mapping[str, Iterable[str]]) -> Roster:
        return cls({team: frozenset(same_person(rep) for rep in reps) for team, reps in teams.items()})

    def members(self, team: str | None) -> frozenset[str]:
        return self.teams.get(team, frozenset()) if team else frozenset()


class Teams(Protocol):
    """Who is in a team: what a manager's visibility is made of (:meth:`Caller.signed_in`)."""

    def members(self, team: str | None) -> frozenset[str]: ...


class LiveRoster:
    """The roster as every service has it at runtime: the reps' newest profiles (``RepProfile`` of
    ``kariz.reps.v1``, the leads service's ``/reps``) over a seed (``KARIZ_TEAMS``, kept so a deployment
    that configures its teams keeps working).

    A rep the topic has named is where their newest profile puts them, and in no team while inactive;
    the seed speaks only for addresses the topic never named. So a rep who moved or left is out of
    their old team even when the old configuration still lists them there. Pure: a state reader
    (:class:`kariz_shared.messaging.state.StateReader`) feeds it with :meth:`put` and :meth:`forget`.
    """

    def __init__(self, seed: Roster | None = None) -> None:
        self.seed = seed if seed is not None else Roster({})
        self._profiles: dict[str, RepProfile] = {}
        # Active reps by team, kept with the profiles: members() answers every signed-in request.
        self._active: dict[str, set[str]] = {}
        self._seed_team = {rep: team for team, reps in sorted(self.seed.teams.items()) for rep in reps}

    def put(self, profile: RepProfile) -> None:
        """The newest profile of a rep (read in the topic's order: the newest is the last)."""
        address = same_person(profile.email)
        self.forget(address)
        self._profiles[address] = profile
        if profile.active and profile.team:
            self._active.setdefault(profile.team, set()).add(address)

    def apply(self, email: str, profile: RepProfile | None) -> None:
        """A change read from the topic: the rep's newest profile, or None when it was deleted."""
        if profile is None:
            self.forget(email)
        else:
            self.put(profile)

    def forget(self, email: str) -> None:
        """The rep's profile was deleted (a tombstone): the seed speaks for the address again."""
        address = same_person(email)
        old = self._profiles.pop(address, None)
        if old is not None and old.team in self._active:
            self._active[old.team].discard(address)

    def members(self, team: str | None) -> frozenset[str]:
        if not team:
            return frozenset()
        seeded = (rep for rep in self.seed.members(team) if rep not in self._profiles)
        return frozenset(seeded).union(self._active.get(team, ()))

    def profile(self, email: str) -> RepProfile | None:
        return self._profiles.get(same_person(email))

    def team_of(self, email: str) -> str | None:
        """The team the rep's newest profile names (also while inactive: their records stay that team's
        in reports), else the seed's team of the address (the first by name if it lists them twice)."""
        address = same_person(email)
        known = self._profiles.get(address)
        return known.team if known is not None else self._seed_team.get(address)

    def manager_of(self, email: str) -> str | None:
        """The e-mail of the rep's manager, as their newest profile says (the seed names no managers)."""
        known = self._profiles.get(same_person(email))
        return same_person(known.manager) if known is not None and known.manager else None

    def __len__(self) -> int:
        """How many reps the topic has named."""
        return len(self._profiles)


@dataclass(frozen=True)
class Owners:
    """Whose records a caller sees: ``everyone`` or exactly ``these`` owners (the query's filter)."""

    these: frozenset[str] | None

    def include(self, owner: str) -> bool:
        return self.these is None or owner in self.these

    def sees(self, owner: str, missing: str) -> None:
        """Refuse a record of ``owner`` out of reach as if it did not exist (404 ``missing``, the same
        message an absent record gets)."""
        if not self.include(owner):
            raise NotFound(missing)

    def narrowed_to(self, owner: str | None) -> Owners:
        """The caller's owners and, when the query names one, only that one (nobody if out of reach)."""
        if owner is None:
            return self
        owner = same_person(owner)
        return Owners(frozenset({owner}) if self.include(owner) else frozenset())


EVERYONE = Owners(None)


class Scope(StrEnum):
    """What a machine's API key may do, and nothing else."""

    LEADS_CAPTURE = "leads:capture"
    LEADS_IMPORT = "leads:import"
    #: Report a lead's engagement (qualification's POST /engagements): marketing automation's key.
    ENGAGEMENTS_RECORD = "engagements:record"
    #: Manage its own webhook subscriptions (notifications' /subscriptions): an integrator's key.
    EVENTS_SUBSCRIBE = "events:subscribe"
    #: Read the organisation's reports and forecast (the reports service): a BI tool's key.
    REPORTS_READ = "reports:read"


@dataclass(frozen=True)
class KeyGrant:
    """An API key as its caller presents it: which key, whom it acts for, and the source and campaign it
    is bound to."""

    key_id: str
    name: str
    source: str | None = None
    campaign: str | None = None
    #: The partner, team or person the machine acts for (the issuing admin unless the key names one).
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class Actor:
    """Who made a change, as the change's record and its events keep it: a person's address or
    ``key:<id>`` for a machine, and for a machine on whose behalf it acted."""

    who: str
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class Caller:
    """The verified caller of one request: a person with ``roles``, signed in with the identity provider,
    or a machine with an API key's ``scopes``; and whose records they see (``seen``: from a person's
    roles, team and the roster; a key sees none)."""

    subject: str
    roles: frozenset[Role]
    team: str | None
    seen: Owners
    scopes: frozenset[Scope] = frozenset()
    key: KeyGrant | None = None

    @classmethod
    def signed_in(cls, subject: str, roles: frozenset[Role], team: str | None, roster: Teams) -> Caller:
        me = same_person(subject)
        if Role.ADMIN in roles:
            seen = EVERYONE
        else:
            owners = {me} if roles & {Role.REP, Role.MANAGER} else set()
            if Role.MANAGER in roles:
                owners |= roster.members(team)
                if team:  # the leads waiting in the team's queue are the manager's to hand out
                    owners.add(team_queue(team))
            seen = Owners(frozenset(owners))
        return cls(me, roles, team, seen)

    @classmethod
    def with_key(cls, grant: KeyGrant, scopes: frozenset[Scope]) -> Caller:
        return cls(f"key:{grant.key_id}", frozenset(), None, Owners(frozenset()), scopes, grant)

    @property
    def actor(self) -> str:
        """Who did a change, as the change and its events record it (``key:<id>`` for a machine)."""
        return self.subject

    @property
    def on_behalf_of(self) -> str | None:
        """For a machine, whom its key acts for; a person acts for themself (None)."""
        return self.key.on_behalf_of if self.key is not None else None

    @property
    def as_actor(self) -> Actor:
        return Actor(self.actor, self.on_behalf_of)

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def require(self, *roles: Role, scope: Scope | None = None) -> None:
        """Refuse (403) unless the caller has one of ``roles`` or, for an API key, ``scope``."""
        if self.has(*roles) or (scope is not None and scope in self.scopes):
            return
        wanted = " or ".join([r.value for r in roles] + ([f"the scope {scope.value}"] if scope else []))
        if self.key is not None:
            held = ", ".join(sorted(self.scopes)) or "no scope"
            raise Forbidden(f"this needs the role {wanted}; API key {self.key.name!r} has {held}")
        held = ", ".join(sorted(r.value for r in self.roles)) or "no Kariz role"
        raise Forbidden(f"this needs the role {wanted}; {self.subject} has {held}")

    def sees(self, owner: str, missing: str) -> None:
        """Refuse a record of ``owner`` this caller may not see as if it did not exist (404 ``missing``)."""
        self.seen.sees(owner, missing)
