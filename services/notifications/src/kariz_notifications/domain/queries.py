"""What the delivery log can be asked: the criteria of ``GET /notifications``."""

from __future__ import annotations

from dataclasses import dataclass

from kariz_notifications.domain.model import Channel, DeliveryRecord, DeliveryStatus


@dataclass(frozen=True)
class DeliveryCriteria:
    """Deliveries matching every given field; a field left ``None`` matches all."""

    status: DeliveryStatus | None = None
    channel: Channel | None = None
    event_type: str | None = None
    recipient: str | None = None
    subject: str | None = None

    FIELDS = ("status", "channel", "event_type", "recipient", "subject")

    def given(self) -> dict[str, str]:
        """The fields asked for, by name, as the log stores them."""
        return {name: str(value) for name in self.FIELDS if (value := getattr(self, name)) is not None}

    def matches(self, record: DeliveryRecord) -> bool:
        d = record.delivery
        stored = {
            "status": record.status.value,
            "channel": d.channel.value,
            "event_type": d.event_type,
            "recipient": d.recipient,
            "subject": d.subject,
        }
        return all(stored[name] == value for name, value in self.given().items())
