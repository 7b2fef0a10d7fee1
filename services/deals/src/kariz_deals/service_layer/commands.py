"""What a rep asks of deals."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from kariz_shared.contracts.identity import EVERYONE, Actor, Owners


@dataclass(frozen=True)
class MoveDeal:
    """Move a deal to another stage: forward, back, ahead a few stages, to won or to lost."""

    deal_id: str
    stage: str
    #: The deal's amount from now on; a proposal and every later stage need one.
    amount: Decimal | None = None
    #: Why the deal was lost; needed for lost.
    reason: str | None = None
    #: What happened, for the stage history.
    note: str | None = None
    #: Whose deals the asker may move: one of another owner is not there for them (checked in the unit).
    seen: Owners = EVERYONE
    #: Who moves it, for the stage history and the events.
    by: Actor = field(kw_only=True)
    #: Whom a lost deal was lost to.
    competitor: str | None = field(default=None, kw_only=True)
