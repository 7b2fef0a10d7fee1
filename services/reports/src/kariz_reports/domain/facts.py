"""What the reports remember of each lead and deal, and what each contributes to the daily figures.

The figures are sums per day and dimension (:mod:`kariz_reports.domain.figures`), but an event seldom
carries every dimension: ``DealWon`` names no source, a ``StageChanged`` may come before its
``DealOpened`` (another topic), a ``LeadCaptured`` after the lead's qualification. So every event is
first folded into a small per-lead or per-deal record of *facts*, and that record's *contributions*
(the figures it adds to, with the dimensions known now) are a pure function of the facts.

Applying an event is then: contributions before, fold, contributions after, and the difference goes to
the daily figures (retract what changed, add what is new). Folding is idempotent and order-free (a
field is set from the event that carries it, a set keyed by the thing's own id), so a duplicate
changes no fact and no figure, and events in any order end in the same facts and so the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from kariz_shared.contracts.events import (
    ActivityLogged,
    DealLost,
    DealOpened,
    DealUpdated,
    DealWon,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadResponseOverdue,
    LeadsMerged,
    StageChanged,
)

CENT = Decimal("0.01")

#: The dimensions a report may be broken down by (``?by=``); ``all`` is the whole.
DIMENSIONS = ("source", "campaign", "rep", "team", "industry", "country", "company_size", "pipeline")
WHOLE = "all"

#: Company size bands (employees), as sales teams segment accounts.
SIZE_BANDS = ((1, 10, "1-10"), (11, 50, "11-50"), (51, 200, "51-200"), (201, 1000, "201-1000"))
LARGEST_BAND = "1001+"


def size_band(employees: int | None) -> str | None:
    if employees is None:
        return None
    for low, high, band in SIZE_BANDS:
        if low <= employees <= high:
            return band
    return LARGEST_BAND if employees > 1000 else None


#: The terminal stage every pipeline of deals ends a lost deal in (``StageChanged.to_stage``).
LOST_STAGE = "lost"


class Metric:
    """What a contribution counts. Names are stored: change one and the stored figures lose it."""

    CAPTURED = "captured"
    CONTACTED = "contacted"  # the lead's first reaching activity; its sample: seconds since capture
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"  # facet: the reason
    DEAL_OPENED = "deal_opened"
    WON = "won"  # amount; sample: the cycle in seconds
    LOST = "lost"  # amount; facet: the reason; sample: the cycle
    LOST_AT_STAGE = "lost_at_stage"  # facet: the stage
    STAGE_REACHED = "stage_reached"  # facet: the stage; once per deal and stage
    STAGE_WENT_ON = "stage_went_on"  # facet: the stage left forward; once per deal and stage
    STAGE_TIME = "stage_time"  # facet: the stage left; sample: seconds spent in it (each visit)
    ACTIVITY = "activity"  # facet: channel/outcome
    SLA_BREACH = "sla_breach"  # a response overdue
    # The forecast (issue F): an open deal on its expected close day, under its stage's category.
    FORECAST = "forecast:"  # + category; amount
    FORECAST_WEIGHTED = "forecast_weighted:"  # + category; amount x the stage's probability


#: The forecast categories of an open deal that count in a forecast (``closed`` is the won figures,
#: ``omitted`` counts nowhere).
FORECAST_CATEGORIES = ("pipeline", "best_case", "commit")


def forecast_metrics() -> tuple[str, ...]:
    return tuple(f"{m}{c}" for c in FORECAST_CATEGORIES for m in (Metric.FORECAST, Metric.FORECAST_WEIGHTED))


@dataclass(frozen=True)
class Contribution:
    """One thing a lead or deal (``key``, unique) adds to the figures of ``day``: 1 to ``metric`` (and
    ``amount``, a ``facet`` such as the loss reason, a ``sample`` for medians), for each of ``dims``."""

    key: str
    metric: str
    day: date
    rep: str | None
    team: str | None
    dims: tuple[tuple[str, str], ...] = ()
    facet: str | None = None
    amount: Decimal | None = None
    sample: float | None = None

    def scopes(self) -> list[str]:
        """Whose figures it counts in: everyone's (admins), the rep's own and their team's (managers)."""
        scopes = ["*"]
        if self.rep:
            scopes.append(f"rep:{self.rep}")
        if self.team:
            scopes.append(f"team:{self.team}")
        return scopes

    def dimension_values(self) -> list[tuple[str, str]]:
        """Each (dimension, value) it counts under, the whole included."""
        return [(WHOLE, WHOLE), *self.dims]

    def to_document(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "metric": self.metric,
            "day": self.day.isoformat(),
            "rep": self.rep,
            "team": self.team,
            "dims": [list(d) for d in self.dims],
            "facet": self.facet,
            "amount": str(self.amount) if self.amount is not None else None,
            "sample": self.sample,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Contribution:
        return cls(
            key=doc["key"],
            metric=doc["metric"],
            day=date.fromisoformat(doc["day"]),
            rep=doc["rep"],
            team=doc["team"],
            dims=tuple((d[0], d[1]) for d in doc["dims"]),
            facet=doc["facet"],
            amount=Decimal(doc["amount"]) if doc["amount"] is not None else None,
            sample=doc["sample"],
        )


@dataclass(frozen=True)
class Change:
    """What the figures must retract and add after a fold."""

    retract: list[Contribution]
    add: list[Contribution]

    @property
    def empty(self) -> bool:
        return not self.retract and not self.add


def difference(before: Iterable[Contribution], after: Iterable[Contribution]) -> Change:
    old = {c.key: c for c in before}
    new = {c.key: c for c in after}
    return Change(
        retract=[c for k, c in old.items() if new.get(k) != c],
        add=[c for k, c in new.items() if old.get(k) != c],
    )


def local_day(at: datetime, zone: tzinfo) -> date:
    """The organisation's calendar day of an instant (figures are kept per local day)."""
    return at.astimezone(zone).date()


@dataclass(frozen=True)
class Attribution:
    """Whose figure a fact is: the rep responsible at the time and their team then."""

    rep: str | None
    team: str | None


@dataclass
class LeadFacts:
    """What the events said about one lead."""

    lead_id: str
    source: str | None = None
    campaign: str | None = None
    industry: str | None = None
    country: str | None = None
    company_size: str | None = None
    captured: tuple[datetime, Attribution] | None = None
    qualified: tuple[datetime, Attribution] | None = None
    disqualified: tuple[datetime, Attribution, str] | None = None
    #: Activities by id: (occurred_at, channel, outcome, reaching, attribution).
    activities: dict[str, tuple[datetime, str, str, bool, Attribution]] = field(default_factory=dict)
    #: Response SLA breaches by their due time (ISO): (due_at, attribution).
    breaches: dict[str, tuple[datetime, Attribution]] = field(default_factory=dict)
    #: Set when the lead was merged into another: a duplicate is no lead of its own in the funnel.
    merged_into: str | None = None
    #: The contributions applied to the figures, as they were applied.
    applied: list[Contribution] = field(default_factory=list)

    def dims(self) -> tuple[tuple[str, str], ...]:
        """The lead's own dimensions (a deal of the lead counts under them too)."""
        values = (
            ("source", self.source),
            ("campaign", self.campaign),
            ("industry", self.industry),
            ("country", self.country),
            ("company_size", self.company_size),
        )
        return tuple((k, v) for k, v in values if v)

    def _company(self, source: str, industry: str | None, country: str | None, size: int | None) -> None:
        # Set once by whichever event comes first: both carry the values the lead was captured with.
        self.source = self.source or source
        self.industry = self.industry or industry
        self.country = self.country or country
        self.company_size = self.company_size or size_band(size)

    def fold_captured(self, event: LeadCaptured, who: Attribution) -> None:
        self._company(event.source.value, event.company.industry, event.company.country, event.company.size)
        # Told again (a redelivery, a replay after a roster change), the first telling stands.
        if self.captured is None:
            self.campaign = event.campaign
            self.captured = (event.captured_at, who)

    def fold_qualified(self, event: LeadQualified, who: Attribution) -> None:
        self._company(event.source.value, event.company.industry, event.company.country, event.company.size)
        # The first verdict that qualified the lead: a lead counts once in the funnel.
        if self.qualified is None or event.qualified_at < self.qualified[0]:
            self.qualified = (event.qualified_at, who)

    def fold_disqualified(self, event: LeadDisqualified, who: Attribution) -> None:
        if self.disqualified is None or event.disqualified_at < self.disqualified[0]:
            self.disqualified = (event.disqualified_at, who, event.reason)

    def fold_activity(self, event: ActivityLogged, who: Attribution) -> None:
        self.activities.setdefault(
            event.activity_id,
            (event.occurred_at, event.channel.value, event.outcome.value, event.reaching, who),
        )

    def fold_overdue(self, event: LeadResponseOverdue, who: Attribution) -> None:
        self.breaches.setdefault(event.due_at.isoformat(), (event.due_at, who))

    def fold_merged_away(self, event: LeadsMerged) -> None:
        self.merged_into = event.lead_id

    def first_contact(self) -> tuple[datetime, Attribution] | None:
        reached = [(at, who) for at, _, _, reaching, who in self.activities.values() if reaching]
        return min(reached, key=lambda r: r[0]) if reached else None

    def contributions(self, zone: tzinfo) -> list[Contribution]:
        dims = self.dims()
        out: list[Contribution] = []

        def add(key: str, metric: str, at: datetime, who: Attribution, **more: Any) -> None:
            with_rep = (*dims, *_people(who))
            out.append(
                Contribution(
                    f"lead:{self.lead_id}:{key}",
                    metric,
                    local_day(at, zone),
                    who.rep,
                    who.team,
                    with_rep,
                    **more,
                )
            )

        if self.merged_into is None:
            if self.captured:
                add("captured", Metric.CAPTURED, *self.captured)
            contact = self.first_contact()
            if contact:
                since = (contact[0] - self.captured[0]).total_seconds() if self.captured else None
                add("contacted", Metric.CONTACTED, *contact, sample=since)
            if self.qualified:
                add("qualified", Metric.QUALIFIED, *self.qualified)
            if self.disqualified:
                at, who, reason = self.disqualified
                add("disqualified", Metric.DISQUALIFIED, at, who, facet=reason)
        # Activities and breaches happened whatever became of the lead.
        for activity_id, (at, channel, outcome, _, who) in self.activities.items():
            add(f"activity:{activity_id}", Metric.ACTIVITY, at, who, facet=f"{channel}/{outcome}")
        for due, (at, who) in self.breaches.items():
            add(f"breach:{due}", Metric.SLA_BREACH, at, who)
        return out


@dataclass(frozen=True)
class Move:
    from_stage: str
    to_stage: str
    forward: bool
    seconds_in_from: float
    at: datetime
    who: Attribution


@dataclass(frozen=True)
class Standing:
    """Where an open deal stands for the forecast, as its newest deal event (by its time) told."""

    as_of: datetime
    who: Attribution
    amount: Decimal | None
    probability: Decimal | None
    category: str | None
    expected_close: date | None


@dataclass
class DealFacts:
    """What the events said about one deal."""

    deal_id: str
    lead_id: str
    pipeline: str | None = None
    opened: tuple[datetime, str, Decimal | None, Attribution] | None = None
    #: Stage moves by (changed_at, from, to): the same move told twice is one.
    moves: dict[str, Move] = field(default_factory=dict)
    won: tuple[datetime, Decimal, float, Attribution] | None = None
    lost: tuple[datetime, str, str, Decimal | None, float, Attribution] | None = None
    #: The forecast's view of it (absent in facts kept before the forecast).
    standing: Standing | None = None
    applied: list[Contribution] = field(default_factory=list)

    def _stand(
        self,
        at: datetime,
        who: Attribution,
        amount: Decimal | None,
        probability: Decimal | None,
        category: str | None,
        close: date | None,
        *,
        close_told: bool,
    ) -> None:
        """Take the deal's standing from an event newer than the one it has (so a duplicate or an older
        event told late changes nothing). An event published before the forecast read deals carries
        no probability: its stage's probability, category and close date stay as they were known."""
        before = self.standing
        if before is not None and at <= before.as_of:
            return
        aware = probability is not None
        self.standing = Standing(
            as_of=at,
            who=who,
            amount=amount,
            probability=probability if aware or before is None else before.probability,
            category=category if aware or before is None else before.category,
            expected_close=close if aware or close_told or before is None else before.expected_close,
        )

    def fold_updated(self, event: DealUpdated, who: Attribution) -> None:
        self.pipeline = self.pipeline or event.pipeline
        # The change list names a close date set or cleared, in every version of the event.
        told = [c for c in event.changes if c.field == "expected_close_date"]
        close = event.expected_close_date
        if told:
            close = date.fromisoformat(told[-1].new) if told[-1].new else None
        self._stand(
            event.updated_at,
            who,
            event.amount,
            event.probability,
            event.forecast_category,
            close,
            close_told=bool(told),
        )

    def fold_opened(self, event: DealOpened, who: Attribution) -> None:
        self.pipeline = event.pipeline
        if self.opened is None:
            self.opened = (event.opened_at, event.stage, event.amount, who)
        self._stand(
            event.opened_at,
            who,
            event.amount,
            event.probability,
            event.forecast_category,
            event.expected_close_date,
            close_told=False,
        )

    def fold_stage_changed(self, event: StageChanged, who: Attribution) -> None:
        self.pipeline = self.pipeline or event.pipeline
        key = f"{event.changed_at.isoformat()}|{event.from_stage}|{event.to_stage}"
        self.moves.setdefault(
            key,
            Move(
                event.from_stage,
                event.to_stage,
                event.direction == "forward",
                event.seconds_in_from_stage,
                event.changed_at,
                who,
            ),
        )
        self._stand(
            event.changed_at,
            who,
            event.amount,
            event.probability,
            event.forecast_category,
            event.expected_close_date,
            close_told=False,
        )

    def fold_won(self, event: DealWon, who: Attribution) -> None:
        if self.won is None:
            self.won = (event.won_at, event.amount, event.cycle_seconds, who)

    def fold_lost(self, event: DealLost, who: Attribution) -> None:
        if self.lost is None:
            self.lost = (
                event.lost_at,
                event.reason,
                event.lost_at_stage,
                event.amount,
                event.cycle_seconds,
                who,
            )

    def contributions(self, zone: tzinfo, lead_dims: tuple[tuple[str, str], ...]) -> list[Contribution]:
        dims = (*lead_dims, *((("pipeline", self.pipeline),) if self.pipeline else ()))
        out: list[Contribution] = []

        def add(key: str, metric: str, at: datetime, who: Attribution, **more: Any) -> None:
            with_rep = (*dims, *_people(who))
            out.append(
                Contribution(
                    f"deal:{self.deal_id}:{key}",
                    metric,
                    local_day(at, zone),
                    who.rep,
                    who.team,
                    with_rep,
                    **more,
                )
            )

        if self.opened:
            at, stage, amount, who = self.opened
            add("opened", Metric.DEAL_OPENED, at, who, amount=amount)
        # A stage is reached when the deal opened in it or moved into it; counted once, on the first day.
        reached: dict[str, tuple[datetime, Attribution]] = {}
        went_on: dict[str, tuple[datetime, Attribution]] = {}
        if self.opened:
            reached[self.opened[1]] = (self.opened[0], self.opened[3])
        for key, move in sorted(self.moves.items(), key=lambda kv: kv[1].at):
            if move.to_stage not in reached:
                reached[move.to_stage] = (move.at, move.who)
            # A loss is a move "forward" to the lost stage in deals' pipelines, but it is no going on.
            if move.forward and move.to_stage != LOST_STAGE and move.from_stage not in went_on:
                went_on[move.from_stage] = (move.at, move.who)
            add(
                f"time:{key}",
                Metric.STAGE_TIME,
                move.at,
                move.who,
                facet=move.from_stage,
                sample=move.seconds_in_from,
            )
        for stage, (at, who) in reached.items():
            add(f"reached:{stage}", Metric.STAGE_REACHED, at, who, facet=stage)
        for stage, (at, who) in went_on.items():
            add(f"went_on:{stage}", Metric.STAGE_WENT_ON, at, who, facet=stage)
        if self.won:
            at, amount, cycle, who = self.won
            add("won", Metric.WON, at, who, amount=amount, sample=cycle)
        if self.lost:
            at, reason, stage, lost_amount, cycle, who = self.lost
            add("lost", Metric.LOST, at, who, amount=lost_amount, facet=reason, sample=cycle)
            add("lost_at_stage", Metric.LOST_AT_STAGE, at, who, facet=stage)
        out.extend(self._forecast(dims))
        return out

    def _forecast(self, dims: tuple[tuple[str, str], ...]) -> list[Contribution]:
        """An open deal with a close date counts in the forecast of that day, under its category; a
        closed one counts in the won figures (or nowhere) instead."""
        s = self.standing
        closed = self.won is not None or self.lost is not None
        if s is None or closed or s.expected_close is None or s.category not in FORECAST_CATEGORIES:
            return []
        with_people = (*dims, *_people(s.who))
        counted = [
            Contribution(
                f"deal:{self.deal_id}:forecast",
                f"{Metric.FORECAST}{s.category}",
                s.expected_close,
                s.who.rep,
                s.who.team,
                with_people,
                amount=s.amount,
            )
        ]
        if s.amount is not None and s.probability is not None:
            weighted = (s.amount * s.probability).quantize(CENT)
            counted.append(
                Contribution(
                    f"deal:{self.deal_id}:forecast_weighted",
                    f"{Metric.FORECAST_WEIGHTED}{s.category}",
                    s.expected_close,
                    s.who.rep,
                    s.who.team,
                    with_people,
                    amount=weighted,
                )
            )
        return counted


def _people(who: Attribution) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in (("rep", who.rep), ("team", who.team)) if v)
