"""Lead filters (normalised like captured data; impossible ranges refused) and the settings formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kariz_leads.domain import LeadFilter
from kariz_leads.settings import LeadsSettings
from kariz_shared.contracts.errors import RuleViolation


def test_filter_values_are_normalised_like_captured_data() -> None:
    criteria = LeadFilter.of(owner=" Alex@Kariz.Example", industry=" Software ", country="de")
    assert (criteria.owner, criteria.industry, criteria.country) == ("alex@kariz.example", "software", "DE")


def test_dates_without_a_zone_are_utc_and_others_are_converted() -> None:
    cet = timezone(timedelta(hours=1))
    criteria = LeadFilter.of(
        created_from=datetime(2025, 1, 1), created_to=datetime(2025, 1, 2, 1, tzinfo=cet)
    )
    assert criteria.created_from == datetime(2025, 1, 1, tzinfo=UTC)
    assert criteria.created_to == datetime(2025, 1, 2, tzinfo=UTC)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(RuleViolation, match=r"created_from .* is after created_to"):
        LeadFilter.of(
            created_from=datetime(2025, 2, 1, tzinfo=UTC), created_to=datetime(2025, 1, 1, tzinfo=UTC)
        )


@pytest.mark.parametrize(("field", "value"), [("country", "Germania"), ("owner", "alex")])
def test_an_invalid_filter_value_is_refused_naming_it(field: str, value: str) -> None:
    with pytest.raises(RuleViolation, match=f"^{field}: "):
        LeadFilter.of(**{field: value})


def test_reps_come_as_a_json_list_or_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARIZ_REPS", '["Kim@kariz.example", "lee@kariz.example"]')
    assert LeadsSettings().reps == ["kim@kariz.example", "lee@kariz.example"]
    monkeypatch.setenv("KARIZ_REPS", " kim@kariz.example , lee@kariz.example,")
    assert LeadsSettings().reps == ["kim@kariz.example", "lee@kariz.example"]


def test_territories_come_as_a_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARIZ_TERRITORIES", '{"de": ["jonas@kariz.example"]}')
    assert LeadsSettings().territories == {"DE": ["jonas@kariz.example"]}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KARIZ_REPS", "KARIZ_TERRITORIES", "KARIZ_SERVICE_NAME", "KARIZ_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = LeadsSettings()
    assert (settings.service_name, settings.http_port) == ("leads", 8001)
    assert settings.reps == ["alex@kariz.example", "sam@kariz.example"]
    assert settings.territories == {}
    assert settings.lead_response_sla == timedelta(hours=4)


@pytest.mark.parametrize(
    ("value", "sla"),
    [("PT4H", timedelta(hours=4)), ("P1DT30M", timedelta(days=1, minutes=30)), ("90", timedelta(seconds=90))],
)
def test_the_response_sla_comes_as_iso_8601_or_seconds(
    monkeypatch: pytest.MonkeyPatch, value: str, sla: timedelta
) -> None:
    monkeypatch.setenv("KARIZ_LEAD_RESPONSE_SLA", value)
    assert LeadsSettings().lead_response_sla == sla


@pytest.mark.parametrize(
    ("env", "value", "why"),
    [
        ("KARIZ_REPS", "[]", "at least one rep"),
        ("KARIZ_REPS", "alex", "not an e-mail address"),
        ("KARIZ_TERRITORIES", '{"Germania": ["a@kariz.example"]}', "not a country"),
        ("KARIZ_TERRITORIES", '{"DE": []}', "has no reps"),
        ("KARIZ_LEAD_RESPONSE_SLA", "PT0S", "positive time"),
        ("KARIZ_LEAD_RESPONSE_SLA", "four hours", "valid timedelta"),
    ],
)
def test_bad_assignment_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, why: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=why):
        LeadsSettings()
