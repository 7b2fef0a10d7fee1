"""What became of the leads qualification qualified: won, lost or still open, per score band and per
rule, so the score can be judged by the deals it led to (the closed loop).

A qualified lead is kept as a :class:`QualifiedLead`: its score when it qualified and the rules that
gave it points then (its *features*, ``rule=matched``), and later the outcome of its deal (``DealWon``,
``DealLost``). Engagement lines are left out of the features: they fade with time, so the points a lead
had of them say when it qualified more than what it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kariz_qualification.domain.engagement import is_engagement
from kariz_shared.contracts.events import ScoreLine

Result = Literal["open", "won", "lost"]
Closed = Literal["won", "lost"]

#: Score bands of the performance report are this many points wide (70-79, 80-89, ...).
BAND_WIDTH = 10


class CalibrationRules(BaseModel):
    """When outcomes are enough to calibrate the score, and how often to do it again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_outcomes: StrictInt = Field(
        default=50,
        ge=10,
        le=100_000,
        description="Closed outcomes (won + lost) needed before a calibrated probability is given",
    )
    min_each: StrictInt = Field(
        default=5, ge=2, le=10_000, description="Of those, at least this many won and this many lost"
    )
    retrain_every: StrictInt = Field(
        default=25,
        ge=1,
        le=100_000,
        description="A new calibration once this many more outcomes closed since the one in force",
    )
    max_outcomes: StrictInt = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description="A calibration learns from at most this many outcomes, the most recently closed: it "
        "follows what wins now, and its training stays short",
    )
    min_support: StrictInt = Field(
        default=5,
        ge=1,
        le=10_000,
        description="A rule's points are suggested only from at least this many closed outcomes of it",
    )


def feature_of(line: ScoreLine) -> str:
    return f"{line.rule}={line.matched}"


def features_of(breakdown: Iterable[ScoreLine]) -> tuple[str, ...]:
    """The lines that describe what a lead is (fit, answers), not how recently it engaged."""
    return tuple(feature_of(line) for line in breakdown if not is_engagement(line))


def band_of(score: int) -> str:
    low = (max(score, 0) // BAND_WIDTH) * BAND_WIDTH
    return f"{low}-{low + BAND_WIDTH - 1}"


@dataclass(frozen=True)
class QualifiedLead:
    """A qualified lead and what became of it."""

    lead_id: str
    qualified_at: datetime
    score: int
    features: tuple[str, ...]
    #: The rule-set version of the scoring that qualified it (None: scored before versions were kept).
    rules_version: int | None
    result: Result = "open"
    closed_at: datetime | None = None
    deal_id: str | None = None

    @property
    def band(self) -> str:
        return band_of(self.score)

    @property
    def is_closed(self) -> bool:
        return self.result != "open"

    def closed(self, result: Closed, at: datetime, deal_id: str) -> QualifiedLead:
        """The outcome of its deal. A later outcome of another deal of the lead replaces it: the newest
        deal says what the lead became."""
        return replace(self, result=result, closed_at=at, deal_id=deal_id)

    def already(self, result: Closed, deal_id: str) -> bool:
        """Whether this outcome is the one kept already (a redelivered or repeated event)."""
        return self.result == result and self.deal_id == deal_id


@dataclass
class Tally:
    won: int = 0
    lost: int = 0
    open: int = 0

    def count(self, result: Result) -> None:
        if result == "won":
            self.won += 1
        elif result == "lost":
            self.lost += 1
        else:
            self.open += 1

    @property
    def closed(self) -> int:
        return self.won + self.lost

    @property
    def win_rate(self) -> float | None:
        """Won of closed; None with nothing closed (no rate, rather than 0)."""
        return self.won / self.closed if self.closed else None


@dataclass
class Performance:
    """How the qualified leads did, overall, by score band and by rule (``rule=matched``)."""

    overall: Tally = field(default_factory=Tally)
    bands: dict[str, Tally] = field(default_factory=dict)
    rules: dict[str, Tally] = field(default_factory=dict)

    def lift(self, feature: str) -> float | None:
        """How much more often leads a rule gave points to won than qualified leads as a whole: its win
        rate over the overall one (1.0: no better; None: no closed outcome of it, or none won at all)."""
        rate, overall = self.rules[feature].win_rate, self.overall.win_rate
        if rate is None or not overall:
            return None
        return rate / overall


def performance(leads: Iterable[QualifiedLead]) -> Performance:
    report = Performance()
    for lead in leads:
        report.overall.count(lead.result)
        report.bands.setdefault(lead.band, Tally()).count(lead.result)
        for feature in lead.features:
            report.rules.setdefault(feature, Tally()).count(lead.result)
    report.bands = dict(sorted(report.bands.items(), key=lambda item: int(item[0].split("-")[0])))
    report.rules = dict(sorted(report.rules.items()))
    return report
