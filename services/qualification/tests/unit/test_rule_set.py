"""Rule-set validation: what a PUT /rules body may and may not say."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_shared.contracts.events import Company, Contact, LeadSource


def default_body() -> dict[str, Any]:
    return DEFAULT_RULES.model_dump(mode="json")


def with_change(path: str, value: Any) -> dict[str, Any]:
    body = default_body()
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[key]
    node[last] = value
    return body


def test_defaults_round_trip_through_json() -> None:
    assert RuleSet.model_validate(default_body()) == DEFAULT_RULES


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("industry", {"software": 20.5}, "valid integer"),
        ("industry", {"software": "20"}, "valid integer"),
        ("industry", {"software": 500}, "less than or equal to 100"),
        ("industry", {"Software": 20, "software": 10}, "listed twice"),
        ("industry", {"!!": 1}, "not a usable industry name"),
        ("country", {"Germany": 10}, "not an ISO 3166-1 alpha-2 code"),
        ("country", {"de": 10, "DE": 5}, "listed twice"),
        ("seniority", {"intern": 1}, "c_level"),
        ("source", {"carrier_pigeon": 1}, "referral"),
        ("bant.budget", {"huge": 30}, "confirmed"),
        ("bant.timeline", {"yesterday": 30}, "within_3_months"),
        (
            "company_size",
            [{"min": 1, "max": 49, "points": 0}, {"min": 10, "max": 99, "points": 5}],
            "bands 1-49 and 10-99 overlap",
        ),
        (
            "company_size",
            [{"min": 1000, "max": None, "points": 25}, {"min": 5000, "max": 9999, "points": 30}],
            r"bands 1000\+ and 5000-9999 overlap",
        ),
        ("company_size", [{"min": 50, "max": 10, "points": 0}], "max is below min"),
        ("company_size", [{"min": -1, "max": 10, "points": 0}], "greater than or equal to 0"),
        ("company_size", [{"min": 1, "max": 10, "points": 0, "extra": 1}], "Extra inputs"),
        ("thresholds", {"qualify": 70, "disqualify_below": 70}, "must be below qualify"),
        ("thresholds", {"qualify": 0, "disqualify_below": 0}, "greater than or equal to 1"),
        ("thresholds", {"qualify": 70, "disqualify_below": -5}, "greater than or equal to 0"),
        # fit 90 + the best checklist (MEDDPICC's 70) + engagement's cap (40) = 200.
        ("thresholds", {"qualify": 201, "disqualify_below": 15}, "can never be reached"),
    ],
)
def test_invalid_rule_sets_are_refused_with_a_message(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RuleSet.model_validate(with_change(path, value))


def test_unknown_top_level_field_and_missing_part_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        RuleSet.model_validate({**default_body(), "industy": {}})
    body = default_body()
    del body["thresholds"]
    with pytest.raises(ValidationError, match="thresholds"):
        RuleSet.model_validate(body)


def test_keys_are_normalised_and_bands_sorted() -> None:
    body = with_change("industry", {"Financial Services": 30})
    body["country"] = {"de": 12}
    body["company_size"] = [{"min": 100, "max": None, "points": 9}, {"min": 1, "max": 99, "points": 1}]
    rules = RuleSet.model_validate(body)
    assert rules.industry == {"financial_services": 30}
    assert rules.country == {"DE": 12}
    assert [band.label for band in rules.company_size] == ["1-99", "100+"]


def test_touching_bands_gaps_and_penalties_are_allowed() -> None:
    body = with_change(
        "company_size",
        [{"min": 1, "max": 9, "points": -5}, {"min": 10, "max": 10, "points": 0}, {"min": 50, "points": 10}],
    )
    rules = RuleSet.model_validate(body)
    lines = rules.score_fit(
        Company(name="A", size=30), Contact(first_name="a", last_name="b", email="e"), LeadSource.EVENT
    )
    assert "company_size" not in {line.rule for line in lines}
    lines = rules.score_fit(
        Company(name="A", size=5), Contact(first_name="a", last_name="b", email="e"), LeadSource.EVENT
    )
    assert ("company_size", -5) in {(line.rule, line.points) for line in lines}


def test_an_existing_customers_items_must_be_items_of_the_methodology_and_a_rule_set_before_them_loads() -> (
    None
):
    document = DEFAULT_RULES.model_dump(mode="json")
    document["existing_customers"] = {"required": {"meddic": ["timeline"]}}
    with pytest.raises(
        ValidationError, match=r"existing_customers.required.meddic: 'timeline' is not an item"
    ):
        RuleSet.model_validate(document)
    del document["existing_customers"]
    loaded = RuleSet.model_validate(document)
    assert loaded.existing_customers.required["bant"] == ["need", "timeline"]
    # An empty list: an existing customer's lead qualifies at once, as before the upsell rules.
    document["existing_customers"] = {"required": {"bant": []}}
    review = RuleSet.model_validate(document).review("bant", {}, existing_customer=True)
    assert (review.required, review.missing) == ((), ())
