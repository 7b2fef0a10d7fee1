"""What managers and reps put beside the forecast: quotas per rep and team per period, and forecast
calls (a rep's commit and best case, a manager's adjustment of it with a note), each kept with history.

These are the reports service's own records, not projections of the events: a rebuild of the
projections leaves them as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from kariz_shared.contracts.errors import RuleViolation

#: Whose target or call: ``rep:<email>``, ``team:<name>`` or the whole organisation.
ORGANISATION = "organisation"
MAX_AMOUNT = Decimal("1000000000000")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_NOTE = 2000


def rep(email: str) -> str:
    return f"rep:{email}"


def team(name: str) -> str:
    return f"team:{name}"


def checked_amount(field: str, amount: Decimal, *, positive: bool) -> Decimal:
    if not amount.is_finite() or amount < 0 or (positive and amount == 0) or amount > MAX_AMOUNT:
        low = "greater than 0" if positive else "0 or more"
        raise RuleViolation(f"{field}: {low} and at most {MAX_AMOUNT:,}, not {amount}")
    return amount.quantize(Decimal("0.01"))


@dataclass(frozen=True)
class QuotaChange:
    amount: Decimal
    currency: str
    set_by: str
    set_at: datetime


@dataclass(frozen=True)
class Quota:
    """A target for ``whom`` in ``period`` (a period's label: ``2026-Q3``, ``FY2026``, ``2026-03``)."""

    period: str
    whom: str
    amount: Decimal
    currency: str
    set_by: str
    set_at: datetime
    #: The amounts it had before, oldest first.
    history: tuple[QuotaChange, ...] = ()

    @classmethod
    def set(
        cls,
        existing: Quota | None,
        *,
        period: str,
        whom: str,
        amount: Decimal,
        currency: str,
        by: str,
        at: datetime,
    ) -> Quota:
        """The quota as set now; the one it replaces goes to its history."""
        if not CURRENCY.match(currency):
            raise RuleViolation(f"currency: a three-letter ISO 4217 code such as EUR, not {currency!r}")
        amount = checked_amount("amount", amount, positive=True)
        if existing is None:
            return cls(period, whom, amount, currency, by, at)
        earlier = QuotaChange(existing.amount, existing.currency, existing.set_by, existing.set_at)
        return replace(
            existing,
            amount=amount,
            currency=currency,
            set_by=by,
            set_at=at,
            history=(*existing.history, earlier),
        )


class CallKind(StrEnum):
    #: A rep's own call for their deals.
    CALL = "call"
    #: A manager's (or an admin's) call in place of a rep's or for the team, with a note.
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class ForecastCall:
    """One submission: never changed, the next one is kept beside it (the newest of a kind counts)."""

    id: str
    period: str
    whom: str
    kind: CallKind
    commit: Decimal
    best_case: Decimal
    note: str | None
    by: str
    at: datetime

    @classmethod
    def submitted(
        cls,
        *,
        id: str,
        period: str,
        whom: str,
        kind: CallKind,
        commit: Decimal,
        best_case: Decimal,
        note: str | None,
        by: str,
        at: datetime,
    ) -> ForecastCall:
        commit = checked_amount("commit", commit, positive=False)
        best_case = checked_amount("best_case", best_case, positive=False)
        if best_case < commit:
            # Best case is what may close besides the commit: it holds the commit.
            raise RuleViolation(f"best_case ({best_case}) must be at least commit ({commit})")
        text = (note or "").strip() or None
        if kind is CallKind.ADJUSTMENT and text is None:
            raise RuleViolation("note: an adjustment says why")
        if text is not None and len(text) > MAX_NOTE:
            raise RuleViolation(f"note: at most {MAX_NOTE} characters")
        return cls(id, period, whom, kind, commit, best_case, text, by, at)
