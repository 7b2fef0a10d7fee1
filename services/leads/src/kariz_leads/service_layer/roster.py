"""The roster's and the assignment rules' use cases: put a rep (stored and published as ``RepProfile`` in
one unit of work), read reps as the caller may, replace the rules as a new version, read versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kariz_leads.domain.assignment_rules import AssignmentRules, AssignmentRulesVersion
from kariz_leads.domain.intake import InvalidField
from kariz_leads.domain.roster import Rep, RosterAccess
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import DuplicateRecord, NotFound, RuleViolation
from kariz_shared.contracts.versions import raced
from kariz_shared.persistence.unit_of_work import UnitsOfWork


@dataclass(frozen=True)
class RepChange:
    """A rep as the caller wants them (``Rep.of``'s arguments but the time and actor)."""

    email: str
    team: str
    name: str | None = None
    manager: str | None = None
    time_zone: str = "UTC"
    locale: str = "en"
    active: bool = True
    capacity: int | None = None
    weight: int = 1
    away_until: datetime | None = None


async def put_rep(
    units: UnitsOfWork[LeadsUnitOfWork], rep: RepChange, access: RosterAccess, actor: str
) -> tuple[Rep, bool]:
    """Create or replace a rep, checked against what the caller may change; the rep and whether they
    are new. Stored with its time and actor, and published (``RepProfile``) in the same unit."""

    async def work(uow: LeadsUnitOfWork) -> tuple[Rep, bool]:
        try:
            after = Rep.of(
                email=rep.email,
                team=rep.team,
                at=uow.clock.now(),
                actor=actor,
                name=rep.name,
                manager=rep.manager,
                time_zone=rep.time_zone,
                locale=rep.locale,
                active=rep.active,
                capacity=rep.capacity,
                weight=rep.weight,
                away_until=rep.away_until,
            )
        except InvalidField as exc:
            raise RuleViolation(str(exc)) from exc
        before = await uow.reps.get(after.email)
        access.check_change(before, after)
        await uow.reps.save(after)
        uow.emit(after.profile())
        return after, before is None

    return await units.run(work)


async def rep(units: UnitsOfWork[LeadsUnitOfWork], email: str, access: RosterAccess) -> Rep:
    """One rep the caller sees; another team's answers as an unknown one (404)."""

    async def read(uow: LeadsUnitOfWork) -> Rep:
        found = await uow.reps.get(email)
        if found is None or not access.sees(found):
            raise NotFound(f"no rep {email!r} in the roster" + ("" if access.admin else " of your team"))
        return found

    return await units.read(read)


async def rep_or_none(units: UnitsOfWork[LeadsUnitOfWork], email: str) -> Rep | None:
    """The roster's rep of this address, whoever asks (for a check, not to show)."""

    async def read(uow: LeadsUnitOfWork) -> Rep | None:
        return await uow.reps.get(email)

    return await units.read(read)


async def reps(
    units: UnitsOfWork[LeadsUnitOfWork], access: RosterAccess, *, limit: int, offset: int
) -> tuple[list[Rep], int]:
    """One page of the reps the caller sees (an admin: all; a manager: their team's), by address."""

    async def read(uow: LeadsUnitOfWork) -> tuple[list[Rep], int]:
        if not access.admin and access.team is None:
            return [], 0
        return await uow.reps.page(None if access.admin else access.team, limit=limit, offset=offset)

    return await units.read(read)


async def replace_assignment_rules(
    units: UnitsOfWork[LeadsUnitOfWork], rules: AssignmentRules, actor: str, edited: int | None
) -> AssignmentRulesVersion:
    """Put ``rules`` in force as the next version. 409 when ``edited`` is not the version in force, or
    when a concurrent replacement stored the same number first."""
    numbers: list[int] = []

    async def work(uow: LeadsUnitOfWork) -> AssignmentRulesVersion:
        in_force = await uow.assignment_rules.current()
        version = in_force.replaced_by(rules, uow.clock.now(), actor, edited=edited)
        numbers.append(version.number)
        await uow.assignment_rules.add(version)
        return version

    try:
        return await units.run(work)
    except DuplicateRecord as exc:
        raise raced("the assignment rules", numbers[-1]) from exc


async def current_assignment_rules(units: UnitsOfWork[LeadsUnitOfWork]) -> AssignmentRulesVersion:
    async def read(uow: LeadsUnitOfWork) -> AssignmentRulesVersion:
        return await uow.assignment_rules.current()

    return await units.read(read)


async def assignment_rule_versions(
    units: UnitsOfWork[LeadsUnitOfWork], *, limit: int, offset: int
) -> tuple[list[AssignmentRulesVersion], int]:
    async def read(uow: LeadsUnitOfWork) -> tuple[list[AssignmentRulesVersion], int]:
        return await uow.assignment_rules.page(limit=limit, offset=offset)

    return await units.read(read)


async def assignment_rules_version(
    units: UnitsOfWork[LeadsUnitOfWork], number: int
) -> AssignmentRulesVersion:
    async def read(uow: LeadsUnitOfWork) -> AssignmentRulesVersion:
        version = await uow.assignment_rules.get(number)
        if version is None:
            in_force = (await uow.assignment_rules.current()).number
            raise NotFound(f"the assignment rules have no version {number}; version {in_force} is in force")
        return version

    return await units.read(read)
