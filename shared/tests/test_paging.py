"""Keyset paging: the cursor's round trip, refused cursors (422 naming the parameter), and the merged
queries of :func:`find_after` (no ``$and`` where conditions on one field merge)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from kariz_shared.contracts.normalisation import InvalidValue
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.store import NOTHING, _both
from kariz_shared.runtime import http

T = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def test_a_cursor_survives_its_round_trip_to_the_microsecond() -> None:
    cursor = Cursor.after(T, "9b7c0f0e-1d2a-4c1e-9a57-2f8f3b1d6a10")
    text = cursor.encode()
    assert text.isascii() and "=" not in text and "/" not in text and "+" not in text
    assert Cursor.decode(text) == cursor


def test_the_next_page_holds_what_is_older_or_as_old_with_a_smaller_id() -> None:
    cursor = Cursor(T, "m")
    assert cursor.next_page_has(T - timedelta(microseconds=1), "z")
    assert cursor.next_page_has(T, "a")
    assert not cursor.next_page_has(T, "m")
    assert not cursor.next_page_has(T, "n")
    assert not cursor.next_page_has(T + timedelta(milliseconds=1), "a")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64 at all!",
        "bm8tY29sb24",  # "no-colon"
        "MTIzOg",  # "123:" (no id)
        "eHl6OmFiYw",  # "xyz:abc" (no time)
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OmFiYw",  # a time past year 9999
        "A" * 201,
    ],
)
def test_anything_but_a_cursor_we_answered_is_refused(text: str) -> None:
    with pytest.raises(InvalidValue, match="not a cursor"):
        Cursor.decode(text)


async def test_a_bad_cursor_answers_422_naming_the_parameter() -> None:
    app = FastAPI()
    http.install(app, "test")

    @app.get("/things")
    async def things(cursor: http.CursorParam = None) -> dict[str, str | None]:
        return {"cursor": cursor}

    good = Cursor(T, "x").encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/things", params={"cursor": good})).json() == {"cursor": good}
        response = await client.get("/things", params={"cursor": "garbage!"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["cursor"]


def test_keyset_conditions_merge_into_the_query_without_and() -> None:
    start, end = T - timedelta(days=1), T + timedelta(days=1)
    query = {"owner": {"$in": ["a"]}, "created_at": {"$gt": start, "$lt": end}}
    # The cursor's instant within the range: an equality; outside: nothing.
    assert _both(query, {"created_at": T, "_id": {"$lt": "x"}}) == {
        "owner": {"$in": ["a"]},
        "created_at": T,
        "_id": {"$lt": "x"},
    }
    assert _both(query, {"created_at": end, "_id": {"$lt": "x"}})["created_at"] == NOTHING
    # Older than the cursor: the tighter upper bound holds.
    assert _both(query, {"created_at": {"$lt": T}})["created_at"] == {"$gt": start, "$lt": T}
    assert _both(query, {"created_at": {"$lt": end + timedelta(days=1)}})["created_at"] == {
        "$gt": start,
        "$lt": end,
    }
    # What does not merge simply is kept whole beside it.
    assert _both({"created_at": {"$in": [T]}}, {"created_at": {"$lt": T}}) == {
        "$and": [{"created_at": {"$in": [T]}}, {"created_at": {"$lt": T}}]
    }
