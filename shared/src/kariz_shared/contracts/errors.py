"""Errors the domain raises, named by what went wrong. Plain Python, no I/O: the HTTP adapter maps
each kind to a status code (see :mod:`kariz_shared.runtime.http`), the consumer wrapper to a dead letter."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class DomainError(Exception):
    """A request the domain refuses. The message says what is wrong, for a person to read."""


class NotFound(DomainError):
    """The thing asked for does not exist (HTTP 404)."""


def found(thing: T | None, missing: str) -> T:
    """``thing`` as it was found, or :class:`NotFound` saying what is ``missing``."""
    if thing is None:
        raise NotFound(missing)
    return thing


class Unauthenticated(DomainError):
    """No credential, or one that does not verify (HTTP 401 with ``WWW-Authenticate: Bearer``)."""


class Forbidden(DomainError):
    """The caller is known but their role or scope does not allow this change (HTTP 403)."""


class Unavailable(DomainError):
    """Something this request needs cannot be reached now; nothing was changed (HTTP 503)."""


class TooManyRequests(DomainError):
    """The caller sent more than its limit allows; try again after ``retry_after_s`` (HTTP 429)."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Conflict(DomainError):
    """The request clashes with the current state, e.g. moving a closed deal (HTTP 409)."""


class RuleViolation(DomainError):
    """The request breaks a business rule, e.g. a proposal without an amount (HTTP 422)."""


class RejectedEvent(Exception):
    """A consumed event can never be applied (not a passing failure): it goes to the dead letters."""


class DuplicateRecord(Conflict):
    """A unique index refused a write: a concurrent change of the same thing committed first."""

    def __init__(self, message: str, *, index: str = "") -> None:
        super().__init__(message)
        self.index = index
