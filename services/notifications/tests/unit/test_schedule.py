"""Retries: exponential backoff capped at a minute, and a bounded number of attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kariz_notifications.domain.model import Attempt, DeliveryStatus
from kariz_notifications.domain.schedule import LEASE, MAX_BACKOFF_S, after_attempt, backoff

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_backoff_doubles_from_the_base_and_is_capped_at_a_minute() -> None:
    assert [backoff(n, 1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert [backoff(n, 0.05) for n in (1, 2, 3)] == pytest.approx([0.05, 0.1, 0.2])
    assert backoff(40, 1.0) == MAX_BACKOFF_S


def test_backoff_follows_a_failed_attempt() -> None:
    with pytest.raises(ValueError, match="failed attempt"):
        backoff(0, 1.0)


def test_a_successful_attempt_marks_the_delivery_sent() -> None:
    step = after_attempt(Attempt(at=T0, succeeded=True, duration_ms=250), 3, max_attempts=6, backoff_s=1.0)
    assert step.status is DeliveryStatus.SENT
    assert step.sent_at == T0 + timedelta(milliseconds=250)
    assert step.next_attempt_at is None


def test_a_failed_attempt_is_retried_after_the_backoff() -> None:
    failed = Attempt(at=T0, succeeded=False, duration_ms=100, error="HTTP 500")
    first = after_attempt(failed, 1, max_attempts=6, backoff_s=1.0)
    assert (first.status, first.next_attempt_at) == (DeliveryStatus.PENDING, T0 + timedelta(seconds=1.1))
    third = after_attempt(failed, 3, max_attempts=6, backoff_s=1.0)
    assert third.next_attempt_at == T0 + timedelta(seconds=4.1)
    assert third.sent_at is None


def test_the_last_allowed_attempt_failing_gives_up() -> None:
    failed = Attempt(at=T0, succeeded=False, duration_ms=5, error="timeout")
    assert after_attempt(failed, 5, max_attempts=6, backoff_s=1.0).status is DeliveryStatus.PENDING
    step = after_attempt(failed, 6, max_attempts=6, backoff_s=1.0)
    assert (step.status, step.next_attempt_at) == (DeliveryStatus.FAILED, None)
    assert after_attempt(failed, 1, max_attempts=1, backoff_s=1.0).status is DeliveryStatus.FAILED


def test_attempt_outcome_names() -> None:
    assert Attempt(at=T0, succeeded=True, duration_ms=1).outcome == "sent"
    assert Attempt(at=T0, succeeded=False, duration_ms=1).outcome == "failed"


def test_the_lease_outlasts_the_longest_allowed_send() -> None:
    from kariz_notifications.settings import NotificationsSettings

    fields = NotificationsSettings.model_fields
    longest = max(
        m.le
        for name in ("smtp_timeout_s", "webhook_timeout_s")
        for m in fields[name].metadata
        if hasattr(m, "le")
    )
    assert LEASE.total_seconds() > longest
