"""The use cases of a deal's contract: a signature request and its status, recorded by a person or
from the e-sign provider's (signature-verified) webhook; the deal's ``contract_status`` follows it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from kariz_deals.domain.contract import Contract, ContractStatus
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import found
from kariz_shared.contracts.identity import EVERYONE, Owners
from kariz_shared.persistence.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordContract:
    deal_id: str
    request_id: str
    status: ContractStatus
    #: A person's address, or ``e-sign:<provider>`` for the provider's webhook.
    by: str
    provider: str | None = None
    document_url: str | None = None
    #: When the provider says it happened (a webhook); None: now.
    occurred_at: datetime | None = None
    #: Whose deals the caller sees; the provider's webhook, whose signature is its credential, all.
    seen: Owners = EVERYONE


async def record_contract(units: UnitsOfWork[DealsUnitOfWork], command: RecordContract) -> Contract:
    """Record the signature request's status (a repeat or a late, older status changes nothing) and
    write it on the deal."""

    async def work(uow: DealsUnitOfWork) -> Contract:
        missing = f"no deal {command.deal_id!r}"
        deal = found(await uow.deals.get(command.deal_id), missing)
        command.seen.sees(deal.owner, missing)
        at = command.occurred_at or uow.clock.now()
        contract = await uow.contracts.get(deal.id)
        if contract is None:
            contract = Contract.requested(
                deal_id=deal.id,
                request_id=command.request_id,
                status=command.status,
                provider=command.provider,
                at=at,
                by=command.by,
                document_url=command.document_url,
            )
        elif not contract.record(
            request_id=command.request_id,
            status=command.status,
            at=at,
            by=command.by,
            provider=command.provider,
            document_url=command.document_url,
        ):
            log.info("contract status already recorded", extra={"deal_id": deal.id, "status": command.status})
            return contract
        await uow.contracts.put(contract)
        deal.record_contract(contract.status.value)
        await uow.deals.save(deal)
        return contract

    return await units.run(work)
