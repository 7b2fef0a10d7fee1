"""The deals service's metrics exist before their first occurrence, so increase() and rates count it."""

from __future__ import annotations

from prometheus_client import REGISTRY

from kariz_deals.adapters import metrics
from kariz_deals.domain import DEFAULT_PIPELINE

# What bootstrap does for the pipeline deals are opened in.
metrics.PrometheusDealsMetrics(DEFAULT_PIPELINE)


def test_every_loss_series_is_exported_before_the_first_loss() -> None:
    for stage in DEFAULT_PIPELINE.open_stages:
        for reason in (*metrics.LOSS_REASONS, "other"):
            labels = {"lost_at_stage": stage.name, "reason": reason}
            assert REGISTRY.get_sample_value("kariz_deals_lost_total", labels) is not None, labels


def test_every_move_between_stages_is_exported_before_it_first_happens() -> None:
    for origin in DEFAULT_PIPELINE.open_stages:
        for target in DEFAULT_PIPELINE.stages:
            if target.name != origin.name:
                labels = {"from_stage": origin.name, "to_stage": target.name}
                value = REGISTRY.get_sample_value("kariz_deals_stage_transitions_total", labels)
                assert value is not None, labels


def test_a_loss_reason_is_reduced_to_its_known_code_or_other() -> None:
    assert metrics.reason_code("Competitor: chose Acme") == "competitor"
    assert metrics.reason_code("no budget this year") == "other"
    assert metrics.reason_code("no-budget: frozen") == "no_budget"
    assert metrics.reason_code(None) == "other"
