"""Stand-ins for the senders and the metrics, for the in-memory tests."""

from __future__ import annotations

from collections import Counter

from kariz_notifications.domain.model import Channel, Delivery, SendResult


class FakeSender:
    """Answers each send with the next of ``results`` (the last one again once they run out)."""

    def __init__(self, *results: SendResult | Exception) -> None:
        self.results = list(results) or [SendResult(ok=True)]
        self.sent: list[str] = []

    async def send(self, delivery: Delivery) -> SendResult:
        self.sent.append(delivery.key)
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result

    async def aclose(self) -> None:
        pass


class CountingMetrics:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, Channel]] = Counter()
        #: The outcomes by channel and rule.
        self.by_rule: Counter[tuple[str, Channel, str]] = Counter()

    def resumed(self, channel: Channel) -> None:
        self.counts["resumed", channel] += 1

    def took(self, channel: Channel, seconds: float) -> None:
        self.counts["took", channel] += 1

    def sent(self, channel: Channel, rule: str) -> None:
        self.counts["sent", channel] += 1
        self.by_rule["sent", channel, rule] += 1

    def failed(self, channel: Channel, rule: str, *, gave_up: bool) -> None:
        self.counts["failed", channel] += 1
        self.counts["gave_up", channel] += gave_up
        self.by_rule["failed", channel, rule] += 1
        self.by_rule["gave_up", channel, rule] += gave_up

    def customer_sent(self, rule: str) -> None:
        self.by_rule["customer_sent", Channel.EMAIL, rule] += 1
