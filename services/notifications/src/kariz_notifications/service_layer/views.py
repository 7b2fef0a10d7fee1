"""The read side: what ``GET /notifications`` and ``GET /handovers`` answer. Reads run outside any unit
of work: a page of the log needs no transaction."""

from __future__ import annotations

from typing import Protocol

from kariz_notifications.domain.model import DeliveryRecord, HandoverRecord, HandoverStatus
from kariz_notifications.domain.queries import DeliveryCriteria
from kariz_shared.contracts.errors import found


class NotificationsReads(Protocol):
    async def deliveries(
        self, where: DeliveryCriteria, *, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        """A page of the matching deliveries, newest first, and how many match in all."""
        ...

    async def delivery(self, key: str) -> DeliveryRecord | None: ...

    async def handovers(
        self, status: HandoverStatus | None, *, limit: int, offset: int
    ) -> tuple[list[HandoverRecord], int]:
        """A page of the hand-overs (of ``status``, or all), newest first, and how many in all."""
        ...


async def delivery_log(
    reads: NotificationsReads, where: DeliveryCriteria, *, limit: int, offset: int
) -> tuple[list[DeliveryRecord], int]:
    return await reads.deliveries(where, limit=limit, offset=offset)


async def delivery(reads: NotificationsReads, key: str) -> DeliveryRecord:
    return found(await reads.delivery(key), f"no notification {key!r}")


async def handovers(
    reads: NotificationsReads, *, status: HandoverStatus | None, limit: int, offset: int
) -> tuple[list[HandoverRecord], int]:
    return await reads.handovers(status, limit=limit, offset=offset)
