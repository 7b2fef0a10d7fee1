"""The default pipeline: stage order, win probabilities, forecast categories, entry criteria."""

from decimal import Decimal

import pytest

from kariz_deals.domain import DEFAULT_PIPELINE, Direction, pipeline_named
from kariz_shared.contracts.errors import NotFound, RuleViolation


def test_stages_in_order_with_probability_and_forecast_category() -> None:
    table = [(s.name, s.order, s.probability, s.forecast_category.value) for s in DEFAULT_PIPELINE.stages]
    assert table == [
        ("qualification", 1, Decimal("0.10"), "pipeline"),
        ("discovery", 2, Decimal("0.20"), "pipeline"),
        ("demo", 3, Decimal("0.40"), "best_case"),
        ("proposal", 4, Decimal("0.60"), "best_case"),
        ("negotiation", 5, Decimal("0.75"), "commit"),
        ("contract", 6, Decimal("0.90"), "commit"),
        ("won", 7, Decimal("1.0"), "closed"),
        ("lost", 8, Decimal("0.0"), "omitted"),
    ]
    assert DEFAULT_PIPELINE.name == "default"
    assert DEFAULT_PIPELINE.first.name == "qualification"


def test_which_stages_need_an_amount_and_which_are_closed() -> None:
    assert [s.name for s in DEFAULT_PIPELINE.stages if s.needs_amount] == [
        "proposal",
        "negotiation",
        "contract",
        "won",
    ]
    assert [s.name for s in DEFAULT_PIPELINE.stages if s.is_closed] == ["won", "lost"]
    assert [s.name for s in DEFAULT_PIPELINE.open_stages] == [
        "qualification",
        "discovery",
        "demo",
        "proposal",
        "negotiation",
        "contract",
    ]


def test_unknown_stage_lists_the_valid_ones() -> None:
    with pytest.raises(RuleViolation) as exc:
        DEFAULT_PIPELINE.stage("closing")
    message = str(exc.value)
    assert "'closing'" in message
    assert "qualification, discovery, demo, proposal, negotiation, contract, won, lost" in message


def test_direction_follows_stage_order() -> None:
    assert DEFAULT_PIPELINE.direction("demo", "proposal") is Direction.FORWARD
    assert DEFAULT_PIPELINE.direction("qualification", "contract") is Direction.FORWARD
    assert DEFAULT_PIPELINE.direction("proposal", "demo") is Direction.BACK
    assert DEFAULT_PIPELINE.direction("negotiation", "qualification") is Direction.BACK


def test_pipelines_by_name() -> None:
    assert pipeline_named("default") is DEFAULT_PIPELINE
    with pytest.raises(NotFound, match="no pipeline 'enterprise'"):
        pipeline_named("enterprise")
