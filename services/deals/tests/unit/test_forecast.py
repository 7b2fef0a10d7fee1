"""The pipeline in numbers: per stage count, value and weighted value; open totals; won value."""

from decimal import Decimal

from kariz_deals.domain import DEFAULT_PIPELINE, StageTotal, summarise


def test_empty_pipeline_is_all_zeros_in_stage_order() -> None:
    summary = summarise(DEFAULT_PIPELINE, {})
    assert [s.stage.name for s in summary.stages] == DEFAULT_PIPELINE.stage_names
    assert all(s.count == 0 and s.value == 0 and s.weighted_value == 0 for s in summary.stages)
    assert (summary.open_count, summary.open_value, summary.open_weighted_value) == (0, 0, 0)
    assert (summary.won_count, summary.won_value) == (0, 0)


def test_weighted_values_and_totals() -> None:
    summary = summarise(
        DEFAULT_PIPELINE,
        {
            "qualification": StageTotal(3, Decimal("1000.00")),  # one with no amount counts as 0
            "demo": StageTotal(1, Decimal("2500.50")),
            "negotiation": StageTotal(2, Decimal("10000")),
            "won": StageTotal(2, Decimal("7000")),
            "lost": StageTotal(4, Decimal("9999")),
        },
    )
    by = {s.stage.name: s for s in summary.stages}
    assert by["qualification"].weighted_value == Decimal("100.00")
    assert by["demo"].weighted_value == Decimal("1000.20")
    assert by["negotiation"].weighted_value == Decimal("7500.00")
    assert by["won"].weighted_value == Decimal("7000.00")
    assert by["lost"].weighted_value == Decimal("0.00")
    assert by["discovery"].count == 0
    assert summary.open_count == 6
    assert summary.open_value == Decimal("13500.50")
    assert summary.open_weighted_value == Decimal("8600.20")
    assert (summary.won_count, summary.won_value) == (2, Decimal("7000"))


def test_weighted_values_round_to_the_cent_and_the_total_adds_the_rounded_figures() -> None:
    summary = summarise(
        DEFAULT_PIPELINE,
        {"qualification": StageTotal(1, Decimal("0.05")), "discovery": StageTotal(1, Decimal("0.03"))},
    )
    by = {s.stage.name: s.weighted_value for s in summary.stages}
    # 0.005 and 0.006, to the cent (half to even).
    assert by["qualification"] == Decimal("0.00")
    assert by["discovery"] == Decimal("0.01")
    assert summary.open_weighted_value == Decimal("0.01")
