"""Keyset paging: a list read newest first goes on after the last item it answered, not after a count of
items skipped, so its hundredth page costs what its first did and a record added meanwhile at the head
neither repeats nor hides one.

A :class:`Cursor` is that last item's position, its time and its id (the order is time, then id, both
descending), sent to clients as an opaque URL-safe string. Pure: the HTTP parameter is
:data:`kariz_shared.runtime.http.CursorParam`, the MongoDB read
:func:`kariz_shared.persistence.store.find_after`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kariz_shared.contracts.normalisation import InvalidValue

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
#: An encoded cursor is far shorter; anything longer is not one of ours.
CURSOR_MAX_CHARS = 200
#: Ids are short (a UUID is 36 characters).
ID_MAX_CHARS = 100
# Years 1..9999 (what datetime can hold), in microseconds from the epoch.
_EARLIEST = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // ONE_MICROSECOND
_LATEST = (datetime(9999, 12, 31, tzinfo=UTC) - EPOCH) // ONE_MICROSECOND


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the time (e.g. ``created_at``) and id of its last item. The next page holds
    the items before it in the order (time, id) descending."""

    at: datetime
    id: str

    @classmethod
    def after(cls, at: datetime, item_id: str) -> Cursor:
        return cls(at.astimezone(UTC), item_id)

    def encode(self) -> str:
        micros = (self.at.astimezone(UTC) - EPOCH) // ONE_MICROSECOND
        raw = f"{micros}:{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor ``text`` stands for, or InvalidValue: it must be one this API answered."""
        wrong = InvalidValue("not a cursor this API answered: pass next_cursor of the previous page as it is")
        if not text or len(text) > CURSOR_MAX_CHARS:
            raise wrong
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise wrong from exc
        micros, colon, item_id = raw.partition(":")
        if not colon or not item_id or len(item_id) > ID_MAX_CHARS or not item_id.isprintable():
            raise wrong
        if not micros.lstrip("-").isdigit() or not _EARLIEST <= int(micros) <= _LATEST:
            raise wrong
        return cls(EPOCH + int(micros) * ONE_MICROSECOND, item_id)

    def next_page_has(self, at: datetime, item_id: str) -> bool:
        """Whether the item (``at``, ``item_id``) comes after this cursor, newest first: it is older, or
        as old with a smaller id."""
        return (at, item_id) < (self.at, self.id)
