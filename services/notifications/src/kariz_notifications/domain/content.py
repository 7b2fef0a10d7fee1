"""Content sent to customers (issue G): the content library, each lead's contact as notifications knows
it, and the consent that decides whether content may go to them.

A content library item is a catalogue, a case study, a white paper: a title, a link or an attachment's
reference, the pipeline stages and segments it suits, and tags (what a nurture step asks for). A
**contact** is a lead's person, projected from the events notifications consumes (``LeadCaptured`` with
its ``consent``, ``LeadReassigned``, ``LeadsMerged``); a deal's contact is its lead's (every deal event
names its lead). Content goes to a contact only with consent recorded and not withdrawn, never after
they unsubscribed; otherwise the delivery is kept as *skipped* with the reason, so a user can see why.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kariz_shared.contracts.errors import Conflict, RuleViolation

CONTENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LINK = re.compile(r"^https?://[^\s/]+\S*$")
MAX_TAGS = 20
#: How many merges a contact look-up follows (a merged lead's survivor may be merged in turn).
MAX_MERGE_HOPS = 8


class SkipReason(StrEnum):
    """Why content did not go to a contact: a bounded label (the metrics count by it)."""

    NO_CONTACT = "no_contact"
    NO_CONSENT = "no_consent"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    UNSUBSCRIBED = "unsubscribed"
    NO_CONTENT = "no_content"
    #: No unsubscribe secret in the settings: content never goes without a working unsubscribe link.
    NO_UNSUBSCRIBE_LINK = "no_unsubscribe_link"
    NOT_RENDERED = "not_rendered"


SKIP_TEXT = {
    SkipReason.NO_CONTACT: "notifications knows no contact for lead {lead}",
    SkipReason.NO_CONSENT: "no consent recorded for the contact of lead {lead}",
    SkipReason.CONSENT_WITHDRAWN: "the contact of lead {lead} withdrew consent",
    SkipReason.UNSUBSCRIBED: "the contact of lead {lead} unsubscribed",
    SkipReason.NO_CONTENT: "no active content of the library matches",
    SkipReason.NO_UNSUBSCRIBE_LINK: "KARIZ_UNSUBSCRIBE_SECRET is not set: no unsubscribe link can be made",
    SkipReason.NOT_RENDERED: "the e-mail did not render",
}


def _tags(values: Iterable[str], where: str) -> tuple[str, ...]:
    tags = tuple(dict.fromkeys(v.strip().lower() for v in values))
    if len(tags) > MAX_TAGS:
        raise RuleViolation(f"{where}: at most {MAX_TAGS}")
    bad = [t for t in tags if not TAG.match(t)]
    if bad:
        raise RuleViolation(f"{where}: lower-case letters, digits, '-' and '_' only: {', '.join(bad)}")
    return tags


@dataclass(frozen=True)
class ContentDraft:
    """What a curator writes of a content item (``POST``/``PUT /content``)."""

    title: str
    link: str | None = None
    attachment: str | None = None
    stages: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""

    def checked(self) -> ContentDraft:
        """This draft, tags and stages normalised; a 422 naming the field that cannot be."""
        if not self.title.strip() or len(self.title) > 200:
            raise RuleViolation("title: 1..200 characters")
        if (self.link is None) == (self.attachment is None):
            raise RuleViolation("link: give a link or an attachment reference, one of them")
        if self.link is not None and (not LINK.match(self.link) or len(self.link) > 2000):
            raise RuleViolation("link: an http(s) URL of at most 2000 characters")
        if self.attachment is not None and not 1 <= len(self.attachment.strip()) <= 500:
            raise RuleViolation("attachment: a reference of 1..500 characters")
        return dataclasses.replace(
            self,
            title=self.title.strip(),
            stages=_tags(self.stages, "stages"),
            segments=_tags(self.segments, "segments"),
            tags=_tags(self.tags, "tags"),
        )


@dataclass
class ContentItem:
    """One piece of the library. A retired item stays (deliveries name it) but is never sent again."""

    id: str
    draft: ContentDraft
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    retired: bool = False
    #: Bumped by every save: a curator's ``If-Match`` names the version they edited.
    version: int = 1

    @classmethod
    def created(cls, content_id: str, draft: ContentDraft, actor: str, at: datetime) -> ContentItem:
        if not CONTENT_ID.match(content_id):
            raise RuleViolation("id: lower-case letters, digits and dashes, 1..64")
        return cls(content_id, draft.checked(), actor, at, actor, at)

    def revise(self, draft: ContentDraft, actor: str, at: datetime, edited: int | None) -> None:
        self._edited(edited)
        if self.retired:
            raise Conflict(f"content {self.id!r} is retired; create a new item instead")
        self.draft, self.updated_by, self.updated_at = draft.checked(), actor, at

    def retire(self, actor: str, at: datetime, edited: int | None) -> None:
        self._edited(edited)
        self.retired, self.updated_by, self.updated_at = True, actor, at

    def _edited(self, edited: int | None) -> None:
        if edited is not None and edited != self.version:
            raise Conflict(
                f"you edited version {edited} of content {self.id!r}, but it is at version {self.version}; "
                "reload it and apply your edit again"
            )

    def suits(self, choice: ContentChoice, stage: str | None) -> bool:
        d = self.draft
        return (
            not self.retired
            and all(t in d.tags for t in choice.tags)
            and (stage is None or not d.stages or stage.lower() in d.stages)
            and (not choice.segments or not d.segments or bool(set(choice.segments) & set(d.segments)))
        )


@dataclass(frozen=True)
class ContentChoice:
    """Which library item a content action (or a nurture step) sends: one by id, else the first active
    item (oldest first) with every tag, suiting the event's stage (read from ``stage_field``) and one of
    ``segments``. An item that names no stages (or segments) suits every one."""

    content_id: str | None = None
    tags: tuple[str, ...] = ()
    stage_field: str | None = None
    segments: tuple[str, ...] = ()
    #: An event field holding a list of tags the item must have too (a nurture step's ``content_tags``).
    tags_field: str | None = None

    def pick(
        self, library: Sequence[ContentItem], stage: str | None, extra_tags: Sequence[str] = ()
    ) -> ContentItem | None:
        if self.content_id is not None:
            return next((c for c in library if c.id == self.content_id and not c.retired), None)
        wanted = dataclasses.replace(self, tags=(*self.tags, *(t.lower() for t in extra_tags)))
        ordered = sorted(library, key=lambda c: (c.created_at, c.id))
        return next((c for c in ordered if c.suits(wanted, stage)), None)


@dataclass(frozen=True)
class ConsentRecord:
    """Consent as last recorded: given or withdrawn, by whom (the capture's source, a user, the contact
    following an unsubscribe link) and when."""

    given: bool
    by: str
    at: datetime


@dataclass
class Contact:
    """A lead's contact as notifications keeps it (collection ``contacts``, ``_id`` = lead id)."""

    lead_id: str
    email: str
    name: str
    owner: str
    locale: str | None = None
    consent: ConsentRecord | None = None
    unsubscribed_at: datetime | None = None
    #: The lead this one was merged into (its contact is the survivor's now).
    merged_into: str | None = None
    history: list[ConsentRecord] = field(default_factory=list)

    def skip_reason(self) -> SkipReason | None:
        """Why no content may go to this contact now; None when it may."""
        if self.unsubscribed_at is not None:
            return SkipReason.UNSUBSCRIBED
        if self.consent is None:
            return SkipReason.NO_CONSENT
        if not self.consent.given:
            return SkipReason.CONSENT_WITHDRAWN
        return None

    def record_consent(self, given: bool, by: str, at: datetime) -> bool:
        """Record consent given or withdrawn; True when that changed anything. Giving it again after an
        unsubscribe subscribes the contact again (a user vouches for it, and it is kept in the history)."""
        current = self.consent is not None and self.consent.given == given
        if current and (not given or self.unsubscribed_at is None):
            return False
        record = ConsentRecord(given, by, at)
        self.consent = record
        self.history.append(record)
        if given:
            self.unsubscribed_at = None
        return True

    def unsubscribe(self, by: str, at: datetime) -> bool:
        """The contact unsubscribed; True the first time (a second click changes nothing)."""
        if self.unsubscribed_at is not None:
            return False
        self.unsubscribed_at = at
        record = ConsentRecord(False, by, at)
        self.consent = record
        self.history.append(record)
        return True

    def absorb(self, duplicate: Contact) -> None:
        """The duplicate of a merge joins this survivor: a "no" of either stands (an unsubscribe or a
        withdrawal is the person's, whichever record it was made on); a "yes" stays the survivor's own."""
        if duplicate.unsubscribed_at is not None and self.unsubscribed_at is None:
            self.unsubscribed_at = duplicate.unsubscribed_at
        if duplicate.consent is not None and not duplicate.consent.given:
            if self.consent is None or self.consent.at < duplicate.consent.at:
                self.consent = duplicate.consent
                self.history.append(duplicate.consent)
