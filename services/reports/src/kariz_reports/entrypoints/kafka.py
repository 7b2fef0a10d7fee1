"""The consumed events and their handlers: every public event a report counts."""

from __future__ import annotations

from kariz_reports.service_layer.handlers import HANDLERS
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork
from kariz_shared import system
from kariz_shared.persistence.unit_of_work import Subscriptions


def subscriptions() -> Subscriptions[ReportsUnitOfWork]:
    """The registry's list for the reports service, each with its handler (one table, checked equal)."""
    consumed = system.service("reports").consumes
    if set(consumed) != set(HANDLERS):
        raise LookupError("the registry's consumes of reports and its handlers differ")
    return {event_cls: HANDLERS[event_cls] for event_cls in consumed}
