"""Every route of every service, fuzzed from its own OpenAPI document against the real services: four
service processes on the embedded broker and database, signed-in requests from the test issuer. The
in-memory fuzzing (``tests/test_fuzz_routes.py``) reaches the handlers quickly; this one reaches what
only the real stack has: MongoDB's limits (an integer past int64, a key it refuses), the API-key and
rate-limit stores, the processes' own middleware. No input, valid or not, may get a 5xx."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from kariz_devkit.devstack import ServiceProcess, start_service, wait_ready
from kariz_devkit.embedded import free_port
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, bearer, unique
from kariz_shared.system import SERVICE_NAMES, service

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _schema(name: str) -> Any:
    # The document is the service's own, read from its app as built (nothing connects until started).
    app = importlib.import_module(service(name).bootstrap).build().api
    return schemathesis.openapi.from_dict(app.openapi())


SCHEMAS = {name: _schema(name) for name in SERVICE_NAMES}


@pytest.fixture(scope="module")
def live(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    logs = Path(tmp_path_factory.mktemp("fuzz-logs"))
    common = {
        **backends.env(),
        "KARIZ_KAFKA_GROUP_PREFIX": unique("fuzz"),
        "KARIZ_REPS": json.dumps(["alex@kariz.example"]),
        "KARIZ_TEAMS": json.dumps({"emea": ["alex@kariz.example"]}),
        # Nothing listens here: a delivery the fuzzing causes fails and is retried, as in production.
        "KARIZ_SMTP_PORT": str(free_port()),
    }
    processes: list[ServiceProcess] = []
    try:
        for name in SERVICE_NAMES:
            env = {**common, "KARIZ_MONGODB_DATABASE": unique(f"fuzz_{name}")}
            processes.append(start_service(name, free_port(), env, logs))
        asyncio.run(wait_ready(processes))
        yield {p.name: p.url for p in processes}
    finally:
        for p in processes:
            p.stop()


@pytest.fixture(scope="module")
def headers(issuer: LocalIssuer) -> dict[str, str]:
    return bearer(issuer.token("fuzz@kariz.test", ["admin"], ttl_s=3600))


def _fuzz(name: str) -> Any:
    @SCHEMAS[name].parametrize()
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    def test(case: Any, live: dict[str, str], headers: dict[str, str]) -> None:
        case.call_and_validate(base_url=live[name], headers=headers, checks=[not_a_server_error])

    return test


test_leads_routes_answer_no_5xx = _fuzz("leads")
test_qualification_routes_answer_no_5xx = _fuzz("qualification")
test_deals_routes_answer_no_5xx = _fuzz("deals")
test_notifications_routes_answer_no_5xx = _fuzz("notifications")
