"""Objections a customer raised on a deal, and the library of standard answers to them.

An objection is recorded by the deal's rep with the customer's words, its category, whether the rep
judges it real or an excuse, its status and the answer given (a library answer, or free text). Every
change is kept in its history, with who made it and when. Open objections with status "blocking" are
counted on the deal (``Deal.blocking_objections``).

A library answer is curated by managers; how often it was given and the outcomes of the deals it was
given on (each deal counted once, however many times the answer was used on it) give its win rate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import (
    ObjectionCategory,
    ObjectionJudgement,
    ObjectionRecorded,
    ObjectionStatus,
)
from kariz_shared.contracts.identity import Actor

#: Win rates are shown to the thousandth (0.667): enough to compare answers, no false precision.
RATE = Decimal("0.001")


def new_objection_id() -> str:
    return f"OBJ-{uuid.uuid4().hex}"


def new_answer_id() -> str:
    return f"ANS-{uuid.uuid4().hex}"


class Outcome(StrEnum):
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class AnswerGiven:
    """The answer a rep gave: a library answer (its id and its text then) or their own words."""

    text: str
    answer_id: str | None = None

    @property
    def from_library(self) -> bool:
        return self.answer_id is not None


@dataclass(frozen=True)
class ObjectionChange:
    """One entry of an objection's history: what was set (field -> new value), by whom, when."""

    at: datetime
    by: str
    changed: Mapping[str, str | None]
    note: str | None = None


@dataclass
class Objection(Aggregate):
    id: str
    deal_id: str
    category: ObjectionCategory
    words: str
    judgement: ObjectionJudgement | None
    status: ObjectionStatus
    answer: AnswerGiven | None
    recorded_by: str
    recorded_at: datetime
    updated_at: datetime
    history: list[ObjectionChange] = field(default_factory=list)
    version: int = 0

    @classmethod
    def record(
        cls,
        *,
        objection_id: str,
        deal_id: str,
        lead_id: str,
        owner: str,
        category: ObjectionCategory,
        words: str,
        judgement: ObjectionJudgement | None,
        status: ObjectionStatus,
        answer: AnswerGiven | None,
        at: datetime,
        by: Actor,
        note: str | None = None,
    ) -> Objection:
        """A new objection; it raises ``ObjectionRecorded``."""
        clean_words = words.strip()
        if not clean_words:
            raise RuleViolation("words: say what the customer said")
        must_have_answer_if_answered(status, answer)
        objection = cls(
            id=objection_id,
            deal_id=deal_id,
            category=category,
            words=clean_words,
            judgement=judgement,
            status=status,
            answer=answer,
            recorded_by=by.who,
            recorded_at=at,
            updated_at=at,
        )
        objection.history.append(ObjectionChange(at, by.who, objection._state(), note))
        objection.raise_event(
            ObjectionRecorded(
                objection_id=objection.id,
                deal_id=deal_id,
                lead_id=lead_id,
                owner=owner,
                category=category,
                words=clean_words,
                judgement=judgement,
                status=status,
                answer_id=answer.answer_id if answer else None,
                answer_text=answer.text if answer else None,
                recorded_at=at,
                actor=by.who,
            )
        )
        return objection

    def _state(self) -> dict[str, str | None]:
        return {
            "category": self.category.value,
            "words": self.words,
            "judgement": self.judgement.value if self.judgement else None,
            "status": self.status.value,
            "answer_id": self.answer.answer_id if self.answer else None,
            "answer_text": self.answer.text if self.answer else None,
        }

    @property
    def is_blocking(self) -> bool:
        return self.status is ObjectionStatus.BLOCKING

    @property
    def library_answers_used(self) -> frozenset[str]:
        """Every library answer given to it, the one now and those it had before."""
        return frozenset(
            answer_id
            for change in self.history
            if isinstance(answer_id := change.changed.get("answer_id"), str)
        )

    def change(
        self,
        *,
        at: datetime,
        by: Actor,
        status: ObjectionStatus | None = None,
        judgement: ObjectionJudgement | None = None,
        answer: AnswerGiven | None = None,
        note: str | None = None,
    ) -> bool:
        """Set what is given (None: as it is) and keep the change in the history. Returns whether a
        library answer was newly given (the same answer again is no new use). Checks before changing."""
        if status is None and judgement is None and answer is None:
            raise RuleViolation("give at least one of status, judgement or answer to change")
        new_status = status or self.status
        new_answer = answer or self.answer
        must_have_answer_if_answered(new_status, new_answer)
        before = self._state()
        newly_used = (
            answer is not None
            and answer.from_library
            and (self.answer is None or self.answer.answer_id != answer.answer_id)
        )
        self.status = new_status
        self.judgement = judgement or self.judgement
        self.answer = new_answer
        after = self._state()
        changed = {name: value for name, value in after.items() if before[name] != value}
        if not changed:
            raise RuleViolation("nothing to change: the objection is already so")
        self.updated_at = at
        self.history.append(ObjectionChange(at, by.who, changed, note))
        return newly_used


def must_have_answer_if_answered(status: ObjectionStatus, answer: AnswerGiven | None) -> None:
    """An objection is "answered" only once an answer was given."""
    if status is ObjectionStatus.ANSWERED and answer is None:
        raise RuleViolation("answer: an answered objection needs the answer given (answer_id or answer_text)")


def blocking_count(objections: Iterable[Objection]) -> int:
    """The deal's open blocking objections."""
    return sum(1 for objection in objections if objection.is_blocking)


@dataclass
class ObjectionAnswer(Aggregate):
    """A standard answer of the library."""

    id: str
    category: ObjectionCategory
    title: str
    text: str
    written_by: str
    written_at: datetime
    updated_by: str
    updated_at: datetime
    version: int = 0
    #: How many times it was given to an objection.
    times_used: int = 0
    #: The outcome of each closed deal it was given on: one entry per deal, so a deal counts once.
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @classmethod
    def write(
        cls, *, answer_id: str, category: ObjectionCategory, title: str, text: str, at: datetime, by: Actor
    ) -> ObjectionAnswer:
        clean_title, clean_text = _checked(title, text)
        return cls(answer_id, category, clean_title, clean_text, by.who, at, by.who, at)

    def revise(self, *, category: ObjectionCategory, title: str, text: str, at: datetime, by: Actor) -> None:
        """Replace its words; its usage and outcomes stay (they are the answer's record)."""
        self.title, self.text = _checked(title, text)
        self.category = category
        self.updated_by, self.updated_at = by.who, at

    def given(self) -> AnswerGiven:
        return AnswerGiven(self.text, self.id)

    @property
    def deals_won(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome is Outcome.WON)

    @property
    def deals_closed(self) -> int:
        return len(self.outcomes)

    @property
    def win_rate(self) -> Decimal | None:
        """Won among the closed deals it was given on; None before any closed."""
        if not self.outcomes:
            return None
        return (Decimal(self.deals_won) / Decimal(self.deals_closed)).quantize(RATE, rounding=ROUND_HALF_EVEN)

    def matches(self, text: str | None, category: ObjectionCategory | None) -> bool:
        """The library's search: the category, and every word of ``text`` in its title or text."""
        if category is not None and self.category is not category:
            return False
        haystack = f"{self.title}\n{self.text}".casefold()
        return all(word in haystack for word in search_words(text))


def search_words(text: str | None) -> list[str]:
    return (text or "").casefold().split()


def _checked(title: str, text: str) -> tuple[str, str]:
    clean_title, clean_text = title.strip(), text.strip()
    if not clean_title:
        raise RuleViolation("title: give the answer a title")
    if not clean_text:
        raise RuleViolation("text: write the answer")
    return clean_title, clean_text
