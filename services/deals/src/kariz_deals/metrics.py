"""Business metrics of the deals service. Labels are stage names only (bounded), never ids."""

from __future__ import annotations

from prometheus_client import Counter

from kariz_deals.domain import StageMove

deals_opened = Counter("kariz_deals_opened_total", "Deals opened from qualified leads")
stage_transitions = Counter(
    "kariz_deals_stage_transitions_total", "Deals moved from one stage to another", ["from_stage", "to_stage"]
)
deals_won = Counter("kariz_deals_won_total", "Deals closed won")
won_amount = Counter("kariz_deals_won_amount_total", "Sum of the amounts of deals closed won")
deals_lost = Counter(
    "kariz_deals_lost_total", "Deals closed lost, by the stage they were lost at", ["lost_at_stage"]
)


def record_move(move: StageMove) -> None:
    """Count a move; registered with ``tx.after_commit`` so only a committed move counts."""
    stage_transitions.labels(move.from_stage, move.to_stage).inc()
    if move.won:
        deals_won.inc()
        won_amount.inc(float(move.amount or 0))
    elif move.lost:
        deals_lost.labels(move.from_stage).inc()
