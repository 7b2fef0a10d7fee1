"""The demo's report, as the reports service answers it: funnel, by source, stages, win rate, cycle,
losses of one run, and where it disagrees with the driver's own count.

A run's first captures carry a campaign of the run per source (``demo-<run>-<source>``,
:func:`kariz_loadgen.population.run_campaign`), so ``GET /reports/<report>?by=campaign`` answers for the
run alone among everything else the reports counted, and its items are the run's sources. Pure functions
of those answers (no I/O), so the figures can be checked on constructed answers; the reading is
:mod:`kariz_loadgen.observe`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kariz_loadgen.journey import Tally
from kariz_loadgen.population import FORWARD, source_of_run_campaign

#: The reports read, each ``?by=campaign`` over the run's days.
REPORTS = ("funnel", "win-rate", "cycle", "outcomes", "stages")
CLOSED_STAGES = ("won", "lost")


@dataclass(frozen=True)
class SourceRow:
    source: str
    captured: int = 0
    contacted: int = 0
    qualified: int = 0
    deals: int = 0
    won: int = 0
    lost: int = 0
    won_amount: Decimal = Decimal(0)

    @property
    def qualification_rate(self) -> float | None:
        return _share(self.qualified, self.captured)

    @property
    def win_rate(self) -> float | None:
        return _share(self.won, self.won + self.lost)


@dataclass(frozen=True)
class StageRow:
    """Of the run's deals, how many reached an open ``stage``, left it forward (a loss is no going on,
    though deals moves a lost deal forward to ``lost``), and were lost in it."""

    stage: str
    reached: int
    went_on: int
    lost_here: int

    @property
    def conversion(self) -> float | None:
        return _share(self.went_on, self.reached)


@dataclass(frozen=True)
class Cycle:
    """Deals closed and their average cycle (opened -> closed), the reports' ``average_days``."""

    closed: int = 0
    average_days: float | None = None


@dataclass(frozen=True)
class RunReport:
    by_source: list[SourceRow]
    stages: list[StageRow]
    loss_reasons: Counter[str] = field(default_factory=Counter)
    disqualification_reasons: Counter[str] = field(default_factory=Counter)
    #: ``all``, ``won`` and ``lost``.
    cycle: dict[str, Cycle] = field(default_factory=dict)

    def _sum(self, figure: str) -> int:
        return sum(int(getattr(r, figure)) for r in self.by_source)

    @property
    def captured(self) -> int:
        return self._sum("captured")

    @property
    def contacted(self) -> int:
        return self._sum("contacted")

    @property
    def qualified(self) -> int:
        return self._sum("qualified")

    @property
    def disqualified(self) -> int:
        return sum(self.disqualification_reasons.values())

    @property
    def deals(self) -> int:
        return self._sum("deals")

    @property
    def won(self) -> int:
        return self._sum("won")

    @property
    def lost(self) -> int:
        return self._sum("lost")

    @property
    def won_amount(self) -> Decimal:
        return sum((r.won_amount for r in self.by_source), Decimal(0))

    @property
    def win_rate(self) -> float | None:
        return _share(self.won, self.won + self.lost)

    @property
    def qualification_rate(self) -> float | None:
        return _share(self.qualified, self.captured)

    @property
    def deal_rate(self) -> float | None:
        return _share(self.deals, self.qualified)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _of_run(answer: Mapping[str, Any], run_tag: str) -> dict[str, dict[str, Any]]:
    """The answer's items of the run's campaigns, by the source each stands for."""
    out: dict[str, dict[str, Any]] = {}
    for item in answer.get("items", []):
        source = source_of_run_campaign(str(item.get("campaign", "")), run_tag)
        if source is not None:
            out[source] = item
    return out


def _ranked(items: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter({str(i["name"]): int(i["count"]) for i in items})


def _cycle(parts: list[Mapping[str, Any]]) -> Cycle:
    """One cycle of several sources' (each ``closed`` and ``average_days``): weighted by deals closed."""
    closed = sum(int(p["closed"]) for p in parts)
    total = sum(float(p["average_days"]) * int(p["closed"]) for p in parts if p["average_days"] is not None)
    return Cycle(closed, total / closed if closed else None)


def _pipeline_order(stage: str) -> tuple[int, str]:
    """The stage a deal opened in (none the driver moves to) first, then the driver's walk in order."""
    return (FORWARD.index(stage) + 1 if stage in FORWARD else 0, stage)


def run_report(answers: Mapping[str, Mapping[str, Any]], run_tag: str) -> RunReport:
    """The run's figures from the reports' answers (``REPORTS``, by campaign)."""
    funnel = _of_run(answers["funnel"], run_tag)
    win = _of_run(answers["win-rate"], run_tag)
    cycle = _of_run(answers["cycle"], run_tag)
    outcomes = _of_run(answers["outcomes"], run_tag)
    stages = _of_run(answers["stages"], run_tag)
    sources = set(funnel) | set(win) | set(outcomes)
    rows = [
        SourceRow(
            source=source,
            captured=int(funnel.get(source, {}).get("captured", 0)),
            contacted=int(funnel.get(source, {}).get("contacted", 0)),
            qualified=int(funnel.get(source, {}).get("qualified", 0)),
            deals=int(funnel.get(source, {}).get("deal_opened", 0)),
            won=int(win.get(source, {}).get("won", 0)),
            lost=int(win.get(source, {}).get("lost", 0)),
            won_amount=Decimal(str(win.get(source, {}).get("won_amount", "0"))),
        )
        for source in sources
    ]
    rows.sort(key=lambda r: (-r.captured, r.source))
    reached: Counter[str] = Counter()
    went_on: Counter[str] = Counter()
    lost_here: Counter[str] = Counter()
    for item in stages.values():
        for s in item.get("stages", []):
            reached[s["stage"]] += int(s["reached"])
            went_on[s["stage"]] += int(s["went_on"])
            lost_here[s["stage"]] += int(s["lost_here"])
    loss_reasons: Counter[str] = Counter()
    disqualification_reasons: Counter[str] = Counter()
    for item in outcomes.values():
        loss_reasons += _ranked(item.get("loss_reasons", []))
        disqualification_reasons += _ranked(item.get("disqualification_reasons", []))
    return RunReport(
        by_source=rows,
        stages=[
            StageRow(stage, reached[stage], went_on[stage], lost_here[stage])
            for stage in sorted(set(reached | went_on | lost_here) - set(CLOSED_STAGES), key=_pipeline_order)
        ],
        loss_reasons=loss_reasons,
        disqualification_reasons=disqualification_reasons,
        cycle={
            kind: _cycle([c[kind] for c in cycle.values() if kind in c]) for kind in ("all", "won", "lost")
        },
    )


def stages_driven(tally: Tally) -> Counter[str]:
    """Of the deals the driver moved, how many it moved into each open stage at least once."""
    return Counter(
        stage for stages in tally.journeys.values() for stage in set(stages) if stage not in CLOSED_STAGES
    )


def cross_check(report: RunReport, tally: Tally) -> list[str]:
    """Where the reports and the driver's own count disagree (empty when they agree)."""
    driven = stages_driven(tally)
    reached = {s.stage: s.reached for s in report.stages if s.stage in driven}
    pairs: list[tuple[str, object, object]] = [
        ("leads captured", report.captured, tally.captured),
        (
            "captured by source",
            {r.source: r.captured for r in report.by_source if r.captured},
            dict(+tally.captured_by_source),
        ),
        ("qualified", report.qualified, tally.qualified),
        ("disqualified", report.disqualified, tally.disqualified),
        ("deals", report.deals, tally.deals),
        ("won", report.won, tally.won),
        ("lost", report.lost, tally.lost),
        ("closed deals with a cycle", report.cycle.get("all", Cycle()).closed, tally.won + tally.lost),
        ("lost reasons", dict(report.loss_reasons), dict(tally.loss_reasons)),
        ("deals that reached each stage", reached, dict(driven)),
        (
            "qualified by source",
            {r.source: r.qualified for r in report.by_source if r.qualified},
            dict(+tally.qualified_by_source),
        ),
        ("won by source", {r.source: r.won for r in report.by_source if r.won}, dict(+tally.won_by_source)),
    ]
    return [
        f"{name}: reports {_sorted(kariz)}, driver {_sorted(driver)}"
        for name, kariz, driver in pairs
        if kariz != driver
    ]


def _sorted(value: object) -> object:
    """A dict in key order, so a disagreement reads the same every time."""
    return dict(sorted(value.items())) if isinstance(value, dict) else value


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


def _cycle_line(label: str, cycle: Cycle | None) -> str:
    if cycle is None or not cycle.closed or cycle.average_days is None:
        return f"  {label:<8} -"
    return f"  {label:<8} average {duration(cycle.average_days * 86400)}, of {cycle.closed} closed"


def render(report: RunReport, *, mismatches: list[str] | None = None) -> str:
    f = report
    out = [
        "Funnel (read from the reports service, the run's campaigns)",
        f"  captured      {f.captured:>6} leads",
        f"  contacted     {f.contacted:>6} {percent(_share(f.contacted, f.captured)):>5} of captured",
        f"  qualified     {f.qualified:>6} {percent(f.qualification_rate):>5} of captured"
        f"   (disqualified {f.disqualified})",
        f"  deals         {f.deals:>6} {percent(f.deal_rate):>5} of qualified",
        f"  won / lost    {f.won:>6} / {f.lost}   win rate {percent(f.win_rate)} (won / closed)",
        f"  won value     {f.won_amount:>6,.0f}",
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
        "Stages (deals that reached each, left it forward, were lost in it)",
        f"  {'stage':<14}{'reached':>8}{'went on':>9}{'conversion':>11}{'lost here':>10}",
    ]
    for s in f.stages:
        out.append(f"  {s.stage:<14}{s.reached:>8}{s.went_on:>9}{percent(s.conversion):>11}{s.lost_here:>10}")
    out += ["", "Sales cycle (deal opened -> closed)"]
    out += [_cycle_line(kind, f.cycle.get(kind)) for kind in ("all", "won", "lost")]
    out += ["", "Lost reasons"]
    out += [f"  {count:>5}  {reason}" for reason, count in f.loss_reasons.most_common()] or ["  -"]
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
