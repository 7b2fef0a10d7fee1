"""Settings of the leads service, from ``KARIZ_*`` environment variables."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from kariz_leads.domain.business_hours import BusinessHours
from kariz_leads.domain.response import AROUND_THE_CLOCK, Calendars, ResponseSla
from kariz_shared.contracts.events import LeadPriority, LeadSource
from kariz_shared.contracts.normalisation import normalise_country, normalise_email
from kariz_shared.runtime.settings import ServiceSettings


class HoursSetting(BaseModel):
    """Business hours as configured; every field left out is the default's (top level: UTC, Monday to
    Friday, 09:00 to 17:00, no holidays)."""

    model_config = ConfigDict(extra="forbid")

    time_zone: str | None = None
    days: list[str | int] | None = None
    start: str | None = None
    end: str | None = None
    holidays: list[date] | None = None

    def over(self, base: HoursSetting) -> HoursSetting:
        """These hours, the fields they leave out taken from ``base``."""
        return base.model_copy(update=self.model_dump(exclude_none=True))

    def hours(self) -> BusinessHours:
        named = self.model_dump(exclude_none=True)
        if "time_zone" in named:
            named["time_zone_name"] = named.pop("time_zone")
        return BusinessHours.of(**named)


class BusinessHoursSetting(HoursSetting):
    """``KARIZ_BUSINESS_HOURS``: the default hours, and those of some teams (names of ``KARIZ_TEAMS``)
    and territories (ISO country codes), each overriding the fields it names."""

    teams: dict[str, HoursSetting] = {}
    territories: dict[str, HoursSetting] = {}


class LeadsSettings(ServiceSettings):
    service_name: str = "leads"
    http_port: int = 8001
    # KARIZ_IMPORT_LEASE_S: how long a worker holds a CSV import it stopped renewing (it died) before
    # another replica takes it over; KARIZ_IMPORT_IDLE_S: how often an idle worker looks for a new one.
    import_lease_s: float = 60.0
    import_idle_s: float = 1.0
    # KARIZ_ASSIGNMENT_RULES_REFRESH_S: how old this replica's copy of the assignment rules in force may
    # be before a capture reads them again (a replacement made on this replica applies at once).
    assignment_rules_refresh_s: float = Field(default=5.0, ge=0, le=3600)

    # KARIZ_REPS: a JSON list or a comma-separated string of rep e-mail addresses.
    reps: Annotated[list[str], NoDecode] = ["alex@kariz.example", "sam@kariz.example"]
    # KARIZ_TERRITORIES: a JSON object, ISO country code -> list of rep addresses, e.g. {"DE": ["kim@..."]}.
    territories: dict[str, list[str]] = {}
    # KARIZ_LEAD_RESPONSE_SLA: how long a new lead may wait for its owner before LeadResponseOverdue;
    # ISO 8601 (``PT4H``, ``P1D``) or seconds.
    lead_response_sla: timedelta = timedelta(hours=4)
    # KARIZ_LEAD_RESPONSE_SLA_BY_SOURCE, KARIZ_LEAD_RESPONSE_SLA_BY_PRIORITY: JSON objects, a source or a
    # priority (high, normal, low) -> its SLA, e.g. {"free_trial": "PT1H", "purchased_list": "P2D"}. A
    # lead's SLA is the shorter of its source's and its priority's; the default when neither is set.
    lead_response_sla_by_source: dict[LeadSource, timedelta] = {}
    lead_response_sla_by_priority: dict[LeadPriority, timedelta] = {}
    # KARIZ_LEAD_RESPONSE_ESCALATION: business time after the response was due at which a lead still
    # unanswered goes to the next rep of its rotation (LeadReassigned); unset: never.
    lead_response_escalation: timedelta | None = None
    # KARIZ_BUSINESS_HOURS: the hours the SLAs count in (JSON), e.g. {"time_zone": "Europe/Berlin",
    # "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00", "holidays":
    # ["2026-12-25"], "teams": {"apac": {"time_zone": "Asia/Tokyo"}}, "territories": {"US": {...}}}.
    # Unset: every hour counts (the SLAs are elapsed time).
    business_hours: BusinessHoursSetting | None = None

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

    @field_validator("lead_response_sla", "lead_response_escalation", mode="before")
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

    @model_validator(mode="after")
    def _response_sla_is_whole(self) -> LeadsSettings:
        """A bad SLA, zone, weekday, time or team stops the start naming the setting."""
        self.response_sla()
        return self

    def response_sla(self) -> ResponseSla:
        """The response SLA these settings describe, with the business hours it counts in."""
        try:
            calendars = self._calendars()
        except ValueError as exc:
            raise ValueError(f"KARIZ_BUSINESS_HOURS: {exc}") from exc
        try:
            return ResponseSla(
                self.lead_response_sla,
                by_source=self.lead_response_sla_by_source,
                by_priority=self.lead_response_sla_by_priority,
                calendars=calendars,
                escalate_after=self.lead_response_escalation,
            )
        except ValueError as exc:
            raise ValueError(f"KARIZ_LEAD_RESPONSE_*: {exc}") from exc

    def _calendars(self) -> Calendars:
        setting = self.business_hours
        if setting is None:
            return Calendars.of(AROUND_THE_CLOCK, teams=self.teams)
        base = HoursSetting.model_validate(setting.model_dump(exclude={"teams", "territories"}))
        unknown = sorted(set(setting.teams) - set(self.teams))
        if unknown:
            raise ValueError(f"hours for teams {unknown} that KARIZ_TEAMS does not list")
        return Calendars.of(
            base.hours(),
            by_team={team: hours.over(base).hours() for team, hours in setting.teams.items()},
            by_country={country: hours.over(base).hours() for country, hours in setting.territories.items()},
            teams=self.teams,
        )

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
