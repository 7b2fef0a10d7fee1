"""The use cases of pipelines an admin defines, of deal edits and of stalled deals.

- a pipeline is defined (a new name, version 1) or replaced (the next version, If-Match the one edited);
  the open deals in it follow the new version in the same unit, those in a removed stage moved where the
  admin's mapping says (``StageChanged``, reason "pipeline changed");
- a deal is edited (``PATCH /deals/{id}``): ``DealUpdated`` for the followed fields;
- every change of a deal keeps its stall timer (``deal:<id>:stalled``) at its stage's rot limit, armed
  with the ``DealStalled`` the deal would raise then, or disarmed;
- an ``ActivityLogged`` for a deal's lead starts its stall clock again (where its pipeline says so), and
  on a won deal records the first contact after the win.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kariz_deals.domain import Deal, DealChanges, Pipeline, PipelineVersion, StageMapping
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import Conflict, NotFound, found
from kariz_shared.contracts.events import ActivityLogged
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners
from kariz_shared.persistence.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)


# --- stall timers -----------------------------------------------------------------------------------


def keep_stall_timer(uow: DealsUnitOfWork, deal: Deal, *, had_one: bool = True, first: bool = False) -> None:
    """Arm the deal's stall timer at ``rots_at`` with the ``DealStalled`` it would raise, or disarm it.
    ``had_one``: a timer may be armed (False spares MongoDB a delete of nothing); ``first``: the deal is
    new in this unit, so nothing is armed under its key yet."""
    stalled = deal.stall_event()
    if stalled is not None and deal.rots_at is not None:
        uow.timers.arm(
            deal.stall_timer_key(), deal.rots_at, stalled, first=first, correlation_id=deal.correlation_id
        )
    elif had_one:
        uow.timers.cancel(deal.stall_timer_key())


async def activity_logged(uow: DealsUnitOfWork, event: ActivityLogged) -> list[Deal]:
    """An activity on a lead (on one of its deals, if it names one): each open deal of the lead whose
    pipeline re-arms on activities starts its stall clock again; a won deal gets its first contact after
    the win. Idempotent: the inbox takes each event once, and a second activity changes neither again
    (a later stall clock only moves it later)."""
    changed = []
    for deal in await uow.deals.of_lead(event.lead_id):
        if event.deal_id is not None and deal.id != event.deal_id:
            continue
        had_one = deal.rots_at is not None
        if deal.activity_logged(event.occurred_at):
            await uow.deals.save(deal)
            keep_stall_timer(uow, deal, had_one=had_one)
            changed.append(deal)
    if changed:
        log.info("activity on deals", extra={"lead_id": event.lead_id, "deals": len(changed)})
    return changed


# --- pipelines --------------------------------------------------------------------------------------


async def pipelines_in_force(units: UnitsOfWork[DealsUnitOfWork]) -> list[PipelineVersion]:
    async def work(uow: DealsUnitOfWork) -> list[PipelineVersion]:
        return await uow.pipelines.all_in_force()

    return await units.read(work)


async def pipeline_in_force(units: UnitsOfWork[DealsUnitOfWork], name: str) -> PipelineVersion:
    async def work(uow: DealsUnitOfWork) -> PipelineVersion:
        return found(await uow.pipelines.in_force(name), f"no pipeline {name!r}")

    return await units.read(work)


async def pipeline_versions(
    units: UnitsOfWork[DealsUnitOfWork], name: str, *, limit: int, offset: int
) -> tuple[list[PipelineVersion], int]:
    async def work(uow: DealsUnitOfWork) -> tuple[list[PipelineVersion], int]:
        found(await uow.pipelines.in_force(name), f"no pipeline {name!r}")
        return await uow.pipelines.page(name, limit=limit, offset=offset)

    return await units.read(work)


async def define_pipeline(
    units: UnitsOfWork[DealsUnitOfWork], pipeline: Pipeline, actor: str
) -> PipelineVersion:
    """A new pipeline (version 1); 409 when the name is taken."""

    async def work(uow: DealsUnitOfWork) -> PipelineVersion:
        if await uow.pipelines.in_force(pipeline.name) is not None:
            raise Conflict(
                f"a pipeline {pipeline.name!r} exists; replace it with PUT /pipelines/{pipeline.name}"
            )
        version = PipelineVersion(1, pipeline, uow.clock.now(), actor)
        await uow.pipelines.add(version)
        return version

    return await units.run(work)


@dataclass(frozen=True)
class ReplacedPipeline:
    version: PipelineVersion
    #: Open deals moved out of removed stages.
    moved: int
    #: Open deals that now follow the new version.
    following: int


async def replace_pipeline(
    units: UnitsOfWork[DealsUnitOfWork],
    pipeline: Pipeline,
    mapping: StageMapping,
    actor: Actor,
    edited: int | None,
) -> ReplacedPipeline:
    """Put the next version of ``pipeline`` in force (409 if ``edited`` is not the version in force);
    its open deals follow it in the same unit, so a removed stage never holds a deal."""

    async def work(uow: DealsUnitOfWork) -> ReplacedPipeline:
        in_force = await uow.pipelines.in_force(pipeline.name)
        if in_force is None:
            raise NotFound(f"no pipeline {pipeline.name!r}; define it with POST /pipelines")
        now = uow.clock.now()
        version = in_force.replaced_by(pipeline, now, actor.who, edited=edited)
        deals = await uow.deals.open_in_pipeline(pipeline.name)
        mapping.checked(in_force.pipeline, pipeline, {d.stage for d in deals})
        moves = []
        for deal in deals:
            had_one = deal.rots_at is not None
            move = deal.follow_pipeline(pipeline, now, mapping.target_of(deal.stage))
            await uow.deals.save(deal)
            uow.publish(deal)
            keep_stall_timer(uow, deal, had_one=had_one)
            if move is not None:
                moves.append(move)
        await uow.pipelines.add(version)
        metrics = uow.metrics
        uow.after_commit(lambda: [metrics.moved(move) for move in moves] and None)
        moved = len(moves)
        log.info(
            "pipeline replaced",
            extra={"pipeline": pipeline.name, "version": version.number, "deals": len(deals), "moved": moved},
        )
        return ReplacedPipeline(version, moved, len(deals))

    return await units.run(work)


# --- deal edits -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditDeal:
    """Change a deal's fields (``PATCH /deals/{id}``)."""

    deal_id: str
    changes: DealChanges
    #: Whose deals the asker may edit (others' are not there for them).
    seen: Owners = EVERYONE
    by: Actor | None = None


async def edit_deal(units: UnitsOfWork[DealsUnitOfWork], command: EditDeal) -> Deal:
    async def work(uow: DealsUnitOfWork) -> Deal:
        missing = f"no deal {command.deal_id!r}"
        deal = found(await uow.deals.get(command.deal_id), missing)
        command.seen.sees(deal.owner, missing)
        had_one = deal.rots_at is not None
        deal.update(command.changes, uow.clock.now(), command.by)
        await uow.deals.save(deal)
        uow.publish(deal)
        # Its DealStalled carries owner and amount: armed again with the new ones, due when it was.
        keep_stall_timer(uow, deal, had_one=had_one)
        return deal

    return await units.run(work)
