"""Settings of the leads service, from ``KARIZ_*`` environment variables."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from pydantic import field_validator
from pydantic_settings import NoDecode

from kariz_shared.contracts.normalisation import normalise_country, normalise_email
from kariz_shared.runtime.settings import ServiceSettings


class LeadsSettings(ServiceSettings):
    service_name: str = "leads"
    http_port: int = 8001

    # KARIZ_REPS: a JSON list or a comma-separated string of rep e-mail addresses.
    reps: Annotated[list[str], NoDecode] = ["alex@kariz.example", "sam@kariz.example"]
    # KARIZ_TERRITORIES: a JSON object, ISO country code -> list of rep addresses, e.g. {"DE": ["kim@..."]}.
    territories: dict[str, list[str]] = {}
    # KARIZ_LEAD_RESPONSE_SLA: how long a new lead may wait for its owner before LeadResponseOverdue;
    # ISO 8601 (``PT4H``, ``P1D``) or seconds.
    lead_response_sla: timedelta = timedelta(hours=4)

    @field_validator("reps", mode="before")
    @classmethod
    def _reps_from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [rep.strip() for rep in text.split(",") if rep.strip()]

    @field_validator("territories", mode="before")
    @classmethod
    def _territories_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("lead_response_sla", mode="before")
    @classmethod
    def _sla_from_seconds(cls, value: Any) -> Any:
        # An environment variable is text, and pydantic reads "14400" as no duration: take it as seconds.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @field_validator("lead_response_sla")
    @classmethod
    def _sla_is_positive(cls, sla: timedelta) -> timedelta:
        if sla <= timedelta(0):
            raise ValueError("the lead response SLA must be a positive time, e.g. PT4H")
        return sla

    @field_validator("reps")
    @classmethod
    def _reps_are_addresses(cls, reps: list[str]) -> list[str]:
        if not reps:
            raise ValueError("at least one rep is needed to assign leads")
        return [normalise_email(rep) for rep in reps]

    @field_validator("territories")
    @classmethod
    def _territories_are_countries(cls, territories: dict[str, list[str]]) -> dict[str, list[str]]:
        checked: dict[str, list[str]] = {}
        for country, team in territories.items():
            if not team:
                raise ValueError(f"territory {country!r} has no reps")
            checked[normalise_country(country)] = [normalise_email(rep) for rep in team]
        return checked
