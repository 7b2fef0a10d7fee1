"""Settings of the deals service, read from ``KARIZ_<FIELD>``."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr

from kariz_shared.runtime.settings import ServiceSettings


class DealsSettings(ServiceSettings):
    service_name: str = "deals"
    http_port: int = 8003
    # Deals opened from qualified leads are priced in this currency (ISO 4217): KARIZ_DEAL_CURRENCY.
    deal_currency: str = Field(default="EUR", min_length=3, max_length=3, pattern="^[A-Z]{3}$")

    # --- quotes and e-sign (issue E) -------------------------------------------------------------
    # A quote with a line discounted by more than this (percent) waits for the owner's manager:
    # KARIZ_QUOTE_DISCOUNT_LIMIT_PCT.
    quote_discount_limit_pct: Decimal = Field(default=Decimal(20), ge=0, le=100)
    # A quote made without a validity date is valid this many days: KARIZ_QUOTE_VALIDITY_DAYS.
    quote_validity_days: int = Field(default=30, ge=1, le=366)
    # The secret the e-sign provider signs its webhook's body with (HMAC-SHA256):
    # KARIZ_E_SIGN_WEBHOOK_SECRET. Empty: the webhook accepts nothing.
    e_sign_webhook_secret: SecretStr = SecretStr("")
