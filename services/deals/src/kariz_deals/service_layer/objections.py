"""Objections on deals and the library of answers: one function per command and per consumed event.

Who may do what is checked on the deal loaded in the unit of work (``seen``: whose deals the caller
reaches), so an objection on a deal out of reach answers the same 404 as an absent one. A change to an
objection recounts the deal's open blocking objections in the same unit; giving a library answer counts
its use there too. When a deal closes (its own ``DealWon`` / ``DealLost``, consumed), every library
answer given on it counts the outcome, once per deal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kariz_deals.domain import Deal
from kariz_deals.domain.objection import (
    AnswerGiven,
    Objection,
    ObjectionAnswer,
    Outcome,
    blocking_count,
    new_answer_id,
    new_objection_id,
)
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import Conflict, RuleViolation, found
from kariz_shared.contracts.events import (
    DealLost,
    DealWon,
    ObjectionCategory,
    ObjectionJudgement,
    ObjectionStatus,
)
from kariz_shared.contracts.identity import Actor, Owners
from kariz_shared.contracts.versions import next_version
from kariz_shared.persistence.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordObjection:
    category: ObjectionCategory
    words: str
    status: ObjectionStatus = ObjectionStatus.OPEN
    judgement: ObjectionJudgement | None = None
    #: The answer given: a library answer's id, or free text (not both).
    answer_id: str | None = None
    answer_text: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class ChangeObjection:
    status: ObjectionStatus | None = None
    judgement: ObjectionJudgement | None = None
    answer_id: str | None = None
    answer_text: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class WriteAnswer:
    category: ObjectionCategory
    title: str
    text: str


# --- objections -----------------------------------------------------------------------------------


async def record_objection(
    units: UnitsOfWork[DealsUnitOfWork], deal_id: str, command: RecordObjection, *, seen: Owners, by: Actor
) -> Objection:
    """Record an objection on an open deal the caller reaches (``ObjectionRecorded``)."""

    async def work(uow: DealsUnitOfWork) -> Objection:
        deal = await _open_deal_in_reach(uow, deal_id, seen)
        answer = await _answer_given(uow, command.answer_id, command.answer_text)
        objection = Objection.record(
            objection_id=new_objection_id(),
            deal_id=deal.id,
            lead_id=deal.lead_id,
            owner=deal.owner,
            category=command.category,
            words=command.words,
            judgement=command.judgement,
            status=command.status,
            answer=answer,
            at=uow.clock.now(),
            by=by,
            note=command.note,
        )
        await uow.objections.add(objection)
        if answer is not None and answer.answer_id is not None:
            await uow.objection_answers.count_use(answer.answer_id)
        await _recount_blocking(uow, deal, objection)
        # The objection's event continues the deal's story (its lead's correlation id).
        for event in objection.pull_events():
            uow.emit(event, correlation_id=deal.correlation_id)
        metrics, category = uow.metrics, objection.category
        uow.after_commit(lambda: metrics.objection_recorded(category))
        return objection

    return await units.run(work)


async def change_objection(
    units: UnitsOfWork[DealsUnitOfWork],
    deal_id: str,
    objection_id: str,
    command: ChangeObjection,
    *,
    seen: Owners,
    by: Actor,
) -> Objection:
    """Change an objection's status, judgement or answer; the history keeps who and when."""

    async def work(uow: DealsUnitOfWork) -> Objection:
        deal = await _open_deal_in_reach(uow, deal_id, seen)
        missing = f"no objection {objection_id!r} on deal {deal_id!r}"
        kept = await uow.objections.get(objection_id)
        objection = found(kept if kept is not None and kept.deal_id == deal.id else None, missing)
        answer = await _answer_given(uow, command.answer_id, command.answer_text)
        newly_used = objection.change(
            at=uow.clock.now(),
            by=by,
            status=command.status,
            judgement=command.judgement,
            answer=answer,
            note=command.note,
        )
        await uow.objections.save(objection)
        if newly_used and answer is not None and answer.answer_id is not None:
            await uow.objection_answers.count_use(answer.answer_id)
        await _recount_blocking(uow, deal, objection)
        return objection

    return await units.run(work)


async def objections_of(
    units: UnitsOfWork[DealsUnitOfWork], deal_id: str, *, seen: Owners
) -> list[Objection]:
    """The objections on a deal the caller reaches, oldest first."""

    async def work(uow: DealsUnitOfWork) -> list[Objection]:
        missing = f"no deal {deal_id!r}"
        deal = found(await uow.deals.get(deal_id), missing)
        seen.sees(deal.owner, missing)
        return await uow.objections.of_deal(deal.id)

    return await units.read(work)


async def _open_deal_in_reach(uow: DealsUnitOfWork, deal_id: str, seen: Owners) -> Deal:
    missing = f"no deal {deal_id!r}"
    deal = found(await uow.deals.get(deal_id), missing)
    seen.sees(deal.owner, missing)
    if deal.is_closed:
        # Its outcome is counted on the answers given; objections after it would not be.
        raise Conflict(f"deal {deal.id} is closed ({deal.stage}); its objections are final")
    return deal


async def _answer_given(
    uow: DealsUnitOfWork, answer_id: str | None, answer_text: str | None
) -> AnswerGiven | None:
    if answer_id is not None and answer_text is not None:
        raise RuleViolation(
            "answer_id: give a library answer (answer_id) or your own (answer_text), not both"
        )
    if answer_id is not None:
        answer = await uow.objection_answers.get(answer_id)
        if answer is None:
            raise RuleViolation(f"answer_id: no answer {answer_id!r} in the library")
        return answer.given()
    if answer_text is not None:
        if not answer_text.strip():
            raise RuleViolation("answer_text: the answer given is empty")
        return AnswerGiven(answer_text.strip())
    return None


async def _recount_blocking(uow: DealsUnitOfWork, deal: Deal, changed: Objection) -> None:
    """Keep the deal's count of open blocking objections; saved only when it moved (a save is a new
    version of the deal, refused to a concurrent move)."""
    others = [o for o in await uow.objections.of_deal(deal.id) if o.id != changed.id]
    count = blocking_count([*others, changed])
    if count != deal.blocking_objections:
        deal.blocking_objections = count
        await uow.deals.save(deal)


# --- the library ----------------------------------------------------------------------------------


async def write_answer(
    units: UnitsOfWork[DealsUnitOfWork], command: WriteAnswer, *, by: Actor
) -> ObjectionAnswer:
    async def work(uow: DealsUnitOfWork) -> ObjectionAnswer:
        answer = ObjectionAnswer.write(
            answer_id=new_answer_id(),
            category=command.category,
            title=command.title,
            text=command.text,
            at=uow.clock.now(),
            by=by,
        )
        await uow.objection_answers.add(answer)
        return answer

    return await units.run(work)


async def revise_answer(
    units: UnitsOfWork[DealsUnitOfWork],
    answer_id: str,
    command: WriteAnswer,
    *,
    edited: int | None,
    by: Actor,
) -> ObjectionAnswer:
    """Replace an answer's words; ``edited``: the version the curator edited (409 when another edit came
    first), None for whatever is there."""

    async def work(uow: DealsUnitOfWork) -> ObjectionAnswer:
        answer = found(await uow.objection_answers.get(answer_id), f"no answer {answer_id!r} in the library")
        next_version(f"answer {answer_id}", answer.version, edited)
        answer.revise(
            category=command.category, title=command.title, text=command.text, at=uow.clock.now(), by=by
        )
        await uow.objection_answers.save(answer)
        return answer

    return await units.run(work)


async def library_answer(units: UnitsOfWork[DealsUnitOfWork], answer_id: str) -> ObjectionAnswer:
    async def work(uow: DealsUnitOfWork) -> ObjectionAnswer:
        return found(await uow.objection_answers.get(answer_id), f"no answer {answer_id!r} in the library")

    return await units.read(work)


async def search_library(
    units: UnitsOfWork[DealsUnitOfWork],
    text: str | None,
    category: ObjectionCategory | None,
    *,
    limit: int,
    offset: int,
) -> tuple[list[ObjectionAnswer], int]:
    async def work(uow: DealsUnitOfWork) -> tuple[list[ObjectionAnswer], int]:
        return await uow.objection_answers.search(text, category, limit=limit, offset=offset)

    return await units.read(work)


# --- consumed events ------------------------------------------------------------------------------


async def count_outcome(uow: DealsUnitOfWork, event: DealWon | DealLost) -> set[str]:
    """A deal closed: each library answer given on it counts the outcome, once for the deal however
    often it was given there. Idempotent: a deal an answer counted already counts nothing more. Returns the
    answers that counted it."""
    outcome = Outcome.WON if isinstance(event, DealWon) else Outcome.LOST
    used: set[str] = set()
    for objection in await uow.objections.of_deal(event.deal_id):
        used |= objection.library_answers_used
    for answer_id in sorted(used):
        await uow.objection_answers.count_outcome(answer_id, event.deal_id, outcome)
    if used:
        log.info(
            "answers count the deal's outcome",
            extra={"deal_id": event.deal_id, "outcome": outcome.value, "answers": len(used)},
        )
    return used
