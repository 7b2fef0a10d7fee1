"""The contract of a deal: the signature request sent through an e-sign provider (or by hand) and where
it stands — sent, viewed, signed or declined. One per deal; its status is the deal's ``contract_status``.

Providers call their webhooks more than once and not always in order (a "viewed" after the "signed"),
so a status never goes back: a repeat or an older status of the same request changes nothing. A new
request (another ``request_id``) replaces a declined one; a signed contract stays signed. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from kariz_shared.contracts.errors import Conflict


class ContractStatus(StrEnum):
    SENT = "sent"
    VIEWED = "viewed"
    SIGNED = "signed"
    DECLINED = "declined"


#: How far along a request is: a status of lower rank than the one recorded arrives late.
RANK = {
    ContractStatus.SENT: 0,
    ContractStatus.VIEWED: 1,
    ContractStatus.SIGNED: 2,
    ContractStatus.DECLINED: 2,
}


@dataclass(frozen=True)
class ContractEvent:
    """One status the contract was given, by whom (a person, or ``e-sign:<provider>``)."""

    status: ContractStatus
    at: datetime
    by: str | None
    request_id: str


@dataclass
class Contract:
    deal_id: str
    request_id: str
    status: ContractStatus
    provider: str | None
    updated_at: datetime
    history: list[ContractEvent]
    document_url: str | None = None
    version: int = 0

    @classmethod
    def requested(
        cls,
        *,
        deal_id: str,
        request_id: str,
        status: ContractStatus,
        provider: str | None,
        at: datetime,
        by: str | None,
        document_url: str | None = None,
    ) -> Contract:
        return cls(
            deal_id=deal_id,
            request_id=request_id,
            status=status,
            provider=provider,
            updated_at=at,
            history=[ContractEvent(status, at, by, request_id)],
            document_url=document_url,
        )

    def record(
        self,
        *,
        request_id: str,
        status: ContractStatus,
        at: datetime,
        by: str | None,
        provider: str | None = None,
        document_url: str | None = None,
    ) -> bool:
        """Record what the provider (or a person) says of the signature request; False when it changes
        nothing (a repeat, or a status the request is already past)."""
        if request_id != self.request_id:
            if self.status is ContractStatus.SIGNED:
                raise Conflict(
                    f"deal {self.deal_id}'s contract is signed (request {self.request_id!r}); "
                    f"request {request_id!r} cannot replace it"
                )
            if self.status is not ContractStatus.DECLINED and status is not ContractStatus.SENT:
                raise Conflict(
                    f"deal {self.deal_id}'s signature request is {self.request_id!r}; a new request "
                    f"{request_id!r} starts as sent"
                )
            self.request_id = request_id
        elif RANK[status] < RANK[self.status] or status is self.status:
            return False
        elif RANK[self.status] == 2:
            raise Conflict(
                f"deal {self.deal_id}'s contract is {self.status.value}; it cannot become {status.value}"
            )
        self.status = status
        self.updated_at = at
        self.provider = provider or self.provider
        self.document_url = document_url or self.document_url
        self.history.append(ContractEvent(status, at, by, request_id))
        return True
