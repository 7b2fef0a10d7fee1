"""Settings of the leads service, from ``KARIZ_*`` environment variables."""

from __future__ import annotations

import json
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
