"""The base of every aggregate: it raises its own events, and its use case hands them to the unit of
work (``uow.publish(deal)``), which writes them to the outbox with the change."""

from __future__ import annotations

from kariz_shared.contracts.events import Event


class Aggregate:
    """Mix into a (data)class: no ``__init__`` of its own, so dataclasses keep theirs."""

    def raise_event(self, event: Event) -> None:
        self.__dict__.setdefault("_raised", []).append(event)

    def pull_events(self) -> list[Event]:
        """The events raised since the last pull, oldest first; pulling empties the list."""
        raised: list[Event] = self.__dict__.pop("_raised", [])
        return raised
