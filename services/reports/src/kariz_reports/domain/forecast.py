"""The forecast of a period from the daily figures: open deals by their expected close day and their
stage's forecast category (count, amount, probability-weighted amount), the deals won in it, and the
quota they are measured against.

The categories are each their own deals; the roll-ups are what a sales manager calls the commit
forecast (won + commit) and the best-case forecast (won + commit + best case).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kariz_reports.domain.facts import FORECAST_CATEGORIES, Metric
from kariz_reports.domain.figures import Tallies, rate
from kariz_reports.domain.plans import ForecastCall


def _money(amount: Decimal) -> float:
    return float(amount.quantize(Decimal("0.01")))


def figures(t: Tallies, value: str, quota: Decimal | None) -> dict[str, Any]:
    """The forecast of one dimension value (a rep, a team, or all) from the tallies of its period."""
    categories: dict[str, dict[str, Any]] = {}
    for category in FORECAST_CATEGORIES:
        counted = t.get(f"{Metric.FORECAST}{category}", {}).get(value)
        weighted = t.get(f"{Metric.FORECAST_WEIGHTED}{category}", {}).get(value)
        categories[category] = {
            "count": counted.count if counted else 0,
            "amount": _money(counted.amount) if counted else 0.0,
            "weighted_amount": _money(weighted.amount) if weighted else 0.0,
        }
    won = t.get(Metric.WON, {}).get(value)
    won_amount = won.amount if won else Decimal(0)
    categories["closed_won"] = {
        "count": won.count if won else 0,
        "amount": _money(won_amount),
        "weighted_amount": _money(won_amount),
    }
    commit = won_amount + Decimal(str(categories["commit"]["amount"]))
    best_case = commit + Decimal(str(categories["best_case"]["amount"]))
    open_amount = sum((Decimal(str(categories[c]["amount"])) for c in FORECAST_CATEGORIES), Decimal(0))
    weighted = sum((Decimal(str(categories[c]["weighted_amount"])) for c in FORECAST_CATEGORIES), Decimal(0))
    out: dict[str, Any] = {
        "categories": categories,
        "commit_forecast": _money(commit),
        "best_case_forecast": _money(best_case),
        "open_amount": _money(open_amount),
        "weighted_forecast": _money(won_amount + weighted),
        "quota": _money(quota) if quota is not None else None,
        "attainment": rate(float(won_amount), float(quota)) if quota else None,
        "gap": _money(quota - won_amount) if quota is not None else None,
        "commit_gap": _money(quota - commit) if quota is not None else None,
    }
    return out


def call_summary(call: ForecastCall | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {
        "commit": _money(call.commit),
        "best_case": _money(call.best_case),
        "note": call.note,
        "by": call.by,
        "at": call.at.isoformat(),
    }
