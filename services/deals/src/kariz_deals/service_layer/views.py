"""The read side: what the HTTP API and the pipeline gauges answer with.

Reads go to a :class:`DealReads` outside any unit of work (a page of deals needs no transaction); the
pipeline's totals are kept as the deals change, so a summary never counts over every deal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from kariz_deals.domain import (
    Account,
    Deal,
    DealCriteria,
    Pipeline,
    PipelineScope,
    PipelineSummary,
    StageTotal,
    summarise,
)
from kariz_shared.contracts.errors import found
from kariz_shared.contracts.identity import EVERYONE, Owners


class DealReads(Protocol):
    """The stored deals and accounts, as the read side sees them."""

    async def deal(self, deal_id: str) -> Deal | None: ...

    async def deals(self, where: DealCriteria, *, limit: int, offset: int) -> tuple[list[Deal], int]:
        """One page of the deals ``where`` selects, newest opened first, and how many it selects."""
        ...

    async def account(self, account_id: str) -> Account | None: ...

    async def stage_totals(self, scope: PipelineScope) -> Mapping[str, StageTotal]:
        """Deals and value per stage of the deals in ``scope`` (stages with none may be left out)."""
        ...

    async def fold_totals(self) -> None:
        """Fold what the writes since the last fold added to the totals, so the next reads stay short."""
        ...

    async def stalled_by_stage(self, at: datetime) -> Mapping[tuple[str, str], int]:
        """How many open deals are stalled at ``at``, by (pipeline, stage); stages with none left out."""
        ...


async def deal(reads: DealReads, deal_id: str) -> Deal:
    return found(await reads.deal(deal_id), f"no deal {deal_id!r}")


async def deals(
    reads: DealReads,
    where: DealCriteria,
    pipeline: Pipeline,
    *,
    limit: int,
    offset: int,
    others: tuple[Pipeline, ...] = (),
) -> tuple[list[Deal], int]:
    """A page of deals; a stage asked for is one of ``pipeline``'s or of the ``others`` in force."""
    return await reads.deals(where.checked_against(pipeline, *others), limit=limit, offset=offset)


async def account(reads: DealReads, account_id: str) -> Account:
    return found(await reads.account(account_id), f"no account {account_id!r}")


async def pipeline_summary(
    reads: DealReads,
    pipeline: Pipeline,
    *,
    currency: str,
    owner: str | None = None,
    seen: Owners = EVERYONE,
) -> PipelineSummary:
    totals = await reads.stage_totals(PipelineScope(pipeline.name, currency, owner, seen))
    return summarise(pipeline, totals)
