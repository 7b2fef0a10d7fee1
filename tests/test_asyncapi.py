"""Each service's AsyncAPI document is generated from its code, lists every topic the registry
(``kariz_shared.system``) says it reads and writes, and the committed copy in docs/asyncapi/ is
current (run `make asyncapi` after changing events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kariz_devkit.asyncapi import build_service, document, topics_of
from kariz_shared.contracts.events import dead_letter_topic
from kariz_shared.system import SERVICE_NAMES, service

DOCS = Path(__file__).resolve().parent.parent / "docs" / "asyncapi"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_document_lists_every_topic_the_registry_says_the_service_reads_and_writes(name: str) -> None:
    writes, reads = list(service(name).publishes), list(service(name).consumes)
    doc = document(build_service(name))
    topics = topics_of(doc)
    assert topics["receive"] == {cls.topic() for cls in reads}
    # A consumer also writes its dead letters.
    assert topics["send"] == {cls.topic() for cls in writes} | {
        dead_letter_topic(cls.topic()) for cls in reads
    }
    schemas = doc["components"]["schemas"]
    for cls in writes + reads:
        assert schemas[cls.__name__]["title"] == cls.__name__


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_committed_document_is_current(name: str) -> None:
    committed = DOCS / f"{name}.json"
    assert committed.exists(), f"{committed} is missing: run `make asyncapi`"
    generated = json.loads(json.dumps(document(build_service(name)), sort_keys=True))
    assert json.loads(committed.read_text()) == generated, f"{committed} is stale: run `make asyncapi`"
