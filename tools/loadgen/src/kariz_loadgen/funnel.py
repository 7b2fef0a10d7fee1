"""The funnel report of a demo run: captured -> qualified -> deals -> won/lost, by source, per stage.

Pure functions of what was read from Kariz (``Observed``): no I/O here, so the figures can be checked
on a constructed data set. The driver's own ``Tally`` only cross-checks them (``cross_check``).
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from kariz_loadgen.journey import Tally

WON = "won"
LOST = "lost"


@dataclass(frozen=True)
class LeadSeen:
    """One lead as the leads service (source, captures) and the qualification service (verdict) hold it."""

    lead_id: str
    source: str
    #: The source of every capture of this contact, the first one included (the leads service's touches).
    capture_sources: tuple[str, ...]
    #: The qualification service's status: qualified, disqualified or nurture (undecided).
    verdict: str
    reason: str | None = None
    #: A qualification call's answers were recorded (the lead was nurtured after its first score).
    called: bool = False


@dataclass(frozen=True)
class DealSeen:
    """One deal as the deals service holds it: its stage history and the timestamps of opened/closed."""

    deal_id: str
    lead_id: str
    #: Every stage the deal entered, in order (the first is the pipeline's first stage).
    history: tuple[str, ...]
    opened_at: datetime
    closed_at: datetime | None = None
    amount: Decimal | None = None
    lost_reason: str | None = None

    @property
    def stage(self) -> str:
        return self.history[-1]


@dataclass(frozen=True)
class Observed:
    """What a run left in Kariz: the default pipeline's open stages (in order), the leads and deals."""

    open_stages: tuple[str, ...]
    leads: tuple[LeadSeen, ...]
    deals: tuple[DealSeen, ...]


@dataclass(frozen=True)
class SourceRow:
    source: str
    captured: int
    qualified: int
    deals: int
    won: int
    lost: int

    @property
    def qualification_rate(self) -> float | None:
        return _share(self.qualified, self.captured)

    @property
    def win_rate(self) -> float | None:
        return _share(self.won, self.won + self.lost)


@dataclass(frozen=True)
class StageRow:
    """Of the deals that reached ``stage`` (or went beyond it), how many reached ``next_stage``, how many
    were lost with this as their furthest stage, and how many were won in the end."""

    stage: str
    next_stage: str
    reached: int
    went_on: int
    lost_here: int
    won: int

    @property
    def conversion(self) -> float | None:
        return _share(self.went_on, self.reached)

    @property
    def win_share(self) -> float | None:
        return _share(self.won, self.reached)


@dataclass(frozen=True)
class Funnel:
    leads: int
    captures: int
    called: int
    qualified: int
    disqualified: int
    undecided: int
    deals: int
    won: int
    lost: int
    open: int
    went_back: int
    won_value: Decimal
    by_source: list[SourceRow]
    stages: list[StageRow]
    lost_reasons: Counter[str]
    disqualification_reasons: Counter[str]
    captures_by_source: Counter[str]
    stage_entries: Counter[str]  # moves into each stage (the opening one excluded), back moves included
    cycle_s: list[float] = field(default_factory=list)  # opened -> closed, per closed deal
    won_cycle_s: list[float] = field(default_factory=list)
    lost_cycle_s: list[float] = field(default_factory=list)

    @property
    def win_rate(self) -> float | None:
        return _share(self.won, self.won + self.lost)

    @property
    def qualification_rate(self) -> float | None:
        return _share(self.qualified, self.leads)

    @property
    def deal_rate(self) -> float | None:
        return _share(self.deals, self.qualified)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def furthest(deal: DealSeen, open_stages: tuple[str, ...]) -> int:
    """How far along the pipeline a deal got: the index of the furthest open stage it entered, or
    ``len(open_stages)`` if it was won. A rep may skip a stage; the deal has then gone past it."""
    if WON in deal.history:
        return len(open_stages)
    return max((open_stages.index(s) for s in deal.history if s in open_stages), default=-1)


def went_back(deal: DealSeen, open_stages: tuple[str, ...]) -> bool:
    order = [open_stages.index(s) for s in deal.history if s in open_stages]
    return any(b < a for a, b in itertools.pairwise(order))


def funnel_of(observed: Observed) -> Funnel:
    """Every figure of the report, from what Kariz holds."""
    stages = observed.open_stages
    leads = observed.leads
    deals = observed.deals
    source_of = {lead.lead_id: lead.source for lead in leads}
    closed = [d for d in deals if d.stage in (WON, LOST) and d.closed_at is not None]

    def cycle(of: list[DealSeen]) -> list[float]:
        return [(d.closed_at - d.opened_at).total_seconds() for d in of if d.closed_at is not None]

    sources = sorted({lead.source for lead in leads}, key=lambda s: (-sum(x.source == s for x in leads), s))
    by_source = []
    for source in sources:
        mine = [d for d in deals if source_of.get(d.lead_id) == source]
        by_source.append(
            SourceRow(
                source=source,
                captured=sum(lead.source == source for lead in leads),
                qualified=sum(lead.source == source and lead.verdict == "qualified" for lead in leads),
                deals=len(mine),
                won=sum(d.stage == WON for d in mine),
                lost=sum(d.stage == LOST for d in mine),
            )
        )

    reach = [furthest(d, stages) for d in deals]
    rows = []
    for i, stage in enumerate(stages):
        rows.append(
            StageRow(
                stage=stage,
                next_stage=stages[i + 1] if i + 1 < len(stages) else WON,
                reached=sum(r >= i for r in reach),
                went_on=sum(r > i for r in reach),
                lost_here=sum(r == i and d.stage == LOST for r, d in zip(reach, deals, strict=True)),
                won=sum(r >= i and d.stage == WON for r, d in zip(reach, deals, strict=True)),
            )
        )

    return Funnel(
        leads=len(leads),
        captures=sum(len(lead.capture_sources) for lead in leads),
        called=sum(lead.called for lead in leads),
        qualified=sum(lead.verdict == "qualified" for lead in leads),
        disqualified=sum(lead.verdict == "disqualified" for lead in leads),
        undecided=sum(lead.verdict not in ("qualified", "disqualified") for lead in leads),
        deals=len(deals),
        won=sum(d.stage == WON for d in deals),
        lost=sum(d.stage == LOST for d in deals),
        open=sum(d.stage not in (WON, LOST) for d in deals),
        went_back=sum(went_back(d, stages) for d in deals),
        won_value=sum((d.amount or Decimal(0) for d in deals if d.stage == WON), Decimal(0)),
        by_source=by_source,
        stages=rows,
        lost_reasons=Counter(d.lost_reason or "(none given)" for d in deals if d.stage == LOST),
        disqualification_reasons=Counter(
            lead.reason or "(none given)" for lead in leads if lead.verdict == "disqualified"
        ),
        captures_by_source=Counter(s for lead in leads for s in lead.capture_sources),
        stage_entries=Counter(s for d in deals for s in d.history[1:]),
        cycle_s=cycle(closed),
        won_cycle_s=cycle([d for d in closed if d.stage == WON]),
        lost_cycle_s=cycle([d for d in closed if d.stage == LOST]),
    )


def cross_check(funnel: Funnel, tally: Tally) -> list[str]:
    """Where Kariz and the driver's own count disagree (empty when they agree)."""
    pairs: list[tuple[str, object, object]] = [
        ("leads captured", funnel.leads, tally.captured),
        ("captures (touches included)", funnel.captures, tally.captured + tally.touches),
        # Each capture the driver sent is one touch in the leads service, under the source it was sent with.
        ("captures by source", dict(funnel.captures_by_source), dict(tally.by_source)),
        ("qualification calls", funnel.called, tally.nurtured),
        ("qualified", funnel.qualified, tally.qualified),
        ("disqualified", funnel.disqualified, tally.disqualified),
        ("deals", funnel.deals, tally.deals),
        ("won", funnel.won, tally.won),
        ("lost", funnel.lost, tally.lost),
        ("lost reasons", dict(funnel.lost_reasons), dict(tally.loss_reasons)),
        ("stage moves", dict(funnel.stage_entries), dict(tally.reached)),
        (
            "qualified by source",
            {r.source: r.qualified for r in funnel.by_source if r.qualified},
            dict(+tally.qualified_by_source),
        ),
        ("won by source", {r.source: r.won for r in funnel.by_source if r.won}, dict(+tally.won_by_source)),
    ]
    return [f"{name}: Kariz {kariz}, driver {driver}" for name, kariz, driver in pairs if kariz != driver]


# --- the text a person reads ----------------------------------------------------------------------


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def duration(seconds: float) -> str:
    """A cycle length as a manager reads it: 4.2 s, 3 min 20 s, 5.5 h, 12.3 days."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _cycle_line(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"  {label:<8} -"
    return (
        f"  {label:<8} average {duration(statistics.fmean(seconds))}, "
        f"median {duration(statistics.median(seconds))}, of {len(seconds)} closed"
    )


def render(funnel: Funnel, *, mismatches: list[str] | None = None) -> str:
    f = funnel
    out = [
        "Funnel (read from Kariz: leads, qualification and deals services)",
        f"  captured      {f.leads:>6} leads"
        f"   ({f.captures} captures, of which repeat touches of a known lead: {f.captures - f.leads})",
        f"  qualified     {f.qualified:>6} {percent(f.qualification_rate):>5} of captured"
        f"   (disqualified {f.disqualified}, undecided {f.undecided}; {f.called} needed a call)",
        f"  deals         {f.deals:>6} {percent(f.deal_rate):>5} of qualified",
        f"  won / lost    {f.won:>6} / {f.lost}   win rate {percent(f.win_rate)} (won / closed)"
        + (f", {f.open} still open" if f.open else ""),
        f"  won value     {f.won_value:>6,.0f}   (deals that went back a stage on the way: {f.went_back})",
        "",
        "By source",
        f"  {'source':<16}{'captured':>9}{'qualified':>10}{'qual %':>8}{'deals':>7}{'won':>6}{'lost':>6}"
        f"{'win rate':>10}",
    ]
    for r in f.by_source:
        out.append(
            f"  {r.source:<16}{r.captured:>9}{r.qualified:>10}{percent(r.qualification_rate):>8}{r.deals:>7}"
            f"{r.won:>6}{r.lost:>6}{percent(r.win_rate):>10}"
        )
    out += [
        "",
        "Conversion per stage (default pipeline; a deal that skipped a stage counts as past it)",
        f"  {'stage':<14}{'reached':>8}  {'on to':<13}{'conversion':>11}{'lost here':>10}"
        f"{'won from here':>15}",
    ]
    for s in f.stages:
        out.append(
            f"  {s.stage:<14}{s.reached:>8}  {s.next_stage:<13}{percent(s.conversion):>11}{s.lost_here:>10}"
            f"{percent(s.win_share):>15}"
        )
    out += ["", "Sales cycle (deal opened -> closed, Kariz's timestamps)"]
    out += [
        _cycle_line("all", f.cycle_s),
        _cycle_line("won", f.won_cycle_s),
        _cycle_line("lost", f.lost_cycle_s),
    ]
    out += ["", "Lost reasons"]
    out += [f"  {count:>5}  {reason}" for reason, count in f.lost_reasons.most_common()] or ["  -"]
    out += ["", "Disqualification reasons"]
    out += [f"  {count:>5}  {reason}" for reason, count in f.disqualification_reasons.most_common(5)] or [
        "  -"
    ]
    if mismatches is not None:
        out.append("")
        if mismatches:
            out.append("Cross-check with the driver's own count: DISAGREES")
            out += [f"  {m}" for m in mismatches]
        else:
            out.append("Cross-check with the driver's own count: agrees")
    return "\n".join(out)
