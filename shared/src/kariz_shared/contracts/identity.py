"""Who asks, and what they may see: the caller of a request and the record-level rules. No I/O: the
token check that makes a :class:`Caller` lives in :mod:`kariz_shared.runtime.auth`.

A ``rep`` reads and changes their own leads and deals (owner = the token's subject); a ``manager`` those
of their team (the reps the roster puts in the team named by the token); an ``admin`` everything and the
configuration. Lists are filtered in the query by :class:`Owners`, never padded; a record the caller may
not see answers 404 (its existence is not confirmed), a change the caller's role may not make 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from kariz_shared.contracts.errors import Forbidden, NotFound


def same_person(address: str) -> str:
    """An owner or subject as records compare them (owners are stored trimmed and lower-case)."""
    return address.strip().lower()


class Role(StrEnum):
    REP = "rep"
    MANAGER = "manager"
    ADMIN = "admin"


#: The people's roles, in the order of what they may see.
PEOPLE = (Role.REP, Role.MANAGER, Role.ADMIN)


@dataclass(frozen=True)
class Roster:
    """Which reps make up each team (team name -> rep addresses). Configuration today (``KARIZ_TEAMS``)."""

    teams: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, teams: Mapping[str, Iterable[str]]) -> Roster:
        return cls({team: frozenset(same_person(rep) for rep in reps) for team, reps in teams.items()})

    def members(self, team: str | None) -> frozenset[str]:
        return self.teams.get(team, frozenset()) if team else frozenset()


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
    def signed_in(cls, subject: str, roles: frozenset[Role], team: str | None, roster: Roster) -> Caller:
        me = same_person(subject)
        if Role.ADMIN in roles:
            seen = EVERYONE
        else:
            owners = {me} if roles & {Role.REP, Role.MANAGER} else set()
            if Role.MANAGER in roles:
                owners |= roster.members(team)
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
