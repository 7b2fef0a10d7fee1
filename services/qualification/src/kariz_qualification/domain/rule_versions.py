"""The versions of the scoring rule set: each replacement is a new numbered version, kept for good.

Version 0 is the rule set the service seeds at start-up (the defaults); every replacement is the
version after the one in force, with when it took effect and who put it in force. A stored version is
never changed, so a scoring that names its version names exactly the rules it used.

An admin who edits the rule set says which version they edited; if another replacement came first,
theirs is refused rather than silently undoing the other's (optimistic concurrency).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kariz_qualification.domain.rules import RuleSet
from kariz_shared.contracts.versions import next_version

#: Who put version 0 in force: the service itself, seeding its defaults.
SEEDED_BY = "kariz"
#: Who put in force a rule set edited before versions were kept: nobody recorded it.
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class RuleSetVersion:
    number: int
    rules: RuleSet
    took_effect_at: datetime
    actor: str
    #: The parts of the rule set that differ from the version before; None when no version before it
    #: is kept (version 0, or the first version of a database from before versions were kept).
    changed: tuple[str, ...] | None = None

    @classmethod
    def seeded(cls, rules: RuleSet, at: datetime) -> RuleSetVersion:
        return cls(number=0, rules=rules, took_effect_at=at, actor=SEEDED_BY)

    def replaced_by(
        self, rules: RuleSet, at: datetime, actor: str, *, edited: int | None = None
    ) -> RuleSetVersion:
        """The version that puts ``rules`` in force after this one. ``edited``: the version the actor
        edited; refused (409) unless it is this one, so an edit of a stale copy undoes nobody's change.
        None: replace whatever is in force (the clients from before versions)."""
        return RuleSetVersion(
            number=next_version("the rule set", self.number, edited),
            rules=rules,
            took_effect_at=at,
            actor=actor,
            changed=rules.parts_changed_from(self.rules),
        )
