"""Nurture tracks: what happens to a lead that is not ready, while it is not ready.

A track is a named cadence of steps in the rule set: each a content piece (notifications sends the
content library's pieces with its tags) or a task (the leads service opens a follow-up for the owner),
due some days after the step before it. Which track a nurtured lead gets is its segment's
(``Segment.nurture_track``), else the rule set's ``nurture.default_track``; none: it is not nurtured.

A lead runs its track once per stay in nurture: from capture, and again after each re-opening (a
``NurtureRun`` each). One step is armed at a time, as a timer that fires ``NurtureStepDue``; when the
step comes back (qualification consumes its own event) the next is armed, until the track's end. The run
stops as soon as the lead leaves nurture (qualified, disqualified, merged away) or its contact
unsubscribes, and a step that arrives after that, or twice, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from kariz_shared.contracts.events import NurtureStepDue, NurtureStepKind, TaskKind

#: Track names go into step ids (``<lead>:<track>:<n>``) and metric labels: no ``:``, lower case.
TrackName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ContentTag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

#: Why a run stopped: the lead left nurture (``qualified``, ``disqualified``, ``merged``), its contact
#: unsubscribed, its last step fell due (``completed``), or the rule set no longer has its track
#: (``withdrawn``).
StopReason = Literal["qualified", "disqualified", "merged", "unsubscribed", "completed", "withdrawn"]


class NurtureStep(BaseModel):
    """One step of a track: a content piece or a task, ``after_days`` after the step before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: NurtureStepKind
    after_days: Annotated[StrictInt, Field(ge=1, le=365)] = Field(
        description="Days after the step before (the first step: after the lead entered nurture)"
    )
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="A task's title, or what the content is about"
    )
    task_kind: TaskKind | None = Field(default=None, description="A task step's kind (required for a task)")
    content_tags: list[ContentTag] = Field(
        default_factory=list,
        max_length=20,
        description="A content step: the content library's pieces with these tags (at least one)",
    )

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> NurtureStep:
        if self.kind is NurtureStepKind.TASK:
            if self.task_kind is None:
                raise ValueError("task_kind: a task step needs a task kind (call_back, email, ...)")
            if self.content_tags:
                raise ValueError("content_tags: a task step sends no content")
        else:
            if not self.content_tags:
                raise ValueError("content_tags: a content step needs at least one tag")
            if self.task_kind is not None:
                raise ValueError("task_kind: a content step opens no task")
        return self


class NurtureTrack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[NurtureStep] = Field(min_length=1, max_length=52, description="In order, the first first")


class NurtureRules(BaseModel):
    """The nurture tracks by name and the one a lead gets when its segment names none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracks: dict[TrackName, NurtureTrack] = Field(default_factory=dict)
    default_track: TrackName | None = Field(
        default=None,
        description="The track of a nurtured lead whose segment names none; none: that lead is not nurtured",
    )

    @model_validator(mode="after")
    def _default_track_exists(self) -> NurtureRules:
        if self.default_track is not None and self.default_track not in self.tracks:
            raise ValueError(
                f"nurture.default_track: {self.default_track!r} is not one of nurture.tracks "
                f"({', '.join(self.tracks) or 'none'})"
            )
        return self


@dataclass(frozen=True)
class NurtureRun:
    """One run of a track for one stay of the lead in nurture."""

    track: str
    #: Which stay in nurture: 0 from capture, n after the lead's n-th re-opening.
    stay: int
    started_at: datetime
    #: The step armed now (the next to fall due); after the run stopped, the one that was armed.
    step: int
    #: When the armed step falls due; None once the run stopped.
    next_due_at: datetime | None
    #: Steps that fell due and were taken.
    taken: int = 0
    stopped_at: datetime | None = None
    stop_reason: StopReason | None = None

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    def step_id(self, lead_id: str, step: int | None = None) -> str:
        """``<lead>:<track>:<n>``; a later stay's steps say which, so a re-run is not taken for a repeat
        by the leads service and notifications (both open or send once per step id)."""
        n = self.step if step is None else step
        base = f"{lead_id}:{self.track}:{n}"
        return base if self.stay == 0 else f"{base}:reopened-{self.stay}"

    def stopped(self, reason: StopReason, at: datetime) -> NurtureRun:
        return replace(self, next_due_at=None, stopped_at=at, stop_reason=reason)


@dataclass(frozen=True)
class NurtureMove:
    """What changed in a lead's nurture: a step to arm (replacing any armed), a step taken, a stop."""

    armed: NurtureStepDue | None = None
    taken: NurtureStepDue | None = None
    stopped: StopReason | None = None
    track: str | None = None


def step_due(
    run: NurtureRun, lead_id: str, owner: str, track: NurtureTrack, step: int, due_at: datetime
) -> NurtureStepDue:
    """The event of step ``step`` of ``track``, due at ``due_at``."""
    rule = track.steps[step]
    return NurtureStepDue(
        step_id=run.step_id(lead_id, step),
        lead_id=lead_id,
        owner=owner,
        track=run.track,
        step=step,
        kind=rule.kind,
        title=rule.title,
        task_kind=rule.task_kind,
        content_tags=list(rule.content_tags),
        due_at=due_at,
    )


def after(step: NurtureStep, since: datetime) -> datetime:
    return since + timedelta(days=step.after_days)
