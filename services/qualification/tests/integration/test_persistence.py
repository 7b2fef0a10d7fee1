"""Against the real database: start-up seeding and indexes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from kariz_qualification import service_layer
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.settings import QualificationSettings
from kariz_shared.persistence.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings_for: Callable[..., Any]) -> AsyncIterator[Store]:
    store = Store(settings_for(QualificationSettings, service_name="qualification"))
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


async def test_start_up_seeds_defaults_once_and_creates_the_indexes(store: Store) -> None:
    await service_layer.prepare(store)
    assert await service_layer.current_rules(store) == DEFAULT_RULES
    edited = RuleSet.model_validate({**DEFAULT_RULES.model_dump(mode="json"), "country": {"SE": 10}})
    await service_layer.replace_rules(store, edited)

    await service_layer.prepare(store)  # a restart keeps what was edited
    assert await service_layer.current_rules(store) == edited
    doc = await store.db.rule_sets.find_one({"_id": "current"})
    assert doc is not None and doc["version"] == 2
    names = {index["name"] async for index in await store.db.leads.list_indexes()}
    assert {"status_captured", "status_owner_captured"} <= names
