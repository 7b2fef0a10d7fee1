"""``kariz-bench --plans``: what it takes from a profiler entry and how it groups filters."""

from __future__ import annotations

from kariz_bench.plans import filters_of, shape


def test_a_shape_keeps_fields_and_operators_and_drops_values() -> None:
    one = shape({"_id": {"$in": ["a", "b", "c"]}, "claims": 0})
    other = shape({"claims": 3, "_id": {"$in": ["z"]}})
    assert one == other == {"_id": {"$in": ["str"]}, "claims": "int"}
    assert shape({"$or": [{"claim_until": None}, {"claim_until": {"$lt": 1}}]}) == {
        "$or": [{"claim_until": "NoneType"}, {"claim_until": {"$lt": "int"}}]
    }


def test_every_selecting_command_gives_its_collection_and_filter() -> None:
    assert filters_of({"command": {"find": "leads", "filter": {"a": 1}}}) == [("leads", {"a": 1})]
    update = {"update": "d", "updates": [{"q": {"_id": 1}, "u": {}}, {"q": {"s": 2}, "u": {}}]}
    assert filters_of({"command": update}) == [("d", {"_id": 1}), ("d", {"s": 2})]
    assert filters_of({"command": {"delete": "t", "deletes": [{"q": {"k": 1}}]}}) == [("t", {"k": 1})]
    assert filters_of({"command": {"findAndModify": "t", "query": {"k": 2}}}) == [("t", {"k": 2})]
    aggregate = {"aggregate": "deals", "pipeline": [{"$match": {"stage": "won"}}, {"$group": {}}]}
    assert filters_of({"command": aggregate}) == [("deals", {"stage": "won"})]
    assert filters_of({"command": {"insert": "x", "documents": []}}) == []
