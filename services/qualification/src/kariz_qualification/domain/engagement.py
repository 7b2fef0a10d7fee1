"""Engagement: what a lead's contact does (opens an e-mail, visits the pricing page, attends a webinar,
captures again, picks up the phone), worth points that fade.

Each kind of signal earns the points the rule set gives it, decayed by its half-life: a signal ``age``
old is worth ``points * 0.5^(age / half_life)``. A lead's engagement is the sum by kind (each kind one
``ScoreLine``, rule ``engagement.<kind>``, rounded to whole points), capped so that a bot opening a
thousand e-mails cannot qualify a lead by itself.

Bands (cold, warm, hot, ...) sort the combined score for marketing automation. Because the decayed score
only falls between signals, the moment it falls below the band it is in can be computed ahead
(:func:`band_drop_at`): qualification arms one timer for that moment instead of scanning every lead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from kariz_shared.contracts.events import ScoreLine

#: What marketing systems report (``POST /engagements``).
MarketingKind = Literal[
    "email_opened", "email_clicked", "page_visited", "content_downloaded", "webinar_attended"
]
#: ``touched``: the contact was captured again (a repeat form fill, another list); ``reached``: a rep
#: logged an activity in which they got through to the contact.
EngagementKind = Literal[
    "email_opened",
    "email_clicked",
    "page_visited",
    "content_downloaded",
    "webinar_attended",
    "touched",
    "reached",
]

#: The engagement rule lines are named ``engagement.<kind>``; the cap's line ``engagement.cap``.
RULE_PREFIX = "engagement."

#: A lead keeps its most recent signals only: older ones have decayed to nothing long before.
KEPT_SIGNALS = 200

HalfLifeDays = Annotated[float, Field(gt=0, le=3650)]


class Band(BaseModel):
    """A combined score of at least ``min`` (up to the next band's) is in band ``name``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
    min: Annotated[StrictInt, Field(ge=0)]


DEFAULT_POINTS: dict[EngagementKind, int] = {
    "email_opened": 2,
    "email_clicked": 5,
    "page_visited": 3,
    "content_downloaded": 8,
    "webinar_attended": 15,
    "touched": 5,
    "reached": 10,
}
DEFAULT_BANDS = (Band(name="cold", min=0), Band(name="warm", min=40), Band(name="hot", min=70))


class EngagementRules(BaseModel):
    """Points per kind of engagement signal, how fast they fade, their cap, and the score bands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: dict[EngagementKind, Annotated[StrictInt, Field(ge=0, le=100)]] = Field(
        default_factory=lambda: dict(DEFAULT_POINTS),
        description="Points of one signal of each kind when fresh; kinds not listed earn nothing",
    )
    half_life_days: HalfLifeDays = Field(
        default=14.0, description="After this many days a signal is worth half its points"
    )
    half_life_days_by_kind: dict[EngagementKind, HalfLifeDays] = Field(
        default_factory=dict, description="A half-life of its own for some kinds (e.g. webinar_attended)"
    )
    max_points: Annotated[StrictInt, Field(ge=0, le=100)] = Field(
        default=40, description="Engagement adds at most this many points to the score"
    )
    reopen_points: Annotated[StrictInt, Field(ge=1, le=100)] | None = Field(
        default=20,
        description="New engagement (signals after the disqualification, decayed) that re-opens a "
        "disqualified lead; none: engagement never re-opens one",
    )
    reopen_after_days: Annotated[float, Field(ge=0, le=3650)] = Field(
        default=30.0, description="The cooling-off period: no re-opening by engagement sooner after it"
    )
    bands: list[Band] = Field(
        default_factory=lambda: list(DEFAULT_BANDS),
        min_length=1,
        description="Bands of the combined score (fit + engagement), the lowest from 0; LeadScored is "
        "published when a lead changes band",
    )

    @model_validator(mode="after")
    def _bands_cover_from_zero(self) -> EngagementRules:
        mins = [band.min for band in self.bands]
        if mins != sorted(set(mins)):
            raise ValueError("engagement.bands: list the bands by min, ascending, each min once")
        if mins[0] != 0:
            raise ValueError("engagement.bands: the first band must start at 0, so every score has a band")
        if len({band.name for band in self.bands}) != len(self.bands):
            raise ValueError("engagement.bands: each band name once")
        return self

    def half_life(self, kind: EngagementKind) -> timedelta:
        return timedelta(days=self.half_life_days_by_kind.get(kind, self.half_life_days))

    def band_of(self, score: int) -> Band:
        # A score below 0 (penalties) is in the lowest band.
        return next((band for band in reversed(self.bands) if band.min <= score), self.bands[0])


@dataclass(frozen=True)
class Signal:
    """One engagement of the lead's contact: its kind, when it happened, where it came from."""

    kind: EngagementKind
    at: datetime
    #: ``marketing`` (POST /engagements), ``capture`` (a repeat capture), ``activity`` (a rep's call).
    origin: str
    #: Unique per signal where the sender gives one (an activity id, a marketing system's id): a repeat
    #: of the same signal counts once.
    signal_id: str | None = None
    #: Who reported it: a machine's key (key:<id>) or a person.
    by: str | None = None


def decayed(points: int, age: timedelta, half_life: timedelta) -> float:
    """What ``points`` are worth ``age`` after the signal (a signal in the future counts as fresh)."""
    return points * 0.5 ** (max(age, timedelta(0)) / half_life)


def engagement_lines(signals: Iterable[Signal], rules: EngagementRules, at: datetime) -> list[ScoreLine]:
    """One line per kind that still earns a point at ``at``, in the rule set's order of kinds, and a
    negative ``engagement.cap`` line taking the sum down to the cap when it is above it."""
    by_kind: dict[EngagementKind, float] = {}
    for signal in signals:
        points = rules.points.get(signal.kind)
        if points:
            by_kind[signal.kind] = by_kind.get(signal.kind, 0.0) + decayed(
                points, at - signal.at, rules.half_life(signal.kind)
            )
    lines = [
        ScoreLine(rule=f"{RULE_PREFIX}{kind}", matched=kind, points=round(by_kind[kind]))
        for kind in rules.points
        if kind in by_kind and round(by_kind[kind]) > 0
    ]
    total = sum(line.points for line in lines)
    if total > rules.max_points:
        cap = rules.max_points
        lines.append(ScoreLine(rule=f"{RULE_PREFIX}cap", matched=str(cap), points=cap - total))
    return lines


def is_engagement(line: ScoreLine) -> bool:
    return line.rule.startswith(RULE_PREFIX)


#: How precisely the moment of a band drop is looked for; a timer a minute late is of no consequence.
PRECISION = timedelta(minutes=1)


def band_drop_at(
    score_at: Callable[[datetime], int], floor: int, since: datetime, horizon: timedelta
) -> datetime | None:
    """The first moment after ``since`` at which ``score_at`` (a score that only falls as time passes,
    as a decayed one does) is below ``floor``; None when it stays at or above ``floor`` within
    ``horizon``. A bisection: the score is a sum of rounded exponentials, which has no closed inverse."""
    if score_at(since) < floor:
        return since
    low, high = since, since + horizon
    if score_at(high) >= floor:
        return None
    while high - low > PRECISION:
        middle = low + (high - low) / 2
        if score_at(middle) < floor:
            high = middle
        else:
            low = middle
    return high


def newest(signals: Iterable[Signal]) -> list[Signal]:
    """The signals a lead keeps: the most recent :data:`KEPT_SIGNALS`, oldest first."""
    return sorted(signals, key=lambda s: s.at)[-KEPT_SIGNALS:]


def knows(signals: Iterable[Signal], signal_id: str | None) -> bool:
    return signal_id is not None and any(s.signal_id == signal_id for s in signals)
