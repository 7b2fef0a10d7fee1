"""Objections and the answer library in memory, for the use-case tests: the same contracts as MongoDB
(copies in and out, a save over a stale version refused)."""

from __future__ import annotations

import copy

from kariz_deals.domain.objection import Objection, ObjectionAnswer, Outcome
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import ObjectionCategory
from kariz_shared.persistence.in_memory import InMemoryVersionedAggregates


class InMemoryObjectionRepository(InMemoryVersionedAggregates[Objection]):
    async def of_deal(self, deal_id: str) -> list[Objection]:
        mine = [o for o in self.by_id.values() if o.deal_id == deal_id]
        return [copy.deepcopy(o) for o in sorted(mine, key=lambda o: (o.recorded_at, o.id))]

    async def add(self, objection: Objection) -> None:
        self.keep(objection.id, objection)

    async def save(self, objection: Objection) -> None:
        stale = f"objection {objection.id} was changed by another request meanwhile; reload it and try again"
        self.keep_version(objection.id, objection, stale=stale)


class InMemoryObjectionAnswerRepository(InMemoryVersionedAggregates[ObjectionAnswer]):
    async def search(
        self, text: str | None, category: ObjectionCategory | None, *, limit: int, offset: int
    ) -> tuple[list[ObjectionAnswer], int]:
        selected = sorted(
            (a for a in self.by_id.values() if a.matches(text, category)),
            key=lambda a: (a.category.value, a.title.casefold(), a.id),
        )
        return [copy.deepcopy(a) for a in selected[offset : offset + limit]], len(selected)

    async def add(self, answer: ObjectionAnswer) -> None:
        self.keep(answer.id, answer)

    async def save(self, answer: ObjectionAnswer) -> None:
        kept = self.by_id.get(answer.id)
        if kept is None or kept.version != answer.version:
            raise Conflict(
                f"answer {answer.id} was changed by another request meanwhile; reload it and try again"
            )
        # Only the words are the curator's: usage and outcomes stay as counted (as on MongoDB).
        kept.category, kept.title, kept.text = answer.category, answer.title, answer.text
        kept.updated_by, kept.updated_at = answer.updated_by, answer.updated_at
        kept.version += 1
        answer.version = kept.version
        answer.times_used, answer.outcomes = kept.times_used, dict(kept.outcomes)

    async def count_use(self, answer_id: str) -> None:
        self.by_id[answer_id].times_used += 1

    async def count_outcome(self, answer_id: str, deal_id: str, outcome: Outcome) -> None:
        kept = self.by_id.get(answer_id)
        if kept is not None:  # an answer removed from the library counts nothing
            kept.outcomes.setdefault(deal_id, outcome)
