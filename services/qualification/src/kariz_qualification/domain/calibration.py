"""The calibrated probability of winning: a logistic regression of the closed outcomes of qualified
leads on the rules that gave them points, trained here on qualification's own data and kept as numbered
versions, and the points it suggests for the rule set.

The model is scikit-learn's ``LogisticRegression`` (L2-regularised, so a rule few leads matched moves
little) on one 0/1 column per ``rule=matched``. Its quality is measured out of sample: AUC and Brier
score of stratified k-fold predictions, so a model that only learned its training rows shows it. The
kept model is its intercept and one weight per feature, so a probability is computed without
scikit-learn: ``1 / (1 + exp(-(intercept + sum of the lead's weights)))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kariz_qualification.domain.outcomes import CalibrationRules, QualifiedLead
from kariz_qualification.domain.rules import RuleSet


class NotEnoughOutcomes(Exception):
    """Too few closed outcomes (or of one kind) to train on: the rule score alone stands."""

    def __init__(self, won: int, lost: int, rules: CalibrationRules) -> None:
        self.won, self.lost, self.rules = won, lost, rules
        super().__init__(
            f"not enough outcomes to calibrate: {won + lost} closed ({won} won, {lost} lost); "
            f"at least {rules.min_outcomes} are needed, {rules.min_each} of them won and "
            f"{rules.min_each} lost"
        )


@dataclass(frozen=True)
class WinModel:
    """One version of the calibration."""

    number: int
    trained_at: datetime
    #: The rule-set version in force when it was trained.
    rules_version: int
    intercept: float
    weights: Mapping[str, float]
    won: int
    lost: int
    #: Out-of-sample (k-fold) area under the ROC curve: 0.5 is a coin, 1.0 perfect.
    auc: float
    #: Out-of-sample Brier score: the mean squared error of the probabilities (lower is better).
    brier: float
    folds: int
    #: How many outcomes had closed when it was trained (it learned from the newest ``outcomes`` of them):
    #: the next calibration is due ``retrain_every`` after this.
    closed: int

    @property
    def outcomes(self) -> int:
        return self.won + self.lost

    def probability(self, features: Iterable[str]) -> float:
        """How likely a lead with these features is to be won. A feature the model never saw adds
        nothing: its column was 0 in every training row."""
        z = self.intercept + sum(self.weights.get(feature, 0.0) for feature in set(features))
        return 1.0 / (1.0 + math.exp(-z))


def enough(won: int, lost: int, rules: CalibrationRules) -> bool:
    return won + lost >= rules.min_outcomes and min(won, lost) >= rules.min_each


def train(
    leads: Sequence[QualifiedLead],
    rules: CalibrationRules,
    *,
    number: int,
    at: datetime,
    rules_version: int,
    closed_in_all: int | None = None,
) -> WinModel:
    """Fit the model on the closed outcomes among ``leads``; raises :class:`NotEnoughOutcomes`.
    ``closed_in_all``: how many outcomes are closed in all, when ``leads`` are the newest of them."""
    closed = [lead for lead in leads if lead.is_closed]
    won = sum(1 for lead in closed if lead.result == "won")
    lost = len(closed) - won
    if not enough(won, lost, rules):
        raise NotEnoughOutcomes(won, lost, rules)
    # Imported here: scikit-learn takes a second to import, and only training needs it.
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer()
    x = binarizer.fit_transform([lead.features for lead in closed]).astype(float)
    y = np.array([1 if lead.result == "won" else 0 for lead in closed])
    folds = min(5, won, lost)
    held_out = cross_val_predict(
        LogisticRegression(max_iter=1000),
        x,
        y,
        # Shuffled (with a fixed seed, so a calibration can be repeated): the rows come in the order
        # they closed, and unshuffled folds would each see another mix of them.
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=0),
        method="predict_proba",
    )[:, 1]
    model = LogisticRegression(max_iter=1000).fit(x, y)
    return WinModel(
        number=number,
        trained_at=at,
        rules_version=rules_version,
        intercept=float(model.intercept_[0]),
        weights={
            str(feature): float(weight)
            for feature, weight in zip(binarizer.classes_, model.coef_[0], strict=True)
        },
        won=won,
        lost=lost,
        auc=float(roc_auc_score(y, held_out)),
        brier=float(brier_score_loss(y, held_out)),
        folds=folds,
        closed=len(closed) if closed_in_all is None else closed_in_all,
    )


# --- suggested points -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PointSuggestion:
    """What a rule earns now and what the outcomes suggest it should."""

    feature: str
    rule: str
    matched: str
    current: int
    suggested: int
    weight: float
    #: Closed outcomes of leads it gave points to.
    outcomes: int


def suggest(
    model: WinModel, rules: RuleSet, support: Mapping[str, int], calibration: CalibrationRules
) -> list[PointSuggestion]:
    """Points for the rules the model weighed, on the rule set's own scale: the weights (log-odds) are
    scaled so their mean size matches the mean size of the points those rules earn now, so the
    thresholds keep their meaning. Only rules of the rule set (a feature it no longer has is left out)
    with at least ``min_support`` closed outcomes."""
    document = rules.model_dump(mode="json")
    found: list[tuple[str, int, float, int]] = []
    for feature, weight in sorted(model.weights.items()):
        if support.get(feature, 0) < calibration.min_support:
            continue
        holder = _points_holder(document, feature)
        if holder is not None:
            table, key = holder
            found.append((feature, int(table[key]), weight, support[feature]))
    if not found:
        return []
    current_size = sum(abs(points) for _, points, _, _ in found) / len(found)
    weight_size = sum(abs(weight) for _, _, weight, _ in found) / len(found)
    scale = current_size / weight_size if weight_size else 0.0
    suggestions = []
    for feature, points, weight, outcomes in found:
        rule, matched = feature.split("=", 1)
        suggested = max(-100, min(100, round(weight * scale)))
        suggestions.append(PointSuggestion(feature, rule, matched, points, suggested, weight, outcomes))
    return suggestions


def with_suggested_points(rules: RuleSet, suggestions: Iterable[PointSuggestion]) -> RuleSet:
    """The rule set with the suggested points in place of the current ones, everything else as it is;
    validated whole (raises pydantic's ``ValidationError`` if, say, the qualify threshold is no longer
    reachable)."""
    document = rules.model_dump(mode="json")
    for suggestion in suggestions:
        holder = _points_holder(document, suggestion.feature)
        if holder is not None:
            table, key = holder
            table[key] = suggestion.suggested
    return RuleSet.model_validate(document)


def _points_holder(document: dict[str, Any], feature: str) -> tuple[dict[str, Any], str] | None:
    """Where in a rule set's JSON form the points of ``rule=matched`` are (the table and its key), or
    None when the rule set gives that feature no points of its own."""
    rule, _, matched = feature.partition("=")
    if rule in ("industry", "country", "seniority", "source"):
        table = document.get(rule, {})
        return (table, matched) if matched in table else None
    if rule == "company_size":
        for band in document.get("company_size", []):
            label = f"{band['min']}+" if band.get("max") is None else f"{band['min']}-{band['max']}"
            if label == matched:
                return band, "points"
        return None
    methodology, _, item = rule.partition(".")
    if methodology == "bant":
        table = document.get("bant", {}).get(item, {})
        return (table, matched) if matched in table else None
    if methodology in ("meddic", "meddpicc"):
        item_rule = document.get("methodologies", {}).get(methodology, {}).get("items", {}).get(item)
        if item_rule is None:
            return None
        table = item_rule.get("points", {})
        return (table, matched) if matched in table else None
    return None
