"""Settings of the deals service, read from ``KARIZ_<FIELD>``."""

from __future__ import annotations

from pydantic import Field

from kariz_shared.runtime.settings import ServiceSettings


class DealsSettings(ServiceSettings):
    service_name: str = "deals"
    http_port: int = 8003
    # Deals opened from qualified leads are priced in this currency (ISO 4217): KARIZ_DEAL_CURRENCY.
    deal_currency: str = Field(default="EUR", min_length=3, max_length=3, pattern="^[A-Z]{3}$")
