"""How a delivery is retried: exponential backoff, bounded attempts, and a lease against a sender that
dies mid-send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kariz_notifications.domain.model import Attempt, DeliveryStatus

MAX_BACKOFF_S = 60.0
#: How long a claimed delivery belongs to its sender. After that another sender may take it over,
#: so every send must time out well within it.
LEASE = timedelta(seconds=30)


def backoff(failed_attempts: int, base_s: float) -> float:
    """Seconds to wait after the n-th failed attempt: base, 2·base, 4·base, ... capped at a minute."""
    if failed_attempts < 1:
        raise ValueError("backoff follows a failed attempt")
    return float(min(base_s * 2 ** (failed_attempts - 1), MAX_BACKOFF_S))


@dataclass(frozen=True)
class NextStep:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    sent_at: datetime | None = None


def after_attempt(attempt: Attempt, attempts_made: int, *, max_attempts: int, backoff_s: float) -> NextStep:
    """Where a delivery goes after an attempt; ``attempts_made`` counts this one."""
    finished = attempt.at + timedelta(milliseconds=attempt.duration_ms)
    if attempt.succeeded:
        return NextStep(DeliveryStatus.SENT, None, sent_at=finished)
    if attempts_made >= max_attempts:
        return NextStep(DeliveryStatus.FAILED, None)
    return NextStep(DeliveryStatus.PENDING, finished + timedelta(seconds=backoff(attempts_made, backoff_s)))


@dataclass(frozen=True)
class RetryPolicy:
    """How often a delivery is tried, and how long it waits between tries."""

    max_attempts: int
    backoff_s: float

    def next_step(self, attempt: Attempt, attempts_made: int) -> NextStep:
        """Sent, retried after its backoff, or given up: ``attempts_made`` counts ``attempt``."""
        return after_attempt(attempt, attempts_made, max_attempts=self.max_attempts, backoff_s=self.backoff_s)
