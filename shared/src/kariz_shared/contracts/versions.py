"""Configuration kept as numbered versions (a rule set, assignment rules): each replacement is a new
version, the one after the version in force, stored for good; version 0 is what a service seeds.

An admin who edits says which version they edited (HTTP ``If-Match``); if another replacement came
first, theirs is refused rather than silently undoing the other's (optimistic concurrency). Two
replacements that read the same version at once both make the next number: storage keys a version by
its number (a unique ``_id``), so only one commits and the other gets :func:`raced`.
"""

from __future__ import annotations

from kariz_shared.contracts.errors import Conflict


def next_version(what: str, in_force: int, edited: int | None) -> int:
    """The number of the version that replaces version ``in_force`` of ``what``. ``edited``: the version
    the actor edited; refused (409) unless it is the one in force. None: replace whatever is in force."""
    if edited is not None and edited != in_force:
        raise Conflict(
            f"you edited version {edited} of {what}, but version {in_force} is in force; "
            f"reload version {in_force} and apply your edit to it"
        )
    return in_force + 1


def raced(what: str, number: int) -> Conflict:
    """The refusal of a replacement whose version number a concurrent one took first."""
    return Conflict(
        f"version {number} of {what} was put in force by another replacement at the "
        f"same time; reload version {number} and apply your edit to it"
    )
