"""Qualification methodologies: named checklists of typed items (BANT, MEDDIC, MEDDPICC).

The catalogue here says which items a methodology asks and what an answer to each may be; the rule set
(:mod:`kariz_qualification.domain.rules`) says what each answer is worth, which items are required
before a lead can qualify and which answers are a hard "no". An answer is a ``ChecklistAnswer`` (the
event value), recorded with who answered and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import BantAnswers, ChecklistAnswer, ChecklistCompleteness

MethodologyName = Literal["bant", "meddic", "meddpicc"]
ItemKind = Literal["yes_no", "choice", "amount", "person", "text"]

Budget = Literal["confirmed", "planned", "none", "unknown"]
Authority = Literal["decision_maker", "influencer", "none", "unknown"]
Need = Literal["confirmed", "possible", "none", "unknown"]
Timeline = Literal["within_3_months", "within_6_months", "within_12_months", "later", "unknown"]
Pain = Literal["confirmed", "possible", "none", "unknown"]
Competition = Literal["none", "identified", "favoured_competitor", "unknown"]

YES_NO = ("yes", "no", "unknown")
#: What an unanswered yes/no or choice item is: it neither scores nor counts as answered.
UNKNOWN = "unknown"
#: The points key of an item whose answer is free (amount, person, text): any answer earns them.
ANSWERED = "answered"


@dataclass(frozen=True)
class Item:
    key: str
    kind: ItemKind
    question: str
    #: The allowed answers of a ``choice`` (``yes_no``: yes, no, unknown).
    choices: tuple[str, ...] = ()

    @property
    def values(self) -> tuple[str, ...]:
        """The answers that can earn points (and be a hard no)."""
        if self.kind == "yes_no":
            return YES_NO
        if self.kind == "choice":
            return self.choices
        return (ANSWERED,)


def _choices(kind: object) -> tuple[str, ...]:
    return tuple(get_args(kind))


@dataclass(frozen=True)
class Methodology:
    name: MethodologyName
    items: tuple[Item, ...]
    #: The ``amount`` item that holds the budget (``LeadQualified.budget_amount``), if any.
    budget_item: str | None = None

    def item(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.items)


BANT = Methodology(
    "bant",
    (
        Item("budget", "choice", "Is there a budget for it?", _choices(Budget)),
        Item("budget_amount", "amount", "How much is the budget?"),
        Item("authority", "choice", "Is the contact the one who decides?", _choices(Authority)),
        Item("decision_maker", "person", "Who decides?"),
        Item("need", "choice", "Is there a need?", _choices(Need)),
        Item("pain", "text", "What is the pain?"),
        Item("timeline", "choice", "When do they mean to buy?", _choices(Timeline)),
        Item("notes", "text", "Anything else from the call"),
    ),
    budget_item="budget_amount",
)
_MEDDIC_ITEMS = (
    Item("metrics", "text", "What measurable gain does the buyer expect?"),
    Item("economic_buyer", "person", "Who has the final say on the money?"),
    Item("decision_criteria", "text", "What will they judge the offers by?"),
    Item("decision_process", "text", "How, by whom and by when will they decide?"),
    Item("identify_pain", "choice", "Is there a pain this solves?", _choices(Pain)),
    Item("champion", "person", "Who sells it for us inside the account?"),
    # Not a letter of the acronym: the amount the economic buyer set aside, for the deal's amount.
    Item("budget", "amount", "How much has the economic buyer set aside?"),
)
MEDDIC = Methodology("meddic", _MEDDIC_ITEMS, budget_item="budget")
MEDDPICC = Methodology(
    "meddpicc",
    (
        *_MEDDIC_ITEMS,
        Item("paper_process", "yes_no", "Is the paper process (procurement, legal, signatures) known?"),
        Item("competition", "choice", "Who else is in the running?", _choices(Competition)),
    ),
    budget_item="budget",
)
METHODOLOGIES: Mapping[str, Methodology] = {m.name: m for m in (BANT, MEDDIC, MEDDPICC)}


@dataclass(frozen=True)
class Given:
    """An answer as a rep gives it, before it is recorded with who and when. Which fields are set
    depends on ``kind`` (as in ``ChecklistAnswer``)."""

    kind: ItemKind
    value: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    title: str | None = None

    def recorded(self, item: str, by: str | None, at: datetime) -> ChecklistAnswer:
        return ChecklistAnswer(
            item=item,
            kind=self.kind,
            value=self.value,
            amount=self.amount,
            currency=self.currency,
            title=self.title,
            answered_by=by,
            answered_at=at,
        )


def methodology(name: str) -> Methodology:
    found = METHODOLOGIES.get(name)
    if found is None:
        raise RuleViolation(f"methodology {name!r} is unknown; one of {', '.join(METHODOLOGIES)}")
    return found


def is_answered(answer: ChecklistAnswer | None) -> bool:
    """Whether an item is answered: an ``unknown`` is recorded but says nothing yet."""
    return answer is not None and answer.value != UNKNOWN


def value_key(answer: ChecklistAnswer) -> str:
    """The answer as the rule set's points and hard no's name it."""
    if answer.kind in ("yes_no", "choice"):
        return answer.value or UNKNOWN
    return ANSWERED


@dataclass(frozen=True)
class ChecklistReview:
    """What the verdict rules say of a lead's checklist (``RuleSet.review``)."""

    methodology: str
    #: The reason of the first hard no among the answers (the lead is disqualified), or None.
    hard_no: str | None
    #: The items required before the lead can qualify, and those of them still unanswered.
    required: tuple[str, ...]
    missing: tuple[str, ...]
    answered: tuple[str, ...]
    items: int

    @property
    def complete(self) -> bool:
        return not self.missing

    def completeness(self) -> ChecklistCompleteness:
        return ChecklistCompleteness(
            answered=len(self.answered),
            items=self.items,
            required=len(self.required),
            required_answered=len(self.required) - len(self.missing),
            missing=list(self.missing),
        )


# --- BANT, as the v1 events carry it --------------------------------------------------------------


def bant_checklist(answers: BantAnswers, by: str | None, at: datetime) -> dict[str, ChecklistAnswer]:
    """The BANT checklist of a whole qualification call (``PUT /bant``, or answers stored before
    checklists were kept)."""
    recorded: dict[str, ChecklistAnswer] = {}
    for key in ("budget", "authority", "need", "timeline"):
        recorded[key] = ChecklistAnswer(
            item=key, kind="choice", value=getattr(answers, key), answered_by=by, answered_at=at
        )
    if answers.budget_amount is not None:
        recorded["budget_amount"] = ChecklistAnswer(
            item="budget_amount", kind="amount", amount=answers.budget_amount, answered_by=by, answered_at=at
        )
    if answers.decision_maker:
        recorded["decision_maker"] = ChecklistAnswer(
            item="decision_maker", kind="person", value=answers.decision_maker, answered_by=by, answered_at=at
        )
    for key in ("pain", "notes"):
        text = getattr(answers, key)
        if text:
            recorded[key] = ChecklistAnswer(item=key, kind="text", value=text, answered_by=by, answered_at=at)
    return {key: recorded[key] for key in BANT.keys if key in recorded}


def bant_answers(checklist: Mapping[str, ChecklistAnswer]) -> BantAnswers | None:
    """The v1 ``BantAnswers`` of a BANT checklist (an unanswered question is ``unknown``); None when
    nothing is answered."""
    if not checklist:
        return None

    def value(key: str) -> str | None:
        answer = checklist.get(key)
        return None if answer is None else answer.value

    amount = checklist.get("budget_amount")
    return BantAnswers(
        budget=value("budget") or UNKNOWN,
        budget_amount=None if amount is None else amount.amount,
        authority=value("authority") or UNKNOWN,
        decision_maker=value("decision_maker"),
        need=value("need") or UNKNOWN,
        pain=value("pain"),
        timeline=value("timeline") or UNKNOWN,
        notes=value("notes"),
    )


def budget_of(name: str, checklist: Mapping[str, ChecklistAnswer]) -> tuple[Decimal | None, str | None]:
    """The budget amount (and its currency) a checklist holds, if its methodology has an amount item."""
    item = METHODOLOGIES[name].budget_item if name in METHODOLOGIES else None
    answer = checklist.get(item) if item else None
    if answer is None or answer.amount is None:
        return None, None
    return answer.amount, answer.currency
